"""What the mixers that work on a network's hidden features share: finding a layer by name,
reading or replacing its output with a one-shot forward hook, and the two-image feature mixer base
(Manifold Mixup, AlignMix) whose ``_apply`` marks the batch as mixed inside the network."""

from __future__ import annotations

from typing import Any, Callable, Optional

from torch import Tensor, nn

from ..batch import MixedBatch, NoMix
from ..blend import blend
from ..saliency.model import unwrap
from ._pair import PairMixer

#: the layer name that means "the images themselves" (plain input mixup)
INPUT = "input"

#: modules that end a classification network after its last feature map (skipped when looking
#: for that map in a model that does not name it)
_HEAD_MODULES = (nn.Linear, nn.Flatten, nn.Identity, nn.Dropout, nn.AdaptiveAvgPool2d, nn.AvgPool2d,
                 nn.AdaptiveMaxPool2d, nn.MaxPool2d, nn.ReLU, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)


def find_module(model: nn.Module, name: str, who: str) -> nn.Module:
    """The submodule called ``name`` (also under a DDP/DataParallel ``module.`` prefix)."""
    modules = dict(model.named_modules())
    for key in (name, f"module.{name}"):
        if key in modules:
            return modules[key]
    names = [n for n in modules if n][:30]
    raise ValueError(f"{who}: model has no submodule named {name!r}; some of its names: "
                     f"{', '.join(names)}")


def feature_layer(model: nn.Module, layer: Optional[str], who: str) -> str:
    """The name of the layer whose output is the last feature map: ``layer`` if given, else the
    model's ``cam_layer`` attribute (every :mod:`mixkit.models` network has one), else the last
    direct child that is not part of the head (linear, pooling, normalisation, activation,
    dropout, flatten) — ``layer4`` of a ResNet-style ``stages → pool → fc`` network."""
    if layer is not None:
        return layer
    net = unwrap(model)
    named = getattr(net, "cam_layer", None)
    if isinstance(named, str):
        return named
    body = [name for name, child in net.named_children() if not isinstance(child, _HEAD_MODULES)]
    if not body:
        raise ValueError(f"{who}: cannot tell which layer outputs the model's last feature map (no "
                         "cam_layer attribute); pass its name")
    return body[-1]


def _check_output(output: object, layer: str, batch: int, feature_map: bool, who: str) -> Tensor:
    ok = isinstance(output, Tensor) and output.ndim >= 1 and output.shape[0] == batch
    if feature_map:
        ok = ok and output.ndim == 4
    if not ok:
        got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        want = "one feature map (B, D, h, w)" if feature_map else "one tensor (B, ...)"
        raise TypeError(f"{who}: layer {layer!r} must output {want} with B = {batch}, got {got}")
    return output


def hooked_forward(model: nn.Module, layer: str, x: Tensor, change: Callable[[Tensor], Tensor],
                   who: str, *, feature_map: bool = False) -> Tensor:
    """``model(x)`` with the output of submodule ``layer`` replaced once by ``change(output)``
    (a layer called twice in one forward is changed the first time only). ``feature_map``: the
    output must be ``(B, D, h, w)``."""
    fired = []

    def once(module: nn.Module, args: object, output: object) -> Tensor:
        handle.remove()
        fired.append(True)
        return change(_check_output(output, layer, x.shape[0], feature_map, who))

    handle = find_module(model, layer, who).register_forward_hook(once)
    try:
        logits = model(x)
    finally:
        handle.remove()
    if not fired:
        raise RuntimeError(f"{who}: layer {layer!r} was not called by the model's forward, so "
                           "nothing was mixed; name a layer the forward runs")
    return logits


class _Stop(Exception):
    """Raised by the capturing hook to end a forward pass early."""


def layer_output(model: nn.Module, layer: str, x: Tensor, who: str) -> Tensor:
    """The output ``(B, C, h, w)`` of ``model``'s submodule ``layer`` on ``x``; the forward stops
    right there (the later layers are not run)."""
    captured = []

    def capture(module: nn.Module, args: object, output: object) -> None:
        captured.append(output)
        raise _Stop

    handle = find_module(model, layer, who).register_forward_hook(capture)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"{who}: layer {layer!r} was not called by the model's forward")
    return _check_output(captured[0], layer, x.shape[0], True, who)


class FeaturePairMixer(PairMixer):
    """Two-image mixers that mix the output of a hidden layer (or the input, ``layer == INPUT``).

    Params carry ``perm``, ``lam`` and ``layer``. ``_apply`` blends the images for the input
    layer; otherwise it returns the clean batch marked ``feature_level`` (``out.inputs`` refuses
    to be used alone) and :meth:`model_forward` runs the model with the layer's output replaced by
    ``_mix_features(output, params)``. Subclasses implement ``_mix_features`` and may override
    ``_layer_name`` (default: ``params.layer``).
    """

    mixes_features = True
    #: the output of the mixed layer must be a feature map ``(B, D, h, w)``
    needs_feature_map = False

    def _apply(self, x: Tensor, y: Tensor, params: Any) -> MixedBatch:
        if params.layer == INPUT:
            mixed, lam = blend(x, params.perm, params.lam)
            return self._result(mixed, y, params.perm, lam, params)
        return self._result(x, y, params.perm, float(params.lam), params,
                            feature_level=f"{type(self).__name__} at layer {params.layer!r}")

    def model_forward(self, model: nn.Module, out: MixedBatch) -> Tensor:
        params = out.params
        if isinstance(params, NoMix) or params.layer == INPUT:
            return model(out.inputs)
        return hooked_forward(model, self._layer_name(model, params), out._inputs,
                              lambda features: self._mix_features(features, params),
                              type(self).__name__, feature_map=self.needs_feature_map)

    def _layer_name(self, model: nn.Module, params: Any) -> str:
        return params.layer

    def _mix_features(self, features: Tensor, params: Any) -> Tensor:
        raise NotImplementedError
