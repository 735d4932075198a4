"""pytorch/examples ``fast_neural_style`` state dicts (``.pth`` / ``.model``) <-> TransformerNet.

Their keys: ``conv1.conv2d.weight``, ``in1.weight``, ``res1.conv1.conv2d.weight``,
``deconv1.conv2d.weight`` ... ``deconv3.conv2d.bias``; files saved by old PyTorch
versions also hold stale ``in*.running_mean/var`` keys, which are dropped.

pytorch/examples -> TransformerNet. Their network computes ``f(255 x)`` and returns
pixels in 0-255; ours takes and returns [0, 1]. Both end in a convolution and start
with one, so the scale folds into the weights exactly:

    first conv:  W' = 255 W, b' = b          so  W' x + b' = W (255 x) + b
    last conv:   W' = W / 255, b' = b / 255  so  output' = output / 255

Everything in between is unchanged (instance norms see the same pre-activations).
Their upsampling is ``interpolate(scale_factor=2, mode="nearest")``; ours resizes to
the encoder's exact size, which is the same map whenever H and W are multiples of 4
(and keeps odd sizes intact otherwise).
"""

from __future__ import annotations

import re

import torch

from fast_style.errors import FastStyleError
from fast_style.nn.transformer import TransformerNet

PIXEL_SCALE = 255.0

# pytorch/examples module name -> our module name (weights and biases of each).
_EXAMPLES_LAYERS = {
    "conv1.conv2d": "conv1.conv.conv",
    "in1": "conv1.norm",
    "conv2.conv2d": "down1.conv.conv",
    "in2": "down1.norm",
    "conv3.conv2d": "down2.conv.conv",
    "in3": "down2.norm",
    "deconv1.conv2d": "up1.conv.conv",
    "in4": "up1.norm",
    "deconv2.conv2d": "up2.conv.conv",
    "in5": "up2.norm",
    "deconv3.conv2d": "head.conv",
}
_EXAMPLES_RESIDUAL = {"conv1.conv2d": "conv1.conv", "in1": "norm1", "conv2.conv2d": "conv2.conv", "in2": "norm2"}
_STALE = re.compile(r"(^|\.)in\d+\.(running_mean|running_var|num_batches_tracked)$")


def is_examples_state(keys: set[str]) -> bool:
    """True for the key set of a pytorch/examples state dict."""
    return "conv1.conv2d.weight" in keys and "deconv3.conv2d.weight" in keys


def examples_key_map(state: dict[str, torch.Tensor]) -> dict[str, str]:
    """pytorch/examples key -> our key, for every non-stale key of ``state``.

    ``res<i>.conv1.conv2d.weight`` -> ``residuals.<i-1>.conv1.conv.weight``;
    ``conv1.conv2d.weight`` -> ``conv1.conv.conv.weight``; ``in4.bias`` -> ``up1.norm.bias``.
    Raises :class:`FastStyleError` for a key it does not know.
    """
    mapping = {}
    for key in state:
        if _STALE.search(key):
            continue
        module, _, param = key.rpartition(".")
        match = re.fullmatch(r"res(\d+)\.(.+)", module)
        if match and match.group(2) in _EXAMPLES_RESIDUAL:
            ours = f"residuals.{int(match.group(1)) - 1}.{_EXAMPLES_RESIDUAL[match.group(2)]}"
        elif module in _EXAMPLES_LAYERS:
            ours = _EXAMPLES_LAYERS[module]
        else:
            raise FastStyleError(f"unexpected key {key!r} in a pytorch/examples state dict")
        mapping[key] = f"{ours}.{param}"
    return mapping


def from_examples(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our TransformerNet state dict ([0, 1] pixels) from a pytorch/examples one.

    Stale ``in*.running_mean/var`` keys are dropped and the 0-255 pixel scale is
    folded into the first and last convolutions (module docstring). Raises
    :class:`FastStyleError` for a key it does not know.
    """
    mapping = examples_key_map(state)
    ours = {mapping[k]: v.detach().to(torch.float32) for k, v in state.items() if k in mapping}
    if "conv1.conv.conv.weight" in ours and "head.conv.bias" in ours:
        ours["conv1.conv.conv.weight"] = ours["conv1.conv.conv.weight"] * PIXEL_SCALE
        ours["head.conv.weight"] = ours["head.conv.weight"] / PIXEL_SCALE
        ours["head.conv.bias"] = ours["head.conv.bias"] / PIXEL_SCALE
    return ours


def to_examples(model: TransformerNet) -> dict[str, torch.Tensor]:
    """The inverse of :func:`from_examples`: pytorch/examples keys, 0-255 scale.

    Useful to hand a model to tools that expect that format (and in tests).
    """
    inverse = {}
    for theirs, ours in _EXAMPLES_LAYERS.items():
        inverse[ours] = theirs
    for i in range(len(model.residuals)):
        for theirs, ours in _EXAMPLES_RESIDUAL.items():
            inverse[f"residuals.{i}.{ours}"] = f"res{i + 1}.{theirs}"
    out = {}
    for key, value in model.state_dict().items():
        module, _, param = key.rpartition(".")
        out[f"{inverse[module]}.{param}"] = value.detach().clone()
    out["conv1.conv2d.weight"] = out["conv1.conv2d.weight"] / PIXEL_SCALE
    out["deconv3.conv2d.weight"] = out["deconv3.conv2d.weight"] * PIXEL_SCALE
    out["deconv3.conv2d.bias"] = out["deconv3.conv2d.bias"] * PIXEL_SCALE
    return out


