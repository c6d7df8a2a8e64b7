"""Class activation maps: Grad-CAM (ResizeMix's saliency ablations) and CAM (SnapMix).

* Grad-CAM — Selvaraju et al., ICCV 2017, arXiv:1610.02391, as ResizeMix's ``tools/grad_cam.py``
  uses it (methods.md §2.4): a hook on the target layer, class = the predicted one (or given),
  channel weights = spatial mean of the gradient of the selected logit, map = ReLU of the channel
  *mean* of weight·activation, divided by its per-image maximum, bilinearly upsampled.
* CAM — Zhou et al., CVPR 2016: the last feature map projected on the classifier's weights for a
  class (SnapMix's "semantic percent map" is this, shifted to ≥ 0 and summed to one).

Only the activations' gradient is computed (no weight gradients); the model's modes are restored.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .filters import resize_maps
from .model import enable_grad, model_mode, unwrap


def _layer(model: nn.Module, layer: Union[str, nn.Module]) -> nn.Module:
    if isinstance(layer, nn.Module):
        return layer
    modules = dict(model.named_modules())
    if layer not in modules:
        names = [n for n in modules if n][:30]
        raise ValueError(f"expected layer to name a submodule of the model, got {layer!r}; "
                         f"some names: {', '.join(names)}")
    return modules[layer]


def _forward_with_features(model: nn.Module, layer: nn.Module, x: Tensor):
    """``(logits, features)`` with the layer's output captured by a temporary hook."""
    captured = []
    handle = layer.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        logits = model(x)
    finally:
        handle.remove()
    if not captured or not isinstance(captured[0], Tensor) or captured[0].ndim != 4:
        raise ValueError("the CAM layer must be called by the forward and output (B, K, h, w)")
    return logits, captured[0]


def grad_cam(model: nn.Module, x: Tensor, layer: Union[str, nn.Module], target: Optional[Tensor] = None,
             *, training: Optional[bool] = False) -> Tensor:
    """Grad-CAM maps ``(B, H, W)`` in [0, 1] for ``target`` class ids (default: predicted class).

    ``training``: the mode of the pass (``False`` = eval, the default; ``None`` = leave as is)."""
    net = unwrap(model)
    layer = _layer(net, layer)
    with enable_grad(), model_mode(net, training):
        # the input requires grad so the layer's output is in a graph even for a parameter-free head
        logits, feats = _forward_with_features(net, layer, x.detach().requires_grad_(True))
        cls = logits.argmax(dim=1) if target is None else target.long()
        picked = logits.float().gather(1, cls[:, None]).sum()
        (grad,) = torch.autograd.grad(picked, feats)
    weights = grad.float().mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
    cam = F.relu((weights * feats.detach().float()).mean(dim=1))  # (B, h, w)
    cam = cam / cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return resize_maps(torch.nan_to_num(cam), tuple(x.shape[-2:]))


def class_activation_map(model: nn.Module, x: Tensor, layer: Union[str, nn.Module],
                         classifier: nn.Linear, target: Tensor, *,
                         training: Optional[bool] = False) -> Tensor:
    """CAM ``(B, H, W)`` for ``target`` classes: ``features · classifier.weight[target] + bias``,
    bilinearly upsampled to the input size (no gradient, one forward)."""
    net = unwrap(model)
    layer = _layer(net, layer)
    with torch.no_grad(), model_mode(net, training):
        _, feats = _forward_with_features(net, layer, x)
        w = classifier.weight[target.long()].float()  # (B, K)
        cam = torch.einsum("bkhw,bk->bhw", feats.float(), w)
        if classifier.bias is not None:
            cam = cam + classifier.bias[target.long()].float()[:, None, None]
        return resize_maps(cam, tuple(x.shape[-2:]))
