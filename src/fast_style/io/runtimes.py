"""Runtimes for exported style models: ONNX through onnxruntime, TorchScript through ``torch.jit``.

Used by :func:`fast_style.io.model_files.open_model` only. Each returns a
:class:`Runtime`, called as ``run(x)`` on a (N, 3, H, W) float32 CPU batch in [0, 1]
(``run(x, style)`` for a model of S > 1 styles, style weights (S,) float32 fed as its
second input ``style_weights``) and returning the unclamped float32 CPU output, and the
file's string metadata. Only files written by ``scripts/export.py``
(metadata ``format`` = fast-style/onnx or fast-style/torchscript) are accepted: other
exports (pytorch/examples' 0-255 models, for one) use other pixel scales.

ONNX devices: ``auto`` uses onnxruntime's CUDA provider when it is installed, else
the CPU; ``cpu`` / ``cuda`` pick one.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from fast_style.devices import resolve_device
from fast_style.errors import CheckpointError, FastStyleError, first_line
from fast_style.io.metadata import ONNX_FORMAT, TORCHSCRIPT_FORMAT

EXTRA_FILE = "fast_style.json"


class RuntimeOptionError(FastStyleError):
    """A device that an exported model's runtime cannot use."""


def require(module: str, what: str):
    """Import ``module`` (onnx and onnxruntime are dependencies; onnxscript comes with the
    ``export`` extra), or say how to install it."""
    try:
        return __import__(module)
    except ImportError as exc:
        hint = 'pip install -e ".[export]"' if module == "onnxscript" else f"pip install {module}"
        raise FastStyleError(f"{what} needs the '{module}' package, which is not installed; {hint}") from exc


def _providers(ort, device: str) -> list[str]:
    available = ort.get_available_providers()
    if device in ("auto", "None", ""):
        return (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []) + ["CPUExecutionProvider"]
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise RuntimeOptionError(f"device={device}: this onnxruntime has no CUDA provider (pip install onnxruntime-gpu); use device=cpu")
        return ["CUDAExecutionProvider"]
    raise RuntimeOptionError(f"device={device}: ONNX models run on cpu or cuda (onnxruntime)")


def _session(ort, model: str | bytes, *, providers: list[str], threads: int | None):
    """An onnxruntime session of a file path or serialized model. ``threads``: intra-op
    threads (None: onnxruntime's choice). Idle threads sleep instead of spinning, so
    they do not take the cores from the image decoding and encoding between batches."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = int(threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, sess_options=options, providers=providers)


@dataclass
class Runtime:
    """An exported model's run function and how many styles it holds: ``runtime(x)`` for
    one style, ``runtime(x, style)`` with weights (S,) for S > 1 (one mix for the batch;
    an exported graph takes no per-pixel map)."""

    run: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    num_styles: int = 1

    def __call__(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_styles == 1:
            return self.run(x, None)
        if style is None or tuple(style.shape) != (self.num_styles,):
            got = "none" if style is None else f"shape {tuple(style.shape)}"
            raise RuntimeOptionError(f"this exported model holds {self.num_styles} styles and takes one style-weight "
                                     f"vector ({self.num_styles},), got {got}")
        return self.run(x, style.detach().to("cpu", torch.float32).contiguous())


def _onnx_inputs(session) -> tuple[str, str | None, int]:
    """(image input, style-weight input or None, number of styles) of a session: one input
    (N, 3, H, W), or that and a vector (S,)."""
    inputs = session.get_inputs()
    image_ok = bool(inputs) and len(inputs[0].shape) == 4
    style_shape = inputs[1].shape if len(inputs) == 2 else None
    if not image_ok or len(inputs) > 2 or (style_shape is not None and not (
            len(style_shape) == 1 and isinstance(style_shape[0], int) and style_shape[0] > 1)):
        raise ValueError(f"expected an (N, 3, H, W) input and optionally style weights (S,), found "
                         f"{[(i.name, i.shape) for i in inputs]}")
    return inputs[0].name, inputs[1].name if style_shape else None, style_shape[0] if style_shape else 1


def _runner(session) -> Runtime:
    """The :class:`Runtime` of an onnxruntime session."""
    image, style_input, count = _onnx_inputs(session)

    def run(x: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
        feed = {image: x.numpy()} if style_input is None else {image: x.numpy(), style_input: style.numpy()}
        return torch.from_numpy(session.run(None, feed)[0])

    return Runtime(run, count)


def onnx_runtime(path: Path, *, device: str = "auto", threads: int | None = None):
    """(:class:`Runtime`, string metadata) of an ONNX file written by ``scripts/export.py``."""
    ort = require("onnxruntime", "running ONNX models")
    providers = _providers(ort, str(device))
    try:
        session = _session(ort, str(path), providers=providers, threads=threads)
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt protobuf, unsupported op ...: one line
        raise CheckpointError(f"{path}: not a readable ONNX model ({first_line(exc, limit=200)})") from exc
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    if metadata.get("format") != ONNX_FORMAT:
        raise CheckpointError(
            f"{path}: an ONNX model, but not one exported by fast-style (no '{ONNX_FORMAT}' metadata; its pixel "
            "scale is unknown); export it with scripts/export.py format=onnx"
        )
    try:
        return _runner(session), metadata
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def cpu_runtime(model: bytes, *, threads: int | None = None) -> Runtime:
    """The :class:`Runtime` of a serialized ONNX model (this project's own in-memory export of
    a PyTorch network) on onnxruntime's CPU provider."""
    ort = require("onnxruntime", "running ONNX models")
    return _runner(_session(ort, model, providers=["CPUExecutionProvider"], threads=threads))


def torchscript_runtime(path: Path, *, device: str = "auto", threads: int | None = None):
    """(:class:`Runtime`, string metadata) of a TorchScript file (``torch.jit.load``: no pickled Python runs).
    ``threads`` is not used: TorchScript runs on torch's own intra-op threads."""
    target = resolve_device(str(device))
    extra = {EXTRA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.jit.load(str(path), map_location=target, _extra_files=extra).eval()
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: not a readable TorchScript model ({first_line(exc, limit=200)})") from exc
    try:
        metadata = json.loads(extra[EXTRA_FILE] or "{}")
    except json.JSONDecodeError:
        metadata = {}
    if metadata.get("format") != TORCHSCRIPT_FORMAT:
        raise CheckpointError(
            f"{path}: a TorchScript model, but not one exported by fast-style (no {EXTRA_FILE} metadata); "
            "export it with scripts/export.py format=torchscript"
        )

    norm = module.state_dict().get("conv1.norm.weight")
    count = int(norm.shape[0]) if isinstance(norm, torch.Tensor) and norm.dim() == 2 else 1  # (S, C): S styles

    def run(x: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            return (module(x.to(target)) if style is None else module(x.to(target), style.to(target))).cpu()

    return Runtime(run, count), metadata
