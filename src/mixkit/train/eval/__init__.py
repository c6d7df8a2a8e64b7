"""Evaluation metrics of ``mixkit eval``: clean error, calibration, adversarial and corruption
robustness, OOD detection.

Conventions: the model takes *normalised* images; the data are ``(x, y)`` batches of *pixel*
images in [0, 1] (float ``(B, C, H, W)``) plus the per-channel ``mean``/``std``
(:class:`Normalized` joins the two, so attacks and corruptions work in pixel space). Everything runs
on the data's device, in eval mode (each submodule's mode restored afterwards), under
``torch.inference_mode()`` unless an input gradient is needed; the caller's tensors are never
written to, and randomness comes from an explicit ``torch.Generator`` (default: CPU, seed 0).
Returned scalars are percentages.

>>> from mixkit.train.eval import collect_predictions, classification_metrics
>>> logits, y = collect_predictions(model, loader, mean, std)      # doctest: +SKIP
>>> classification_metrics(logits, y)                                # doctest: +SKIP
{'top1_err': ..., 'top5_err': ..., 'ece': ..., 'nll': ...}
"""

from ._common import Normalized
from .attacks import fgsm_accuracy, fgsm_attack, pgd_accuracy, pgd_attack
from .cifar_c import CIFAR_C_CORRUPTIONS, cifar_c_error
from .corruptions import (centered_boxes, corruption_error, derangement, foreground_mask,
                          gaussian_noise_background, random_replacement_background)
from .metrics import (CalibrationBins, calibration_bins, classification_metrics, collect_predictions,
                      confidences, expected_calibration_error, reliability_diagram, topk_errors)
from .ood import average_precision, ood_aupr, ood_scores

__all__ = [
    "CIFAR_C_CORRUPTIONS", "CalibrationBins", "Normalized", "average_precision", "calibration_bins",
    "centered_boxes", "cifar_c_error", "classification_metrics", "collect_predictions", "confidences",
    "corruption_error", "derangement", "expected_calibration_error", "fgsm_accuracy", "fgsm_attack",
    "foreground_mask", "gaussian_noise_background", "ood_aupr", "ood_scores", "pgd_accuracy",
    "pgd_attack", "random_replacement_background", "reliability_diagram", "topk_errors",
]
