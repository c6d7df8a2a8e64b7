"""Per-image uncertainty under K-image mixing: the anchor's loss distribution (K-image paper, eq. 8).

Paper: Jeong et al., "Observations on K-image Expansion of Image-Mixing Augmentation for
Classification" (IEEE Access 2023), https://arxiv.org/abs/2110.04248 — main text §"Subsampling using
the Measured Data Uncertainty" and the supplement's "Data Subsampling".

Every training image ``x_i`` (the *anchor*) is mixed ``M`` times (10) with ``K − 1`` (2) other
images by DCutMix's stick-breaking nested boxes: the anchor keeps the share ``φ_i`` (0.5) of the
image (the outer ring), and the other shares are ``(1 − φ_i)·(u_1, …, u_{K−1})`` with
``u ~ Dir(α, …, α)`` (α = 2/9) — the conditional Dirichlet of the non-anchor components. The
network's soft-target cross-entropy on each mix (labels: the exact pasted areas) gives the losses
``L_i = (L_{i,1} … L_{i,M})``; their mean, standard deviation and coefficient of variation
``CV = σ/μ`` measure how uncertain the anchor is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..methods.kimage import nested_weights, paste_nested, stick_breaking_boxes
from ..sampling import dirichlet
from ..train.data.norm import normalize
from ..train.data.order import generator_for

PathLike = Union[str, os.PathLike]

#: the paper's settings (supplement "Data Subsampling"): M, number of non-anchor images, α, φ_i
NUM_MIXES = 10
NUM_OTHERS = 2
ALPHA = 2 / 9
ANCHOR_SHARE = 0.5


@dataclass(frozen=True)
class MixSettings:
    """How the anchors' mixes are drawn.

    Args:
        num_mixes: ``M``, mixes per anchor (paper 10; at least 2 for a standard deviation).
        num_others: non-anchor images per mix (paper 2).
        alpha: Dirichlet concentration of each non-anchor share (paper 2/9).
        anchor_share: ``φ_i``, the anchor's fixed share in (0, 1) (paper 0.5; supplement Fig. 3c:
            0.1 ≈ random subsampling, close to 1 degrades).
        seed: the draws of anchor batch ``j`` come from ``generator_for(seed, "subsample", j)``, so
            a resumed run draws exactly what an uninterrupted one does.
    """

    num_mixes: int = NUM_MIXES
    num_others: int = NUM_OTHERS
    alpha: float = ALPHA
    anchor_share: float = ANCHOR_SHARE
    seed: int = 0

    def __post_init__(self) -> None:
        who = "MixSettings"
        for name, low in (("num_mixes", 2), ("num_others", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{who}: expected {name} to be an int >= {low}, got {v!r}")
        if not (isinstance(self.alpha, (int, float)) and self.alpha > 0 and math.isfinite(self.alpha)):
            raise ValueError(f"{who}: expected alpha > 0, got {self.alpha!r}")
        if not (isinstance(self.anchor_share, (int, float)) and 0 < self.anchor_share < 1):
            raise ValueError(f"{who}: expected anchor_share in (0, 1), got {self.anchor_share!r}")


def conditional_dirichlet(anchor_share: float, alpha: float, num_others: int, size: int,
                          generator: torch.Generator) -> Tensor:
    """``size`` share vectors ``(φ_i, (1 − φ_i)·u)`` with ``u ~ Dir(α·1_{num_others})``.

    This is the distribution of ``φ ~ Dir(α_i, α, …, α)`` given ``φ_0 = φ_i`` (the remaining shares of
    a Dirichlet, rescaled, are again Dirichlet). Float64 ``(size, 1 + num_others)``, rows sum to 1.
    """
    u = dirichlet(float(alpha), num_others, size, generator)  # (size, K − 1)
    anchor = torch.full((size, 1), float(anchor_share), dtype=torch.float64)
    return torch.cat([anchor, (1.0 - anchor) * u], dim=1)


def soft_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Per-row ``−Σ_c target_c · log softmax(logits)_c`` ``(B,)`` float32."""
    return -(target * torch.log_softmax(logits.float(), dim=1)).sum(dim=1)


