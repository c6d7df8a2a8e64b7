"""Fine-grained static saliency (the detector SaliencyMix and Saliency-DCutMix use), batched in PyTorch.

Montabone & Soto 2010, "Human detection using a mobile platform and novel features derived from a
visual saliency mechanism", Image and Vision Computing 28(3). Reference implementation: OpenCV-contrib
``cv2.saliency.StaticSaliencyFineGrained`` (``modules/saliency/src/staticSaliencyFineGrained.cpp``),
whose integer semantics this module reproduces (methods.md §2.3):

1. 8-bit gray image; two 3×3 Gaussian blurs (taps 1-2-1, reflect-101 border, rounded to uint8).
2. An integral image; for each of six surround half-sizes ``n`` in (12, 24, 48, 28, 56, 112) the mean
   of the box rows ``[y − n + 1, y + n]`` × cols ``[x − n + 1, x + n]`` (clipped to the image) with
   the centre pixel left out. "On" = ``trunc(centre − mean)`` where positive, "off" =
   ``trunc(mean − centre)`` where positive, both uint8.
3. The six on maps are summed, as are the six off maps; each sum is scaled by ``255 / its max``
   (truncated); the result is ``⌊255 · (on + off) / max(max on, max off)⌋`` as uint8, returned as
   float32 ``level · float32(1/255)`` (what the Python binding returns).

Everything is vectorised over the batch and the pixels (cumulative-sum integral images; the clipped
box corners are shifted slices of an edge-replicated integral image); only the six scales are a
Python loop. OpenCV's integer steps are done exactly (in float32, whose integers are exact below
2²⁴, so the code runs on any device), its float32 steps in float32 in the same order, and the maps
are bit-identical to cv2's (checked on the bundled demo set, noise and upscaled images from 1×1 to
300×400). Deliberate differences from the reference:

* Input is an RGB tensor ``(B, 3, H, W)`` (or gray ``(B, 1, H, W)``), not BGR: the gray conversion
  uses the weights that give exactly cv2's ``COLOR_BGR2GRAY`` on the channel-reversed image
  (``(9798·R + 19235·G + 3735·B + 2¹⁴) >> 15``, checked against cv2 on all 2²⁴ colours).
* The integral image is summed exactly with ``cumsum`` when ``H·W·255 < 2²⁴`` (any image up to
  256×256), where OpenCV's float32 accumulation is exact too. Larger images could reach partial sums
  that float32 rounds, so there the column accumulation is done row by row in float32 as OpenCV does
  it (a Python loop over the H rows, each step vectorised over the batch and the columns).
* Maps with no "on" (or no "off") response — a constant image, for instance — divide zero by zero in
  OpenCV (undefined behaviour in C++); here that scaled map is 0, as cv2 returns in practice.
* Only uint8 input is accepted (OpenCV reads any other depth byte-wise, which yields a map unrelated
  to the image — the SaliencyMix quirk of methods.md §2.3); use :func:`to_uint8` to convert a
  normalised float batch.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

#: Q15 weights of R, G, B reproducing OpenCV's fixed-point ``COLOR_BGR2GRAY`` on uint8
GRAY_Q15 = (9798, 19235, 3735)
#: surround half-sizes of the six scales, in pixels (OpenCV's order)
SURROUNDS = (12, 24, 48, 28, 56, 112)


def _check_uint8_images(images: object, who: str, name: str) -> Tensor:
    if not isinstance(images, Tensor):
        raise TypeError(
            f"{who}: expected {name} to be a torch.Tensor (B, C, H, W), got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"{who}: expected {name} of shape (B, 1 or 3, H, W), got {tuple(images.shape)}")
    if images.dtype != torch.uint8:
        raise TypeError(f"{who}: expected {name} to be uint8, got {images.dtype} "
                        "(convert a normalised float batch with to_uint8(x, mean, std))")
    if images.shape[0] < 1 or images.shape[2] < 1 or images.shape[3] < 1:
        raise ValueError(f"{who}: expected {name} with B, H, W >= 1, got {tuple(images.shape)}")
    return images


def _gray_u8(images: Tensor) -> Tensor:
    """uint8 ``(B, 3, H, W)`` RGB (or ``(B, 1, H, W)``) → ``(B, H, W)`` float32 gray levels 0…255.

    Integer arithmetic done in float32, exact: every intermediate is an integer below 2²⁴."""
    x = images.to(torch.float32)
    if x.shape[1] == 1:
        return x[:, 0]
    wr, wg, wb = GRAY_Q15
    return torch.floor((x[:, 0] * wr + x[:, 1] * wg + x[:, 2] * wb + 2.0**14) / 2.0**15)


def _blur121(g: Tensor) -> Tensor:
    """OpenCV's ``GaussianBlur(ksize=3, sigma=0)`` on uint8 levels ``(B, H, W)`` float32: taps
    ``[1, 2, 1] ⊗ [1, 2, 1] / 16``, reflect-101 border, rounded half up (exact, as ``_gray_u8``)."""
    h, w = g.shape[-2:]
    # torch's "reflect" is OpenCV's reflect-101; a length-1 axis reflects onto itself (= replicate)
    p = F.pad(g.unsqueeze(1), (1, 1, 0, 0), mode="reflect" if w > 1 else "replicate")
    p = F.pad(p, (0, 0, 1, 1), mode="reflect" if h > 1 else "replicate").squeeze(1)  # (B, H + 2, W + 2)
    s = p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]  # (B, H + 2, W)
    s = s[:, :-2] + 2 * s[:, 1:-1] + s[:, 2:]  # (B, H, W), weighted sum of 16
    return torch.floor((s + 8) / 16)


def _integral(g: Tensor) -> Tensor:
    """Integral image ``(B, H + 1, W + 1)`` float32 of ``g`` ``(B, H, W)`` (leading zero row/col), as
    OpenCV builds it: exact row prefix sums, accumulated down the columns in float32."""
    rows = g.cumsum(dim=-1)  # (B, H, W) exact row prefix sums (integers < 2^24 for W < 65793)
    h, w = g.shape[-2:]
    if h * w * 255 < 2**24:  # every partial sum is an integer below 2^24: exact in any order
        s = rows.cumsum(dim=-2)
    else:
        s = _running_sum_rows_f32(rows)
    return F.pad(s, (1, 0, 1, 0))


def _running_sum_rows_f32(rows: Tensor) -> Tensor:
    """Cumulative sum over dim −2 of ``(B, H, W)`` float32, rounding to float32 after every row as
    OpenCV's accumulation does (``torch.cumsum`` may round differently). One vectorised add per
    image row; used only for images large enough for the two to differ."""
    out = torch.empty_like(rows)
    acc = torch.zeros_like(rows[:, 0])  # (B, W)
    for i in range(rows.shape[-2]):
        acc = acc + rows[:, i]
        out[:, i] = acc
    return out


def _count_others(n: int, size: int, device: torch.device) -> Tensor:
    """Pixels ``(size,)`` along one axis of the clipped surround ``[i − n + 1, i + n]`` of each ``i``."""
    i = torch.arange(size, device=device)
    return (i + n + 1).clamp(0, size) - (i - n + 1).clamp(0, size)


def _on_off(padded: Tensor, gray: Tensor, n: int, pad: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
    """On and off responses ``(B, H, W)`` float32 (integers 0…255) of surround half-size ``n``.

    ``padded`` is the integral image with ``pad = (rows, cols)`` replicated rows/cols on each side,
    so the clipped box corners of all pixels are plain shifted slices of it."""
    h, w = gray.shape[-2:]
    pr, pc = pad
    nr, nc = min(n, h), min(n, w)  # a surround wider than the image clips like one of its size
    top = padded[:, pr - nr + 1:pr - nr + 1 + h]  # (B, H, W + 1 + 2pc) rows y − n + 1
    bottom = padded[:, pr + nr + 1:pr + nr + 1 + h]  # rows y + n + 1
    left, right = slice(pc - nc + 1, pc - nc + 1 + w), slice(pc + nc + 1, pc + nc + 1 + w)
    box = ((bottom[:, :, right] + top[:, :, left]) - bottom[:, :, left]) - top[:, :, right]  # OpenCV's order
    others = (_count_others(n, h, gray.device)[:, None] * _count_others(n, w, gray.device)[None, :]
              - 1).to(torch.float32)  # (H, W) box pixels but the centre
    mean = (box - gray) / others  # (B, H, W); NaN only for a 1×1 image (0/0), which gives 0 below
    zero = torch.zeros((), dtype=torch.float32, device=gray.device)
    return torch.fmax(gray - mean, zero).trunc(), torch.fmax(mean - gray, zero).trunc()


def _scale_to_255(s: Tensor) -> Tensor:
    """OpenCV's ``trunc(255.0 · float32(s / m))`` per map ``(B, H, W)``, ``m`` the map's max, which
    equals ``⌊255·s/m⌋`` exactly (0 for a map whose max is 0).

    Why: when ``255·s/m`` is a whole number ``k``, ``s/m = k/255``, whose binary expansion repeats
    with period 8; float32 keeps 24 bits (three periods) from the leading 1, so the first dropped
    bit is again a 1 and the quotient always rounds *up*: the truncation gives ``k``, not ``k − 1``.
    Otherwise ``255·s/m`` is at least ``1/m ≥ 1/1530`` from an integer, far more than any rounding
    error. Both claims are checked exhaustively in the tests. Computed in float32 on integers below
    2²⁴ (exact), with one correctly rounded division."""
    m = s.flatten(1).amax(dim=1).clamp_min(1)[:, None, None]  # (B, 1, 1)
    return torch.floor(255 * s / m)


def _mix_on_off(on: Tensor, off: Tensor) -> Tensor:
    """``⌊255·(on + off) / max(max on, max off)⌋ mod 256`` per map ``(B, H, W)`` (0 where the max is 0).

    The quotient exceeds 255 only where a pixel has both on and off responses whose scaled sum beats
    the larger max. OpenCV then casts a value in 256…510 to uint8, which is undefined behaviour in
    C++; common compilers keep the low byte, and so do we. Such pixels never occurred in our checks,
    so this branch is not verified against cv2."""
    top = torch.maximum(on.flatten(1).amax(dim=1), off.flatten(1).amax(dim=1)).clamp_min(1)  # (B,)
    level = torch.floor(255 * (on + off) / top[:, None, None])
    return torch.remainder(level, 256)


def fine_grained_saliency(images: Tensor) -> Tensor:
    """OpenCV-contrib's ``StaticSaliencyFineGrained`` on a batch, on ``images``' device.

    Args:
        images: ``(B, 3, H, W)`` uint8 RGB (or ``(B, 1, H, W)`` uint8 gray), any device.

    Returns:
        ``(B, H, W)`` float32 in [0, 1]: for each image, cv2's map of the BGR-converted image
        (bit-identical in our checks, see the module notes).

    Example:
        >>> x = torch.zeros(2, 3, 40, 40, dtype=torch.uint8)
        >>> x[:, :, 15:25, 15:25] = 200
        >>> s = fine_grained_saliency(x)
        >>> s.shape, s.dtype, float(s.max())
        (torch.Size([2, 40, 40]), torch.float32, 1.0)
    """
    images = _check_uint8_images(images, "fine_grained_saliency", "images")
    gray = _blur121(_blur121(_gray_u8(images)))  # (B, H, W) float32 levels
    h, w = gray.shape[-2:]
    pad = (min(max(SURROUNDS), h), min(max(SURROUNDS), w))
    integral = _integral(gray)  # (B, H + 1, W + 1)
    padded = F.pad(integral, (pad[1], pad[1], pad[0], pad[0]), mode="replicate")  # (B, H+1+2pr, W+1+2pc)
    on_sum = torch.zeros_like(gray)
    off_sum = torch.zeros_like(gray)
    for n in SURROUNDS:
        on, off = _on_off(padded, gray, n, pad)
        on_sum += on
        off_sum += off
    level = _mix_on_off(_scale_to_255(on_sum), _scale_to_255(off_sum))  # (B, H, W) integers 0…255
    # cv2 returns level k as the float32 product k · float32(1/255)
    return level * torch.full((), 1 / 255, dtype=torch.float32, device=images.device)


def to_uint8(x: Tensor, mean: Optional[Sequence[float]] = None,
             std: Optional[Sequence[float]] = None) -> Tensor:
    """De-normalise a float batch to uint8 RGB for :func:`fine_grained_saliency`.

    Computes ``round(255 · clamp(x · std + mean, 0, 1))`` per channel, rounding half to even
    (``torch.round``); the arithmetic is float32 (float64 for float64 input).

    Args:
        x: ``(B, C, H, W)`` float images.
        mean, std: per-channel sequences of length ``C`` used to normalise ``x``, or both ``None``
            when ``x`` is already in [0, 1].

    Returns:
        ``(B, C, H, W)`` uint8 on ``x``'s device.

    Example:
        >>> x = torch.tensor([0.0, 0.5, 1.0, 1.2]).view(1, 1, 2, 2)
        >>> to_uint8(x).flatten().tolist()
        [0, 128, 255, 255]
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"to_uint8: expected x to be a torch.Tensor (B, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"to_uint8: expected x of shape (B, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"to_uint8: expected x to be a floating-point tensor, got {x.dtype}")
    if (mean is None) != (std is None):
        raise ValueError("to_uint8: give both mean and std, or neither (x already in [0, 1])")
    work = x.detach().to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    if mean is not None:
        mean_c, std_c = _per_channel(mean, x, "mean"), _per_channel(std, x, "std")
        # per channel with Python scalars: nothing to copy to x's device
        work = torch.stack([work[:, c] * std_c[c] + mean_c[c] for c in range(x.shape[1])], dim=1)
    return (work.clamp(0, 1) * 255).round().to(torch.uint8)


def _per_channel(values: Sequence[float], x: Tensor, name: str) -> List[float]:
    """``values`` as a list of one float per channel of ``x``."""
    flat = [float(v) for v in torch.as_tensor(values, dtype=torch.float64).flatten().tolist()]
    if len(flat) != x.shape[1]:
        raise ValueError(f"to_uint8: expected {name} with {x.shape[1]} values (one per channel), "
                         f"got {len(flat)}")
    return flat
