"""Runtimes for exported style models: ONNX through onnxruntime, TorchScript through ``torch.jit``,
ExecuTorch through executorch's Python runtime.

Used by :func:`fast_style.io.model_files.open_model` only. Each returns a
:class:`Runtime`, called as ``run(x)`` on a (N, 3, H, W) float32 CPU batch in [0, 1]
(``run(x, style)`` for a model of S > 1 styles, style weights (S,) float32 fed as its
second input ``style_weights``) and returning the unclamped float32 CPU output, and the
file's string metadata. Only files written by ``scripts/export.py``
(metadata ``format`` = fast-style/onnx, /torchscript or /executorch) are accepted: other
exports (pytorch/examples' 0-255 models, for one) use other pixel scales.

ONNX devices: ``auto`` uses onnxruntime's CUDA provider when it is installed, else
the CPU; ``cpu`` / ``cuda`` pick one. ExecuTorch runs on the CPU only (XNNPACK); its
program takes one image at a time, up to the height and width it was exported for.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from fast_style.devices import resolve_device
from fast_style.errors import CheckpointError, FastStyleError, first_line
from fast_style.io.kinds import EXECUTORCH, EXPORTED
from fast_style.io.metadata import EXECUTORCH_FORMAT, ONNX_FORMAT, TORCHSCRIPT_FORMAT

EXTRA_FILE = "fast_style.json"
# the constant method of an ExecuTorch program that returns its metadata (a JSON string)
EXECUTORCH_METADATA_METHOD = "fast_style_metadata"
# the pip extra that installs a package that is not a dependency
_EXTRAS = {"onnxscript": "export", **{kind.packages[0]: kind.extra for kind in EXPORTED.values() if kind.extra}}


class RuntimeOptionError(FastStyleError):
    """A device that an exported model's runtime cannot use."""


def require(module: str, what: str):
    """Import ``module`` (onnx and onnxruntime are dependencies; onnxscript comes with the
    ``export`` extra, executorch with the ``executorch`` one), or say how to install it."""
    try:
        return __import__(module)
    except ImportError as exc:
        extra = _EXTRAS.get(module)
        hint = f'pip install -e ".[{extra}]"' if extra else f"pip install {module}"
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


@contextlib.contextmanager
def quiet_native_stderr():
    """Hide what native libraries print on file descriptor 2 while the block runs (executorch's
    CPU probing lines), and torch's pytree registration warnings that torchao logs on import;
    Python exceptions raised inside still propagate."""
    logger = logging.getLogger("torch.utils._pytree")
    level = logger.level
    logger.setLevel(logging.ERROR)
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
        logger.setLevel(level)


def _executorch_metadata(program, path: Path) -> dict[str, str]:
    if EXECUTORCH_METADATA_METHOD not in program.method_names:
        raise CheckpointError(
            f"{path}: an ExecuTorch program, but not one exported by fast-style (no '{EXECUTORCH_METADATA_METHOD}' "
            "method; its pixel scale is unknown); export it with scripts/export.py format=executorch")
    try:
        metadata = json.loads(program.load_method(EXECUTORCH_METADATA_METHOD).execute([])[0])
    except Exception as exc:  # noqa: BLE001 - any unreadable metadata is the same answer
        raise CheckpointError(f"{path}: unreadable fast-style metadata in the ExecuTorch program ({first_line(exc)})") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != EXECUTORCH_FORMAT:
        raise CheckpointError(f"{path}: an ExecuTorch program whose metadata is not fast-style's ('{EXECUTORCH_FORMAT}')")
    return {str(k): str(v) for k, v in metadata.items()}


def executorch_runtime(path: Path, *, device: str = "auto", threads: int | None = None):
    """(:class:`Runtime`, string metadata) of a ``.pte`` written by ``scripts/export.py format=executorch``.

    The program's ``forward`` takes one (1, 3, H, W) image (and the style weights (S,) of
    a multi-style model), H and W at most the bounds it was exported with (its memory is
    planned for them); the Runtime runs a batch one image at a time. ``threads`` is not
    used (XNNPACK's thread pool is executorch's own)."""
    if str(device) not in ("auto", "cpu", "None", ""):
        raise RuntimeOptionError(f"device={device}: ExecuTorch models run on the CPU here (XNNPACK); use device=cpu")
    with quiet_native_stderr():
        require(EXECUTORCH.packages[0], "running ExecuTorch models")
        from executorch.runtime import Runtime as ExecutorchRuntime

        try:
            program = ExecutorchRuntime.get().load_program(str(path))
            metadata = _executorch_metadata(program, path)
            method = program.load_method("forward")
        except CheckpointError:
            raise
        except Exception as exc:  # noqa: BLE001 - truncated flatbuffer, unknown operator ...: one line
            raise CheckpointError(f"{path}: not a readable ExecuTorch program ({first_line(exc, limit=200)})") from exc
    meta = method.metadata
    image_bounds = tuple(meta.input_tensor_meta(0).sizes())
    count = int(meta.input_tensor_meta(1).sizes()[0]) if meta.num_inputs() == 2 else 1
    if len(image_bounds) != 4 or meta.num_inputs() > 2:
        raise CheckpointError(f"{path}: expected an (N, 3, H, W) input and optionally style weights (S,), "
                              f"found {meta.num_inputs()} inputs, the first of shape {image_bounds}")
    max_height, max_width = image_bounds[2], image_bounds[3]
    min_side = int(metadata.get("min_size") or 1)

    def run(x: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
        height, width = x.shape[-2:]
        if min(height, width) < min_side:
            raise RuntimeOptionError(f"{path}: this ExecuTorch model takes images of at least {min_side} px a side; "
                                     f"got {height}x{width}")
        if height > max_height or width > max_width:
            raise RuntimeOptionError(
                f"{path}: this ExecuTorch model takes images up to {max_height}x{max_width} (its memory is planned "
                f"for that); got {height}x{width}: resize it (stylize.py size={min(max_height, max_width)}) or export again "
                f"with a larger max_size=")
        outputs = []
        for image in x.to("cpu", torch.float32).split(1):
            feed = [image.contiguous()] if style is None else [image.contiguous(), style]
            outputs.append(method.execute(feed)[0].clone())
        return torch.cat(outputs)

    return Runtime(run, count), metadata