def draw_mixes(anchors: Tensor, num_items: int, height: int, width: int, settings: MixSettings,
               generator: torch.Generator) -> Dict[str, Tensor]:
    """The random part of the anchors' mixes (all on the CPU).

    Returns ``sources`` ``(B·M, K)`` int64 (column 0 the anchor, repeated ``M`` times; the others
    uniform over the ``num_items − 1`` images that are not the anchor), ``phi`` ``(B·M, K)`` and the
    DCutMix ``boxes`` ``(B·M, K − 1, 4)``.
    """
    if num_items < 2:
        raise ValueError(f"draw_mixes: need at least 2 images to mix, got {num_items}")
    m, k = settings.num_mixes, settings.num_others + 1
    base = anchors.long().cpu().repeat_interleave(m)  # (R,)
    r = base.shape[0]
    others = torch.randint(num_items - 1, (r, k - 1), generator=generator)
    others += (others >= base[:, None]).long()  # skip the anchor itself
    phi = conditional_dirichlet(settings.anchor_share, settings.alpha, k - 1, r, generator)
    offsets = torch.rand((r, k - 1, 2), generator=generator, dtype=torch.float64)
    boxes = stick_breaking_boxes(phi, height, width, offsets)
    return {"sources": torch.cat([base[:, None], others], dim=1), "phi": phi, "boxes": boxes}


@torch.no_grad()
def mix_losses(model: nn.Module, images: Tensor, labels: Tensor, anchors: Tensor, settings: MixSettings,
               generator: torch.Generator, *, mean: Optional[Sequence[float]] = None,
               std: Optional[Sequence[float]] = None, num_classes: Optional[int] = None,
               device: Optional[Union[str, torch.device]] = None, chunk: int = 1000,
               autocast: Optional[contextlib.AbstractContextManager] = None) -> Tensor:
    """The losses ``(B, M)`` of ``M`` DCutMix mixes of each anchor (eq. 8 of the paper).

    Args:
        model: the classifier (put in eval mode by the caller).
        images: ``(N, C, H, W)`` the candidate images, uint8 (or float in [0, 1]) on any device.
        labels: ``(N,)`` int64 class ids.
        anchors: ``(B,)`` indices into ``images`` of the anchors of this batch.
        settings, generator: the draws (:func:`draw_mixes`).
        mean, std: the model's input normalisation (None: images only scaled to [0, 1]).
        num_classes: width of the targets (default ``labels.max() + 1``).
        device: where the model runs (default: its parameters' device).
        chunk: mixes per forward pass.
    """
    n, _, h, w = images.shape
    if device is None:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    nc = int(num_classes) if num_classes is not None else int(labels.max()) + 1
    draws = draw_mixes(anchors, n, h, w, settings, generator)
    sources, boxes = draws["sources"], draws["boxes"]
    r, k = sources.shape
    # the images taken part in this batch, normalised once: rows [k·R, (k+1)·R) hold source column k
    rows = sources.t().reshape(-1).to(images.device)
    x = images[rows].to(device)
    if mean is not None:
        x = normalize(x, mean, std)
    else:
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    pasted = (torch.arange(1, k)[None, :] * r + torch.arange(r)[:, None])  # (R, K − 1) rows of x
    mixed = paste_nested(x[:r], boxes, pasted, pool=x)
    weights = nested_weights(boxes, h, w).to(device)  # (R, K): the exact pasted areas
    target = torch.zeros(r, nc, device=device).scatter_add_(1, labels.to(device)[sources.to(device)], weights)
    losses = []
    for start in range(0, r, chunk):
        with autocast if autocast is not None else contextlib.nullcontext():
            logits = model(mixed[start:start + chunk])
        losses.append(soft_cross_entropy(logits, target[start:start + chunk]))
    return torch.cat(losses).cpu().view(-1, settings.num_mixes)


