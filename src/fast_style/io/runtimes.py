"""Running exported style models in ``stylize.py``: ONNX through onnxruntime, TorchScript.

:func:`open_deployed` returns a :class:`DeployedStylizer`, which behaves like
:class:`fast_style.inference.Stylizer` for :mod:`fast_style.inference.pipeline`:
``stylizer(batch)`` maps (N, 3, H, W) float in [0, 1] to a clamped float32 CPU batch.

What differs from a PyTorch checkpoint:

- the model runs whole in float32 (``precision`` must be ``auto`` or ``fp32``;
  ``compile`` does not apply; ``channels_last`` is ignored);
- there is no tiling: tiling needs each layer separately (whole-image instance-norm
  statistics, :mod:`fast_style.inference.tiling`), and an exported graph is one opaque call. An
  image above ``pixel_budget`` pixels is refused with a one-line error
  (:class:`HugeImageError`) that names both ways out: a PyTorch checkpoint
  (``.safetensors``/``.ckpt``/``.pth``), or ``pixel_budget=0``, which runs it untiled
  (memory grows with the image: about 1.2 GB per 4 MP for the paper-sized net).

ONNX devices: ``auto`` uses onnxruntime's CUDA provider when it is installed and
working, else the CPU; ``cpu`` / ``cuda`` pick one. Only files written by
``scripts/export.py`` (metadata ``format = fast-style/onnx``) are accepted, because
other exports (pytorch/examples' 0-255 models, for one) use other pixel scales.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fast_style.io.model_files import CheckpointError
from fast_style.errors import FastStyleError

ONNX_FORMAT = "fast-style/onnx"
TORCHSCRIPT_FORMAT = "fast-style/torchscript"
EXTRA_FILE = "fast_style.json"
INSTALL_HINT = 'pip install -e ".[export]"'


class DeployedOptionError(FastStyleError):
    """An option that does not apply to an exported model."""


class HugeImageError(FastStyleError):
    """An image above the pixel budget given to a model that cannot be tiled."""


def require_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise FastStyleError(f"onnxruntime is not installed; ONNX models need it: {INSTALL_HINT}") from exc
    return onnxruntime


@dataclass
class DeployedStylizer:
    """An exported model behind the :class:`~fast_style.inference.Stylizer` interface."""

    run: Callable[[torch.Tensor], torch.Tensor]
    kind: str
    pixel_budget: int = 0
    info: dict[str, str] = field(default_factory=dict)

    def needs_tiling(self, height: int, width: int) -> bool:
        """True above the budget (such a batch is flushed alone, then refused by ``__call__``)."""
        return bool(self.pixel_budget) and height * width > self.pixel_budget

    def __call__(self, batch: torch.Tensor, *, progress: Callable[[], None] | None = None) -> torch.Tensor:
        if batch.dim() == 3:
            batch = batch[None]
        height, width = batch.shape[-2:]
        if self.needs_tiling(height, width):
            raise HugeImageError(
                f"{width}x{height} px is above pixel_budget={self.pixel_budget}, and an exported "
                f"{'ONNX' if self.kind == 'onnx' else 'TorchScript'} model cannot be tiled: use a PyTorch "
                "checkpoint (.safetensors/.ckpt/.pth) for huge images, or pass pixel_budget=0 to run it untiled"
            )
        out = self.run(batch.detach().to("cpu", torch.float32).contiguous())
        return out.float().clamp_(0, 1).cpu().contiguous()


def _check_options(kind: str, *, precision: str, compile: bool) -> None:
    name = "ONNX" if kind == "onnx" else "TorchScript"
    if str(precision) not in ("auto", "fp32", "None", ""):
        raise DeployedOptionError(f"precision={precision}: exported {name} models run in fp32; use precision=auto or fp32")
    if compile:
        raise DeployedOptionError(f"compile=true does not apply to an exported {name} model; drop it")


def _providers(ort, device: str) -> list[str]:
    available = ort.get_available_providers()
    if device in ("auto", "None", ""):
        return (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []) + ["CPUExecutionProvider"]
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise DeployedOptionError(f"device={device}: this onnxruntime has no CUDA provider (pip install onnxruntime-gpu); use device=cpu")
        return ["CUDAExecutionProvider"]
    raise DeployedOptionError(f"device={device}: ONNX models run on cpu or cuda (onnxruntime)")


def open_onnx(path: str | os.PathLike, *, device: str = "auto", threads: int | None = None):
    """(run function, metadata) of an ONNX file written by ``scripts/export.py``."""
    ort = require_onnxruntime()
    path = Path(path)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = int(threads)
    providers = _providers(ort, str(device))
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt protobuf, unsupported op ...: one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable ONNX model ({reason[:200]})") from exc
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    if metadata.get("format") != ONNX_FORMAT:
        raise CheckpointError(
            f"{path}: an ONNX model, but not one exported by fast-style (no '{ONNX_FORMAT}' metadata; its pixel "
            "scale is unknown); export it with scripts/export.py format=onnx"
        )
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise CheckpointError(f"{path}: expected one (N, 3, H, W) input, found {[(i.name, i.shape) for i in inputs]}")
    name = inputs[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.numpy()})[0])

    return run, metadata


def open_torchscript(path: str | os.PathLike, *, device: str = "auto"):
    """(run function, metadata) of a TorchScript file (``torch.jit.load``: no pickled Python runs)."""
    import warnings

    from fast_style.inference.runner import resolve_device

    path = Path(path)
    target = resolve_device(str(device))
    extra = {EXTRA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.jit.load(str(path), map_location=target, _extra_files=extra).eval()
    except Exception as exc:  # noqa: BLE001
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable TorchScript model ({reason[:200]})") from exc
    try:
        metadata = json.loads(extra[EXTRA_FILE] or "{}")
    except json.JSONDecodeError:
        metadata = {}
    if metadata.get("format") != TORCHSCRIPT_FORMAT:
        raise CheckpointError(
            f"{path}: a TorchScript model, but not one exported by fast-style (no {EXTRA_FILE} metadata); "
            "export it with scripts/export.py format=torchscript"
        )

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x.to(target)).cpu()

    return run, metadata


def open_deployed(
    path: str | os.PathLike, kind: str, *, device: str = "auto", precision: str = "auto",
    compile: bool = False, pixel_budget: int = 0,
) -> tuple[DeployedStylizer, dict[str, str]]:
    """A :class:`DeployedStylizer` and info (``kind``, ``style_name`` and the file's metadata)."""
    _check_options(kind, precision=precision, compile=compile)
    if kind == "onnx":
        run, metadata = open_onnx(path, device=device)
    elif kind == "torchscript":
        run, metadata = open_torchscript(path, device=device)
    else:
        raise ValueError(f"not a deployed kind: {kind!r}")
    info = {k: str(v) for k, v in metadata.items()}
    info["kind"] = kind
    if not info.get("style_name") or info["style_name"] == "unknown":
        info["style_name"] = Path(path).stem
    return DeployedStylizer(run, kind, int(pixel_budget or 0), info), info
