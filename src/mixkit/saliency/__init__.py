"""Saliency maps for the saliency-guided mixers. Every map is ``(B, H, W)`` on the input's device."""

from .filters import argmax_pixel, gaussian_blur, normalize_sum, pool_grid, to_gray

__all__ = ["argmax_pixel", "gaussian_blur", "normalize_sum", "pool_grid", "to_gray"]