def loss_statistics(losses: Tensor) -> Dict[str, Tensor]:
    """``mean``, ``std`` (population, ``ddof = 0``) and ``cv = std / mean`` of each row of ``losses``
    ``(N, M)``, float64 ``(N,)``. A row of zero mean (a perfectly fitted mix set) has CV 0."""
    if not isinstance(losses, Tensor) or losses.ndim != 2 or losses.shape[1] < 1:
        raise ValueError(f"loss_statistics: expected losses of shape (N, M) with M >= 1, got "
                         f"{tuple(losses.shape) if isinstance(losses, Tensor) else type(losses).__name__}")
    x = losses.double()
    mean = x.mean(dim=1)
    std = x.std(dim=1, correction=0)
    cv = torch.where(mean > 0, std / mean.clamp(min=torch.finfo(torch.float64).tiny), torch.zeros_like(mean))
    return {"mean": mean, "std": std, "cv": cv}


def _save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def score_dataset(model: nn.Module, images: Tensor, labels: Tensor, settings: MixSettings = MixSettings(), *,
                  batch_size: int = 100, mean: Optional[Sequence[float]] = None,
                  std: Optional[Sequence[float]] = None, num_classes: Optional[int] = None,
                  device: Optional[Union[str, torch.device]] = None, state_file: Optional[PathLike] = None,
                  fingerprint: Optional[Dict[str, Any]] = None, save_every_s: float = 60.0,
                  progress: bool = True, autocast: Optional[contextlib.AbstractContextManager] = None,
                  on_batch: Optional[Callable[[int], None]] = None) -> Tensor:
    """The mix losses ``(N, M)`` of every image of ``images`` as the anchor.

    Anchors are processed ``batch_size`` at a time (``batch_size · M`` mixes per batch). With
    ``state_file`` the finished batches are saved there every ``save_every_s`` seconds and at the end
    (atomically), and a later call with the same settings, data and ``fingerprint`` (e.g. the
    model's identity) continues where it stopped; a state written with other settings is ignored
    and overwritten. ``on_batch(j)`` is called after batch ``j`` (tests use it to interrupt).
    """
    if batch_size < 1:
        raise ValueError(f"score_dataset: expected batch_size >= 1, got {batch_size}")
    n = images.shape[0]
    if labels.shape != (n,):
        raise ValueError(f"score_dataset: expected labels of shape ({n},), got {tuple(labels.shape)}")
    key = json.dumps({"settings": asdict(settings), "batch_size": batch_size, "num_items": n,
                      "labels": hashlib.blake2b(labels.long().cpu().numpy().tobytes(),
                                                digest_size=8).hexdigest(),
                      "fingerprint": fingerprint or {}}, sort_keys=True, default=str)
    num_batches = (n + batch_size - 1) // batch_size
    losses = torch.zeros(n, settings.num_mixes)
    done = torch.zeros(num_batches, dtype=torch.bool)
    path = Path(state_file) if state_file is not None else None
    if path is not None and path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("key") == key:
            losses, done = state["losses"], state["done"]
    was_training = model.training
    model.eval()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_batches, initial=int(done.sum()), desc="subsample: scoring", unit="batch",
                   leave=False, dynamic_ncols=True)
    last_save = time.monotonic()
    try:
        for j in range(num_batches):
            if done[j]:
                continue
            anchors = torch.arange(j * batch_size, min(n, (j + 1) * batch_size))
            g = generator_for(settings.seed, "subsample", j)
            losses[anchors] = mix_losses(model, images, labels, anchors, settings, g, mean=mean, std=std,
                                         num_classes=num_classes, device=device, autocast=autocast)
            done[j] = True
            if bar is not None:
                bar.update(1)
            if path is not None and time.monotonic() - last_save >= save_every_s:
                _save_atomic({"key": key, "losses": losses, "done": done}, path)
                last_save = time.monotonic()
            if on_batch is not None:
                on_batch(j)
    finally:
        if bar is not None:
            bar.close()
        if path is not None:
            _save_atomic({"key": key, "losses": losses, "done": done}, path)
        model.train(was_training)
    return losses


__all__ = ["ALPHA", "ANCHOR_SHARE", "MixSettings", "NUM_MIXES", "NUM_OTHERS", "conditional_dirichlet",
           "draw_mixes", "loss_statistics", "mix_losses", "score_dataset", "soft_cross_entropy"]
