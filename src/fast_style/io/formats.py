"""Every checkpoint kind ``stylize.py`` accepts, detected from the file's content.

Kinds (:func:`detect_format`):

``style-model``       our ``.safetensors`` file (:func:`fast_style.io.model_files.load_style_model`);
``lightning``         a Lightning ``.ckpt``; only the transform net is loaded;
``pytorch-examples``  a state dict saved by pytorch/examples ``fast_neural_style``
                      (``.pth`` / ``.model``), pixel scale 0-255;
``state-dict``        a bare state dict of our own TransformerNet (``torch.save(net.state_dict())``);
``onnx``              an ONNX model (protobuf), e.g. from ``scripts/export.py format=onnx``;
``torchscript``       a TorchScript archive (``torch.jit.save``, a zip with ``code/`` and
                      ``constants.pkl``), e.g. from ``scripts/export.py format=torchscript``.

The last two are *deployed* models (:func:`detect_deployed`): they run whole through
:mod:`fast_style.io.runtimes` (onnxruntime / ``torch.jit.load``) and cannot be turned
back into a TransformerNet, so :func:`load_transformer` refuses them with one line.

Nothing is unpickled with code execution: torch files are read with
``torch.load(weights_only=True)`` and safetensors files contain no code at all.

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

import os
import re
import struct
import zipfile
from pathlib import Path

import torch

from fast_style.io.model_files import (
    CheckpointError,
    load_style_model,
    read_lightning_checkpoint,
    transformer_from_lightning,
)
from fast_style.nn.transformer import TransformerNet

KINDS = ("style-model", "lightning", "pytorch-examples", "state-dict", "onnx", "torchscript")
DEPLOYED_KINDS = ("onnx", "torchscript")
# ModelProto field tags that may follow ir_version (field 1): producer_name .. functions.
_ONNX_NEXT_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xCA}
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


def _is_safetensors(head: bytes, size: int) -> bool:
    """safetensors: 8-byte little-endian header length, then a JSON header starting with '{'."""
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 0 < length <= size - 8 and head[8:9] == b"{"


def _is_torch_file(path: Path, head: bytes) -> bool:
    """torch.save output: a zip archive (PK..) or a legacy pickle (protocol byte 0x80)."""
    return zipfile.is_zipfile(path) or head[:1] == b"\x80"


def _is_onnx(head: bytes) -> bool:
    """ONNX ModelProto: starts with field 1 (ir_version, varint tag 0x08), a small version
    number, then another ModelProto field (producer name, graph, opset import, ...)."""
    return len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] < 0x80 and head[2] in _ONNX_NEXT_TAGS


def _is_torchscript(path: Path) -> bool:
    """torch.jit.save archives hold ``<name>/constants.pkl`` and ``<name>/code/``; torch.save zips do not."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def detect_deployed(path: str | os.PathLike) -> str | None:
    """``"onnx"`` or ``"torchscript"`` when ``path``'s content is one (cheap: no model is loaded), else None."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        head = handle.read(16)
    if _is_safetensors(head, path.stat().st_size):
        return None
    if _is_onnx(head):
        return "onnx"
    if zipfile.is_zipfile(path) and _is_torchscript(path):
        return "torchscript"
    return None


def _torch_load(path: Path) -> object:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle safely is one message
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({reason[:200]})") from exc


def detect_format(path: str | os.PathLike) -> tuple[str, object]:
    """(kind, loaded payload) of a checkpoint file; :class:`CheckpointError` for anything else.

    The payload is ``None`` for safetensors, ONNX and TorchScript files (read later by
    their loaders) and the ``weights_only`` torch object otherwise.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; ckpt= must name a checkpoint file")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(16)
    if _is_safetensors(head, size):
        return "style-model", None
    deployed = detect_deployed(path)
    if deployed is not None:
        return deployed, None
    if not _is_torch_file(path, head):
        raise CheckpointError(
            f"{path}: not a checkpoint (expected a .safetensors style model, a Lightning .ckpt, "
            "a pytorch/examples .pth/.model state dict or an exported .onnx / TorchScript model)"
        )
    payload = _torch_load(path)
    if isinstance(payload, dict) and "state_dict" in payload:
        return "lightning", payload
    if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        keys = set(payload)
        if "conv1.conv2d.weight" in keys and "deconv3.conv2d.weight" in keys:
            return "pytorch-examples", payload
        if "conv1.conv.conv.weight" in keys and "head.conv.weight" in keys:
            return "state-dict", payload
    raise CheckpointError(
        f"{path}: a torch file, but neither a Lightning checkpoint nor a style-transfer state dict"
    )


