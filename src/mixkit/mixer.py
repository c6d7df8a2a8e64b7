"""The ``Mixer`` base class every method follows, and :func:`mixed_forward`.

Contract::

    out = mixer(x, y, model=None)            # x (B, C, H, W) float; y (B,) int64 or (B, N) soft
    params = mixer.sample(x, y)              # random draws only (small CPU tensors)
    out = mixer.apply(x, y, params)          # deterministic given params
    logits, out = mixed_forward(mixer, model, x, y)   # works for every kind of mixer

A mixer owns a CPU ``torch.Generator`` (``seed=`` or ``generator=``), which it saves in its
``state_dict`` so a resumed run continues the same random stream. With ``prob < 1`` a coin decides
per batch whether to mix; an unmixed batch is returned as is (``out.params`` is :class:`NoMix`).
"""

from __future__ import annotations

import contextlib
import inspect
import numbers
from typing import Any, ClassVar, ContextManager, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ._checks import check_images, check_index_range, check_labels, check_prob, value_checks_on
from .batch import MixedBatch, NoMix
from .sampling import bernoulli, fold_worker_seed, make_generator

Shape = Union[torch.Size, Sequence[int]]


def resolve_generator(seed: Optional[int], generator: Optional[torch.Generator],
                      who: str) -> torch.Generator:
    """The generator a mixer should own, from ``seed=`` or ``generator=`` (not both)."""
    if seed is not None and generator is not None:
        raise ValueError(f"{who}: pass either seed or generator, not both")
    if generator is None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"{who}: expected seed to be an int, got {type(seed).__name__}")
        if seed is not None and not 0 <= int(seed) < 2**64:
            raise ValueError(f"{who}: expected seed in [0, 2**64), got {seed}")
        return make_generator(seed, tag=who)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{who}: expected generator to be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != "cpu":
        raise ValueError(f"{who}: expected a CPU generator (params are drawn on the CPU and moved "
                         f"to the images' device), got one on {generator.device}")
    return generator


