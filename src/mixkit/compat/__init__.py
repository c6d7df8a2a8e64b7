"""Fronts for users of other libraries: a timm ``Mixup`` drop-in and label-format converters."""

from .labels import from_kornia, to_dense, to_kornia, to_lambda_pair
from .timm import Mixup as TimmMixup

__all__ = ["TimmMixup", "from_kornia", "to_dense", "to_kornia", "to_lambda_pair"]
