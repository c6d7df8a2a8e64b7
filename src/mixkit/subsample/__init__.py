"""Uncertainty-based data subsampling with K-image mixing (K-image paper, §"Subsampling using the
Measured Data Uncertainty"): :mod:`.scoring` measures each image's loss distribution over DCutMix
mixes in which it is the anchor, :mod:`.select` keeps a class-balanced share by a measure (high CV),
:mod:`.command` is ``mixkit subsample``.
"""

from .scoring import MixSettings, conditional_dirichlet, loss_statistics, mix_losses, score_dataset
from .select import MEASURES, class_quota, interval_order, select, select_per_class

__all__ = ["MEASURES", "MixSettings", "class_quota", "conditional_dirichlet", "interval_order",
           "loss_statistics", "mix_losses", "score_dataset", "select", "select_per_class"]