class Mixer(nn.Module):
    """Base class of all mixers.

    Subclasses implement ``_sample(shape, *, x, y, model, saliency) -> Params`` (every random draw,
    through ``self.generator``) and ``_apply(x, y, params) -> MixedBatch`` (no randomness).

    Args:
        prob: probability of mixing a batch (default 1.0).
        seed: seed of the mixer's own generator.
        generator: a CPU ``torch.Generator`` to draw from instead (shared, e.g., by a
            :class:`~mixkit.RandomChoice`).
    """

    method_name: ClassVar[str] = ""
    #: the mixer computes saliency from a model (``mixer(x, y, model=...)``)
    needs_model: ClassVar[bool] = False
    #: the mixer mixes hidden features, so it must run through :func:`mixed_forward`
    mixes_features: ClassVar[bool] = False
    #: the params class ``sample`` returns (checked by ``apply``)
    params_type: ClassVar[Optional[type]] = None
    #: ``out.weights`` rows sum to 1 (the design contract). False only for a method whose paper
    #: defines labels that do not (SnapMix's asymmetric CAM shares); its loss is still
    #: ``Σ_k w_k · CE(y_k)`` (:func:`mixkit.mixed_cross_entropy`), and it tests its own label rules.
    label_weights_sum_to_one: ClassVar[bool] = True

    def __init__(self, *, prob: float = 1.0, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.prob = check_prob(prob, type(self).__name__)
        self.generator = resolve_generator(seed, generator, type(self).__name__)

    # ----------------------------------------------------------------------------- public API
    @property
    def num_sources(self) -> int:
        """``K``, the number of columns of ``out.sources``/``out.weights``."""
        return 2

    def forward(self, x: Tensor, y: Tensor, model: Optional[nn.Module] = None, *,
                saliency: Optional[Tensor] = None) -> MixedBatch:
        who = type(self).__name__
        check_images(x, who)
        check_labels(y, x.shape[0], who)
        params = self._draw(x.shape, x=x, y=y, model=model, saliency=saliency)
        return self._apply_or_identity(x, y, params)

    def sample(self, x: Union[Tensor, Shape], y: Optional[Tensor] = None, *,
               model: Optional[nn.Module] = None, saliency: Optional[Tensor] = None) -> Any:
        """Draw the random parameters for a batch (``x`` or just its shape ``(B, C, H, W)``)."""
        who = type(self).__name__
        if isinstance(x, Tensor):
            check_images(x, who)
            shape = x.shape
        else:
            shape = torch.Size(x)
            if len(shape) != 4 or min(shape) < 1:
                raise ValueError(f"{who}: expected a batch shape (B, C, H, W), got {tuple(shape)}")
            x = None
        if y is not None:
            check_labels(y, shape[0], who)
        return self._draw(shape, x=x, y=y, model=model, saliency=saliency)

    def apply(self, x: Tensor, y: Tensor, params: Any) -> MixedBatch:
        """Mix ``x``/``y`` with given ``params`` (no randomness)."""
        who = type(self).__name__
        check_images(x, who)
        check_labels(y, x.shape[0], who)
        self._check_params(params, x)
        return self._apply_or_identity(x, y, params)

    def model_forward(self, model: nn.Module, out: MixedBatch) -> Tensor:
        """Run ``model`` on a mixed batch; feature-level mixers override this."""
        return model(out.inputs)

    def manual_seed(self, seed: int) -> "Mixer":
        self.generator.manual_seed(seed)
        return self

    # ------------------------------------------------------------------------ training hooks
    # A mixer that learns (AutoMix's Mix Block and momentum encoder) takes part in training
    # through these; every default is a no-op, so a training loop may call them for any mixer:
    #   mixer.bind(net)                         once, before the optimiser is built
    #   optimizer = SGD([{"params": net.parameters()}, *mixer.param_groups()], ...)
    #   per step: logits, out = mixed_forward(mixer, model, x, y)
    #             loss = loss_fn(logits, out) + (mixer.extra_loss(model, x, y, out) or 0)
    #             loss.backward(); optimizer.step(); mixer.after_step(net, step, total_steps)
    def bind(self, model: nn.Module) -> None:
        """Prepare to train alongside ``model`` (the bare network, not a DDP wrapper): create the
        state that depends on it, so that :meth:`param_groups` is complete."""

    def param_groups(self) -> list:
        """Optimiser param groups of the mixer's own trainable parameters (``[]``: none)."""
        return []

    def extra_loss(self, model: nn.Module, x: Tensor, y: Tensor, out: MixedBatch) -> Optional[Tensor]:
        """Loss terms to add to the training loss of the mixed batch ``out`` made from the clean
        ``x``/``y`` (``model`` is the network being trained, possibly DDP-wrapped); None: none."""
        return None

    def after_step(self, model: nn.Module, step: int, total_steps: int) -> None:
        """Called after optimiser step ``step`` (0-based) of ``total_steps`` with the bare network."""

    # ------------------------------------------------------------------- checkpoint / resume
    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def extra_repr(self) -> str:
        names = [p.name for p in inspect.signature(type(self).__init__).parameters.values()
                 if p.kind is p.KEYWORD_ONLY and p.name not in ("seed", "generator")]
        return ", ".join(f"{n}={getattr(self, n)!r}" for n in names if hasattr(self, n))

    # ------------------------------------------------------------------------- for subclasses
    def _sample(self, shape: torch.Size, *, x: Optional[Tensor], y: Optional[Tensor],
                model: Optional[nn.Module], saliency: Optional[Tensor]) -> Any:
        raise NotImplementedError

    def _apply(self, x: Tensor, y: Tensor, params: Any) -> MixedBatch:
        raise NotImplementedError

    def _check_params(self, params: Any, x: Tensor) -> None:
        """Params handed to ``apply`` must come from this mixer's ``sample`` for a batch like ``x``."""
        who = type(self).__name__
        expected = self.params_type
        if expected is not None and not isinstance(params, (expected, NoMix)):
            raise TypeError(f"{who}: expected params from {who}.sample() ({expected.__name__}), "
                            f"got {type(params).__name__}")
        b, _, h, w = x.shape
        if params.batch_size != b:
            raise ValueError(f"{who}: params were drawn for a batch of {params.batch_size}, "
                             f"x has {b} images")
        for name in ("perm", "sources"):
            index = getattr(params, name, None)
            if isinstance(index, Tensor) and value_checks_on(index):
                check_index_range(index, 0, b, who, f"params.{name}")
        boxes = getattr(params, "boxes", None)
        if isinstance(boxes, Tensor) and boxes.numel() and value_checks_on(boxes):
            if int(boxes.min()) < 0 or int(boxes[..., 2].max()) > h or int(boxes[..., 3].max()) > w:
                raise ValueError(f"{who}: params.boxes do not fit images of {h}×{w} "
                                 "(drawn for another image size?)")

    # ------------------------------------------------------------------------------ internals
    def _draw(self, shape: torch.Size, **context: Any) -> Any:
        fold_worker_seed(self.generator)  # a no-op outside DataLoader workers
        if not bernoulli(self.prob, self.generator):
            return NoMix(shape[0])
        return self._sample(shape, **context)

    def _apply_or_identity(self, x: Tensor, y: Tensor, params: Any) -> MixedBatch:
        if isinstance(params, NoMix):
            return MixedBatch.identity(x, y, self.num_sources)
        return self._apply(x, y, params)


def mixed_forward(mixer: Optional[Mixer], model: nn.Module, x: Tensor, y: Tensor, *,
                  saliency: Optional[Tensor] = None,
                  model_context: Optional[ContextManager] = None) -> Tuple[Tensor, MixedBatch]:
    """Mix and run the model: ``(logits, out)`` for every kind of mixer.

    Input-level mixers feed ``out.inputs`` to the model; feature-level mixers (Manifold Mixup,
    AlignMix) mix inside it; model-aware mixers get ``model`` for their saliency pass. ``mixer=None``
    runs the model on the clean batch (``out`` is the identity mix), so one training step serves
    vanilla and mixed runs.

    ``model_context`` (e.g. ``torch.autocast("cuda", dtype=torch.bfloat16)``) wraps only the
    training forward: the mixing itself (pairing costs, masks, label weights) stays in the images'
    dtype. A mixer's own saliency pass has its own precision option (``saliency_dtype``).
    """
    if mixer is None:
        out = MixedBatch.identity(x, y)
    else:
        out = mixer(x, y, model=model if mixer.needs_model else None, saliency=saliency)
    with model_context if model_context is not None else contextlib.nullcontext():
        logits = model(out.inputs) if mixer is None else mixer.model_forward(model, out)
    return logits, out
