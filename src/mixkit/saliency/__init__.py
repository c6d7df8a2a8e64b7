"""Saliency maps for the saliency-guided mixers. Every map is ``(B, H, W)`` on the input's device.

* :func:`gradient_saliency` — input-gradient saliency (PuzzleMix, Co-Mixup, Guided-AP, R-Mix).
* :func:`spectral_residual` — Hou & Zhang's spectral residual ("guided": GuidedMixup's variant).
* :func:`fine_grained_saliency` — OpenCV's fine-grained static saliency (SaliencyMix), batched.
* :func:`grad_cam`, :func:`class_activation_map` — Grad-CAM (ResizeMix ablations) and CAM (SnapMix).
* :mod:`~mixkit.saliency.filters` — Gaussian blur, sum normalisation, pooling to a grid.
"""

from . import filters
from .cam import class_activation_map, grad_cam
from .filters import argmax_pixel, gaussian_blur, normalize_sum, pool_grid, to_gray
from .finegrained import fine_grained_saliency, to_uint8
from .gradient import gradient_saliency
from .spectral import spectral_residual

__all__ = ["argmax_pixel", "class_activation_map", "filters", "fine_grained_saliency",
           "gaussian_blur", "grad_cam", "gradient_saliency", "normalize_sum", "pool_grid",
           "spectral_residual", "to_gray", "to_uint8"]