def examples_key_map(state: dict[str, torch.Tensor]) -> dict[str, str]:
    """pytorch/examples key -> our key, for every non-stale key of ``state``.

    ``res<i>.conv1.conv2d.weight`` -> ``residuals.<i-1>.conv1.conv.weight``;
    ``conv1.conv2d.weight`` -> ``conv1.conv.conv.weight``; ``in4.bias`` -> ``up1.norm.bias``.
    Raises :class:`CheckpointError` for a key it does not know.
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
            raise CheckpointError(f"unexpected key {key!r} in a pytorch/examples state dict")
        mapping[key] = f"{ours}.{param}"
    return mapping


def transformer_from_examples(state: dict[str, torch.Tensor], *, source: str = "state dict") -> TransformerNet:
    """Our TransformerNet (eval mode, [0, 1] pixels) from a pytorch/examples state dict.

    Stale ``in*.running_mean/var`` keys (saved by old PyTorch versions) are dropped;
    width and the number of residual blocks are read from the tensor shapes; the
    0-255 pixel scale is folded into the first and last convolutions (module docstring).
    """
    try:
        mapping = examples_key_map(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc}") from exc
    ours = {mapping[k]: v.detach().to(torch.float32) for k, v in state.items() if k in mapping}
    width = ours["conv1.conv.conv.weight"].shape[0]
    num_residual = len({k.split(".")[1] for k in ours if k.startswith("residuals.")})
    ours["conv1.conv.conv.weight"] = ours["conv1.conv.conv.weight"] * PIXEL_SCALE
    ours["head.conv.weight"] = ours["head.conv.weight"] / PIXEL_SCALE
    ours["head.conv.bias"] = ours["head.conv.bias"] / PIXEL_SCALE
    model = TransformerNet(width=width, num_residual=num_residual)
    try:
        model.load_state_dict(ours)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: weights do not fit the pytorch/examples network ({str(exc).splitlines()[0]})") from exc
    return model.eval()


def examples_state_dict(model: TransformerNet) -> dict[str, torch.Tensor]:
    """The inverse of :func:`transformer_from_examples`: pytorch/examples keys, 0-255 scale.

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


def load_transformer(path: str | os.PathLike) -> tuple[TransformerNet, dict[str, str]]:
    """(TransformerNet in eval mode, info) for any supported checkpoint kind.

    ``info`` has at least ``kind`` and ``style_name`` (used in output file names:
    the metadata's style name, else the checkpoint file's stem).
    """
    path = Path(path)
    kind, payload = detect_format(path)
    if kind in DEPLOYED_KINDS:
        raise CheckpointError(
            f"{path}: an exported {'ONNX' if kind == 'onnx' else 'TorchScript'} model; it can be run "
            "(stylize.py) but not turned back into a PyTorch network: use the .safetensors/.ckpt/.pth it came from"
        )
    if kind == "style-model":
        model, metadata = load_style_model(path)
        info = {k: str(v) for k, v in metadata.items()}
    elif kind == "lightning":
        model, metadata = transformer_from_lightning(read_lightning_checkpoint(path), source=str(path))
        info = {k: str(v) for k, v in metadata.items()}
    elif kind == "pytorch-examples":
        model, info = transformer_from_examples(payload, source=str(path)), {}
    else:
        model = _from_own_state_dict(payload, source=str(path))
        info = {}
    info["kind"] = kind
    name = info.get("style_name")
    if not name or name == "unknown":
        info["style_name"] = path.stem
    return model.eval(), info


def _from_own_state_dict(state: dict[str, torch.Tensor], *, source: str) -> TransformerNet:
    width = state["conv1.conv.conv.weight"].shape[0]
    num_residual = len({k.split(".")[1] for k in state if k.startswith("residuals.")})
    norm = "batch" if any(k.endswith("running_mean") for k in state) else "instance"
    upsample = "nearest" if "up1.conv.conv.weight" in state else "transposed"
    model = TransformerNet(width=width, num_residual=num_residual, norm=norm, upsample=upsample)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: weights do not fit TransformerNet ({str(exc).splitlines()[0]})") from exc
    return model
