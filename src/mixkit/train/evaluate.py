"""``mixkit eval``: every metric of the papers on a trained checkpoint.

Top-1/top-5 error and the negative log-likelihood; expected calibration error (10 bins, Co-Mixup
supplement) with a reliability diagram; FGSM (ε = 8/255) and optionally PGD robust accuracy;
Gaussian-noise and random-replacement background corruption error (Co-Mixup supplement §7, a
centred box as the foreground); CIFAR-100-C mean corruption error when its folder is given; OOD
AUPR when a folder of out-of-distribution images is given. Results go to ``eval.json`` (and the
diagram to ``reliability.png``) in the output directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from . import checkpoint as ckpt
from .build import build_model
from .data import ArrayData, LazyLoader, MemoryLoader, build_data, load_folder_to_memory
from .distributed import resolve_device
from .eval import (calibration_bins, cifar_c_error, classification_metrics, collect_predictions,
                   confidences, corruption_error, fgsm_accuracy, ood_aupr, pgd_accuracy,
                   reliability_diagram)

PathLike = Union[str, Path]


def load_trained(path: PathLike, device: torch.device) -> tuple:
    """``(model in eval mode, checkpoint config, mean, std)`` from a training checkpoint."""
    state = ckpt.load(Path(path), map_location=device)
    config = state["config"]
    model = build_model(config, state["num_classes"]).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), config, state["data_mean"], state["data_std"]


def _shuffled(test_set: Any, batch_size: int, device: torch.device, seed: int):
    """Pixel batches of the test set in a seeded random order (random replacement needs donors of
    other classes in the same batch)."""
    if isinstance(test_set, ArrayData):
        return MemoryLoader(test_set, batch_size, shuffle=True, device=device, seed=seed)
    return LazyLoader(test_set, batch_size, shuffle=True, device=device, seed=seed)


def evaluate_checkpoint(path: PathLike, *, out_dir: Optional[PathLike] = None, device: str = "auto",
                        batch_size: Optional[int] = None, fgsm: bool = True, pgd_steps: int = 0,
                        eps: float = 8 / 255, corruptions: bool = False,
                        cifar_c: Optional[PathLike] = None, ood: Optional[PathLike] = None,
                        seed: int = 0) -> Dict[str, Any]:
    """Evaluate the checkpoint ``path``; the metrics (percentages) as a dict, also in ``eval.json``."""
    dev = resolve_device(device)
    model, config, mean, std = load_trained(path, dev)
    bs = batch_size or config["eval_batch_size"]
    # pixel images in [0, 1]; the metrics normalise with the training statistics themselves
    data = build_data({**config, "normalize": "none", "eval_batch_size": bs, "augment": "none"},
                      device=dev)
    out_dir = Path(out_dir) if out_dir is not None else Path(path).parent / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)

    logits, labels = collect_predictions(model, data.test, mean, std)
    result: Dict[str, Any] = {
        "checkpoint": str(path), "model": config["model"], "method": config["method"],
        "dataset": config["dataset"], "epochs_trained": config["epochs"],
        "num_images": int(labels.shape[0]), "train_images": len(data.train_set),
        **classification_metrics(logits, labels),
    }
    bins = calibration_bins(*confidences(logits, labels))
    result["reliability"] = bins.as_dict()
    result["reliability_png"] = str(reliability_diagram(
        bins, out_dir / "reliability.png",
        title=f"{config['method']}: ECE {result['ece']:.2f}%, top-1 err {result['top1_err']:.2f}%"))
    if fgsm:
        result["fgsm_acc"] = fgsm_accuracy(model, data.test, mean, std, eps=eps)
    if pgd_steps:
        result["pgd_acc"] = pgd_accuracy(model, data.test, mean, std, eps=eps, steps=pgd_steps,
                                         generator=torch.Generator().manual_seed(seed))
        result["pgd_steps"] = pgd_steps
    if fgsm or pgd_steps:
        result["eps"] = eps
    if corruptions:
        for kind in ("gaussian_noise", "random_replacement"):
            result[f"{kind}_err"] = corruption_error(
                model, _shuffled(data.test_set, bs, dev, seed), mean, std, kind,
                generator=torch.Generator().manual_seed(seed))
    if cifar_c is not None:
        c = cifar_c_error(model, cifar_c, mean, std, batch_size=bs, device=dev)
        result["cifar_c_mce"], result["cifar_c_errors"] = c["mce"], c["errors"]
    if ood is not None:
        ood_set = load_folder_to_memory(ood, size=data.image_size)
        ood_batches = MemoryLoader(ood_set, bs, shuffle=False, device=dev)
        result["ood_aupr"] = ood_aupr(model, data.test, ood_batches, mean, std)
    (out_dir / "eval.json").write_text(json.dumps(result, indent=1))
    return result


def format_result(result: Dict[str, Any]) -> str:
    """The headline numbers of :func:`evaluate_checkpoint` as lines of text."""
    names = [("top1_err", "top-1 error"), ("top5_err", "top-5 error"), ("ece", "ECE (10 bins)"),
             ("fgsm_acc", "FGSM accuracy"), ("pgd_acc", "PGD accuracy"),
             ("gaussian_noise_err", "Gaussian-noise background error"),
             ("random_replacement_err", "random-replacement background error"),
             ("cifar_c_mce", "CIFAR-C mean corruption error"), ("ood_aupr", "OOD AUPR")]
    lines = [f"{result['method']} / {result['model']} on {result['num_images']} {result['dataset']} "
             "test images"]
    lines += [f"  {label:38s} {result[key]:6.2f} %" for key, label in names if key in result]
    lines.append(f"  {'NLL':38s} {result['nll']:6.3f}")
    return "\n".join(lines)
