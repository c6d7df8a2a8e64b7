"""Spectral-residual saliency, batched with ``torch.fft`` on the input's device.

Hou & Zhang 2007, "Saliency detection: A spectral residual approach", CVPR. The log-amplitude
spectrum of an image, minus its local (3×3) average, is the "spectral residual"; transformed back with
the original phase it highlights the parts of the image that are not predicted by the average
spectrum. Two variants (methods.md §2.2), selected by ``mode``:

``"guided"`` — GuidedMixup's PyTorch routine (repo ``3neutronstar/GuidedMixup``,
``spectral_residual.py``), used by Guided-SR: gray of the (normalised) batch; resized to 128×128
(bilinear) only when ``H > 128``; ``fft2`` (no shift); ``|F| = sqrt(re² + im² + 1e-10)``; residual
``exp(log|F| − box3(log|F|))`` with a 3×3 mean filter with *replicate* padding; the spectrum is
scaled by ``residual / |F|`` (phase kept); ``ifft2``; the *magnitude* (not squared); Gaussian blur
kernel 7, σ 3, reflect padding; resized back to ``(H, W)``. No min-max normalisation. Against a
re-run of that code (torchvision 0.29, CPU) the maps agree to a relative 3e-5 (32×32 input) and
1.5e-4 (224×224), almost all of it from the first difference below (4e-7 with equal gray weights):

* gray weights are the library's :data:`~mixkit.saliency.filters.LUMA`, torchvision's
  ``rgb_to_grayscale`` weights (0.2989, 0.587, 0.114), as the reference;
* the 3×3 mean is an average pool of the padded map rather than a convolution with taps 1/9 (same
  value, different rounding; never TF32 on CUDA), and the Gaussian taps are computed in the
  working dtype on the device (:func:`~mixkit.saliency.filters.gaussian_kernel1d`);
* the resizes are ``F.interpolate(mode="bilinear", align_corners=False)`` without antialiasing,
  which is what torchvision's tensor ``Resize`` did in the reference's time (its requirements pin
  2022 packages). torchvision ≥ 0.17 antialiases by default when shrinking; run that way, the
  reference differs from this function by up to 17 % of the map's maximum on 224×224 input.

``"hou_zhang"`` — the method of the paper, with the choices of methods.md §2.2 [DECISION]: gray;
bilinear resize (no antialiasing, as OpenCV) to a square ``working_size``×``working_size``
(OpenCV's ``StaticSaliencySpectralResidual`` uses 64×64; the paper keeps the aspect ratio at width
64); log amplitude ``log(|F| + ε)`` with ``ε = 1e-10·max|F|`` (keeps the map scale-invariant and
finite on a flat image); 3×3 mean filter with *circular* padding (the spectrum is periodic);
``|ifft2(exp(R + iP))|²`` (squared, then smoothed, as in the paper; OpenCV blurs first and squares
after); Gaussian blur with σ = 8·working_size/64 and a kernel covering ±3σ (reflect padding);
resized back to ``(H, W)``.
No min-max normalisation (the paper rescales to [0, 1] for display; every mixer normalises itself).
The default working size is 64 but never more than the image's shorter side: OpenCV enlarges a
32×32 CIFAR image to 64×64, and since the residual gives every frequency bin an amplitude near 1,
the nearly empty upper band that bilinear enlargement creates is boosted to the level of the real
content; on a 32×32 test image with one small blob and noise of std 0.01 the map then peaks on the
blob in 4 of 20 cases at 64 px against 20 of 20 at 32 px (pass ``working_size=64`` for OpenCV's size).

Both modes work in float32 (float64 for float64 input), take no gradient, use no RNG and no Python
loop over the batch, and are deterministic. Note: on noise-free synthetic images (a sharp square on
an exactly flat background) the spectrum has exact zeros, whose log amplitude is dominated by the
guard, and the maps are erratic; real images, or any mild noise, do not have this problem.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_images
from .filters import gaussian_blur, gaussian_sigma_for, odd_kernel_for, resize_maps, to_gray

MODES = ("guided", "hou_zhang")
#: default ``working_size`` per mode: the shrink threshold/size (guided), the largest square FFT size
#: (hou_zhang, capped by the image's shorter side)
DEFAULT_SIZE = {"guided": 128, "hou_zhang": 64}
#: GuidedMixup's guard inside the square root of the amplitude
_GUIDED_EPS = 1e-10
#: relative guard of the log amplitude in mode "hou_zhang"
_HZ_REL_EPS = 1e-10


def spectral_residual(x: Tensor, mode: str = "guided", working_size: Optional[int] = None,
                      blur_kernel: int = 7, blur_sigma: float = 3.0) -> Tensor:
    """Spectral-residual saliency maps of a batch.

    Args:
        x: ``(B, 1 or 3, H, W)`` float images (normalised or not; RGB or gray), any device.
        mode: ``"guided"`` (GuidedMixup's variant, default) or ``"hou_zhang"`` (the paper's).
        working_size: ``"guided"``: images with ``H > working_size`` are shrunk to
            ``working_size``×``working_size`` (default 128); ``"hou_zhang"``: the square size the
            spectrum is computed at (default ``min(64, H, W)``, at least 2). An int >= 2.
        blur_kernel, blur_sigma: the Gaussian blur of mode ``"guided"`` (GuidedMixup: 7, 3).

    Returns:
        ``(B, H, W)`` non-negative saliency, float32 (float64 for float64 input), on ``x``'s device,
        not normalised.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = 0.05 * torch.randn(2, 3, 32, 32, generator=g)
        >>> x[:, :, 10:16, 20:26] += 1.0  # a bright square on a mildly noisy background
        >>> s = spectral_residual(x)
        >>> s.shape, s.dtype
        (torch.Size([2, 32, 32]), torch.float32)
        >>> row, col = divmod(int(s[0].argmax()), 32)
        >>> 8 <= row < 18 and 18 <= col < 28
        True
    """
    x = check_images(x, "spectral_residual")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"spectral_residual: expected x with 1 or 3 channels, got {tuple(x.shape)}")
    if mode not in MODES:
        raise ValueError(f"spectral_residual: expected mode in {MODES}, got {mode!r}")
    size = _default_size(mode, x.shape[-2:]) if working_size is None else working_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"spectral_residual: expected working_size to be an int >= 2 or None, got {size!r}")
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    gray = to_gray(x.detach().to(work))  # (B, H, W)
    if mode == "guided":
        return _guided(gray, size, blur_kernel, blur_sigma)
    return _hou_zhang(gray, size)


def _default_size(mode: str, hw: Tuple[int, int]) -> int:
    if mode == "guided":
        return DEFAULT_SIZE[mode]
    return max(2, min(DEFAULT_SIZE[mode], *hw))  # never upsample (see the module notes)


def _box3(s: Tensor, padding: str) -> Tensor:
    """3×3 mean of maps ``(B, h, w)`` with ``padding`` ``"replicate"`` or ``"circular"``."""
    p = F.pad(s.unsqueeze(1), (1, 1, 1, 1), mode=padding)  # (B, 1, h + 2, w + 2)
    return F.avg_pool2d(p, kernel_size=3, stride=1).squeeze(1)


def _guided(gray: Tensor, size: int, blur_kernel: int = 7, blur_sigma: float = 3.0) -> Tensor:
    """GuidedMixup's spectral residual of gray maps ``(B, H, W)`` (see the module notes)."""
    h, w = gray.shape[-2:]
    shrink = h > size  # the reference tests the height only and then resizes to a square
    g = resize_maps(gray, (size, size)) if shrink else gray  # (B, h', w')
    spec = torch.fft.fft2(g)  # (B, h', w') complex
    mag = (spec.real ** 2 + spec.imag ** 2 + _GUIDED_EPS).sqrt()
    log_mag = mag.log()
    residual = (log_mag - _box3(log_mag, "replicate")).exp()
    spec = torch.complex(spec.real * residual / mag, spec.imag * residual / mag)  # phase kept
    back = torch.fft.ifft2(spec)
    s = (back.real ** 2 + back.imag ** 2).sqrt()  # (B, h', w') magnitude, not squared
    s = gaussian_blur(s, kernel_size=blur_kernel, sigma=blur_sigma, padding="reflect")
    return resize_maps(s, (h, w)) if shrink else s


def _hou_zhang(gray: Tensor, size: int) -> Tensor:
    """Hou & Zhang's spectral residual of gray maps ``(B, H, W)`` at ``size``×``size``."""
    h, w = gray.shape[-2:]
    g = resize_maps(gray, (size, size))  # (B, size, size)
    spec = torch.fft.fft2(g)
    amp = spec.abs()  # (B, size, size)
    eps = _HZ_REL_EPS * amp.amax(dim=(-2, -1), keepdim=True) + torch.finfo(amp.dtype).tiny  # (B, 1, 1)
    log_amp = (amp + eps).log()
    residual = (log_amp - _box3(log_amp, "circular")).exp()
    back = torch.fft.ifft2(spec * (residual / (amp + eps)))  # exp(R + iP); a zero bin stays zero
    s = back.real ** 2 + back.imag ** 2  # |·|², squared before the blur (the paper's order)
    sigma = gaussian_sigma_for(size)  # 8 px at a 64-px working size, scaled with it
    s = gaussian_blur(s, kernel_size=odd_kernel_for(sigma), sigma=sigma, padding="reflect")
    return resize_maps(s, (h, w))
