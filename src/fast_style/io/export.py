"""Export a style model for deployment: ONNX (onnxruntime, ...), TorchScript (libtorch) or
ExecuTorch (phones: Android and iOS, XNNPACK).

    python scripts/export.py ckpt=<model> format=onnx|torchscript|executorch|safetensors [output=...] [overwrite=true]

``ckpt`` is any model file :func:`fast_style.io.model_files.open_model` opens with a
PyTorch network. The exported network takes and returns float32 RGB in [0, 1], (N, 3,
H, W), with N, H and W dynamic and the output the input's size (odd sizes too); it is
not clamped. A network of S > 1 styles takes a second input, ``style_weights``: float32
(S,), the weights over the styles listed in the metadata's ``styles`` (one-hot picks one,
non-negative weights summing to 1 mix them), used for the whole batch; a one-style
network has the one input, as always. ONNX: ``torch.onnx.export(dynamo=True)``, falling back to the
TorchScript-based exporter (``exporter=legacy`` forces it); metadata in
``metadata_props``. TorchScript: ``torch.jit.trace``, metadata in the extra file
``fast_style.json``. ExecuTorch: ``torch.export`` with H and W dynamic between
:data:`EXECUTORCH_MIN_SIDE` and ``max_size`` (the program's memory is planned for the
largest image, so the bound is an option: default :data:`EXECUTORCH_MAX_SIDE`) and N = 1
(a phone runs one frame at a time), lowered to the XNNPACK delegate, metadata as the JSON
string returned by the constant method ``fast_style_metadata``; it is checked in
executorch's own runtime within :data:`EXECUTORCH_TOLERANCE` (XNNPACK's convolutions sum in
another order). Before a file appears it is opened again and compared with the
PyTorch model on two sizes (one odd, one a batch of 2), for a multi-style network with
several weight vectors (the first and the last style alone, and a mix): a difference
above :data:`TOLERANCE` is an error and nothing is written. Files are written atomically; an
existing file is kept and a numbered name used unless ``overwrite``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from fast_style.errors import FastStyleError, first_line
from fast_style.io.files import atomic_output, unique_path
from fast_style.io.kinds import EXECUTORCH, EXPORTED, ONNX
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import open_model, save_style_model
from fast_style.io.runtimes import (
    EXECUTORCH_METADATA_METHOD,
    EXTRA_FILE,
    quiet_native_stderr,
    require,
)
from fast_style.nn.transformer import TransformerNet

SAFETENSORS = "safetensors"  # format= of a plain style model (a PyTorch file again)
FORMATS = {**{kind.name: kind.suffix for kind in EXPORTED.values()}, SAFETENSORS: ".safetensors"}
INPUT_NAME = "image"
STYLE_INPUT_NAME = "style_weights"
OUTPUT_NAME = "stylized"
TOLERANCE = 1e-4
# (N, C, H, W) of the verification inputs: one odd size, one batch of 2.
VERIFY_SHAPES = ((1, 3, 75, 101), (2, 3, 64, 96))
EXPORTERS = ("auto", "dynamo", "legacy")
EXECUTORCH_TOLERANCE = 1e-3
EXECUTORCH_MIN_SIDE = 16
EXECUTORCH_MAX_SIDE = 1024
EXECUTORCH_LARGEST = 4096  # max_size's own bound: the memory plan grows with its square (~9 GB here)


class ExportError(FastStyleError):
    """An export that cannot be done or whose result does not match PyTorch."""


@dataclass
class ExportResult:
    path: Path
    format: str
    max_diff: float | None = None
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    exporter: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        check = "" if self.max_diff is None else (
            f"; max |exported - PyTorch| = {self.max_diff:.2e} on "
            + ", ".join("x".join(str(s) for s in shape) for shape in self.shapes)
        )
        kind = "style model" if self.format == SAFETENSORS else f"{self.format} model"
        return f"{kind} written: {self.path}{check}"


def exportable(model: TransformerNet) -> nn.Module:
    """The module to trace: the model in eval mode, fp32, without gradients."""
    return model.eval().requires_grad_(False).float()


def export_metadata(metadata: StyleModelMetadata, *, source_kind: str, num_styles: int = 1) -> StyleModelMetadata:
    """The source's metadata plus what an exported file adds (versions, I/O description)."""
    inputs = f"{INPUT_NAME}: float32 RGB in [0, 1], (N, 3, H, W), any N, H, W"
    if num_styles > 1:
        inputs += (f"; {STYLE_INPUT_NAME}: float32 ({num_styles},), weights over the styles in 'styles' order "
                   "(one-hot: one style; non-negative, summing to 1: a mix), for the whole batch")
    return dataclasses.replace(metadata, extra={
        **metadata.extra,
        "torch_version": torch.__version__.split("+")[0],
        "source_kind": source_kind,
        "input": inputs,
        "output": f"{OUTPUT_NAME}: float32 RGB, (N, 3, H, W), same size; clamp to [0, 1]",
    })


@contextlib.contextmanager
def _quiet():
    """Silence exporter chatter (deprecation and tracer warnings, progress prints)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _example(module: TransformerNet) -> tuple[torch.Tensor, ...]:
    """The tracing inputs: a 64x64 image (the exported sizes are dynamic; this one only
    drives the trace) and, for S > 1 styles, the uniform style weights (S,)."""
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    count = module.num_styles
    return (image,) if count == 1 else (image, torch.full((count,), 1.0 / count))


def _input_names(module: TransformerNet) -> list[str]:
    return [INPUT_NAME] if module.num_styles == 1 else [INPUT_NAME, STYLE_INPUT_NAME]


def _onnx_dynamo(module: TransformerNet, path: Path, meta: dict[str, str], opset: int | None) -> None:
    image_axes = {0: "batch", 2: "height", 3: "width"}
    program = torch.onnx.export(
        module, _example(module), None, dynamo=True, verbose=False, opset_version=opset,
        input_names=_input_names(module), output_names=[OUTPUT_NAME], external_data=False,
        dynamic_shapes=(image_axes,) if module.num_styles == 1 else (image_axes, None),
    )
    for key, value in meta.items():
        program.model.metadata_props[key] = value
    program.save(str(path), external_data=False)


def onnx_bytes(model: TransformerNet, *, opset: int | None = None) -> bytes:
    """``model`` as an in-memory ONNX model with dynamic N, H and W (and the style-weight
    input of a multi-style model), from the TorchScript-based exporter, so that
    ``stylize.py`` can run a PyTorch checkpoint in onnxruntime (``runtime=auto``) after
    exporting it at start-up (what that export costs: docs/results.md, "Stylizing end to
    end")."""
    require(ONNX.packages[0], "ONNX export")
    axes = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    with _quiet():
        torch.onnx.export(
            exportable(model), _example(model), buffer, dynamo=False, opset_version=opset or 18,
            input_names=_input_names(model), output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
        )
    return buffer.getvalue()


def _onnx_legacy(module: nn.Module, path: Path, meta: dict[str, str], opset: int | None) -> None:
    import onnx

    proto = onnx.load_from_string(onnx_bytes(module, opset=opset))
    onnx.helper.set_model_props(proto, meta)
    onnx.save(proto, str(path))


def write_onnx(model: TransformerNet, path: Path, meta: dict[str, str], *, exporter: str = "auto",
               opset: int | None = None) -> str:
    """Export to ``path`` (overwritten; callers pass a temporary file); returns the exporter used."""
    require(ONNX.packages[0], "ONNX export")
    if exporter not in EXPORTERS:
        raise ExportError(f"exporter={exporter}: choose one of {', '.join(EXPORTERS)}")
    module = exportable(model)
    errors = []
    if exporter == "dynamo":
        require("onnxscript", "ONNX export (torch.onnx dynamo exporter)")
    if exporter in ("auto", "dynamo"):
        try:
            with _quiet():
                _onnx_dynamo(module, path, {**meta, "exporter": "torch.onnx dynamo"}, opset)
            return "dynamo"
        except Exception as exc:  # noqa: BLE001 - fall back to the TorchScript-based exporter
            errors.append(f"dynamo: {first_line(exc)}")
            if exporter == "dynamo":
                raise ExportError(f"torch.onnx.export(dynamo=True) failed: {first_line(exc)}") from exc
    try:
        with _quiet():
            _onnx_legacy(module, path, {**meta, "exporter": "torch.onnx legacy (TorchScript)"}, opset)
        return "legacy"
    except Exception as exc:  # noqa: BLE001
        errors.append(f"legacy: {first_line(exc)}")
        raise ExportError("ONNX export failed (" + "; ".join(errors) + ")") from exc


def write_torchscript(model: TransformerNet, path: Path, meta: dict[str, str]) -> str:
    """Trace and save to ``path`` with ``meta`` as the ``fast_style.json`` extra file."""
    module = exportable(model)
    try:
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(module, _example(module), check_trace=False)
            torch.jit.save(traced, str(path), _extra_files={EXTRA_FILE: json.dumps(meta, sort_keys=True)})
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"TorchScript export failed: {first_line(exc)}") from exc
    return "jit.trace"


def write_executorch(model: TransformerNet, path: Path, meta: dict[str, str], *, max_size: int) -> str:
    """``torch.export`` (H, W in [EXECUTORCH_MIN_SIDE, max_size], N = 1), XNNPACK lowering,
    ``.pte`` to ``path`` with ``meta`` returned by the constant method ``fast_style_metadata``."""
    require(EXECUTORCH.packages[0], "ExecuTorch export")
    module = exportable(model)
    side = torch.export.Dim("height", min=EXECUTORCH_MIN_SIDE, max=max_size)
    width = torch.export.Dim("width", min=EXECUTORCH_MIN_SIDE, max=max_size)
    example = _example(module)
    shapes = ({2: side, 3: width},) if module.num_styles == 1 else ({2: side, 3: width}, None)
    try:
        with _quiet(), quiet_native_stderr(), torch.no_grad():
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
            from executorch.exir import to_edge_transform_and_lower

            program = torch.export.export(module, example, dynamic_shapes=shapes)
            lowered = to_edge_transform_and_lower(
                program, partitioner=[XnnpackPartitioner()],
                constant_methods={EXECUTORCH_METADATA_METHOD: json.dumps(meta, sort_keys=True)},
            ).to_executorch()
            path.write_bytes(lowered.buffer)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"ExecuTorch export failed: {first_line(exc)}") from exc
    return "torch.export + XNNPACK"


# -------------------------------------------------------------- reading and checking


def verification_inputs(shapes=VERIFY_SHAPES) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1234)
    return [torch.rand(shape, generator=generator) for shape in shapes]


def verification_styles(num_styles: int) -> list[torch.Tensor | None]:
    """Style weights the check runs with: None for one style; else the first and the last
    style alone (one-hot) and an uneven mix, w_s = (s + 1) / sum(1..S)."""
    if num_styles == 1:
        return [None]
    eye = torch.eye(num_styles)
    mix = torch.arange(1, num_styles + 1, dtype=torch.float32)
    return [eye[0], eye[-1], mix / mix.sum()]


def max_difference(model: TransformerNet, run, inputs: list[torch.Tensor],
                   styles: list[torch.Tensor | None] = (None,)) -> float:
    """Max |run(x, w) - model(x, w)| over ``inputs`` and style weights ``styles`` (fp32,
    unclamped); checks output shapes."""
    worst = 0.0
    model = model.eval().float()
    for x in inputs:
        for style in styles:
            with torch.no_grad():
                expected = model(x, style)
            got = run(x) if style is None else run(x, style)
            if tuple(got.shape) != tuple(expected.shape):
                raise ExportError(f"exported model returned shape {tuple(got.shape)} for input {tuple(x.shape)}; "
                                  f"expected {tuple(expected.shape)}")
            worst = max(worst, (got.float() - expected).abs().max().item())
    return worst


def verify(path: Path, fmt: str, model: TransformerNet, *, shapes=VERIFY_SHAPES, tolerance: float = TOLERANCE) -> float:
    """Max difference between the exported file and ``model`` (every weight vector of
    :func:`verification_styles`); ExportError above ``tolerance``."""
    run = open_model(path, device="cpu", allow_torchscript=True).runtime
    if run.num_styles != model.num_styles:
        raise ExportError(f"exported {fmt} model takes {run.num_styles} style weight(s), the network holds "
                          f"{model.num_styles} styles; nothing was written")
    worst = max_difference(model, run, verification_inputs(shapes), verification_styles(model.num_styles))
    if not worst <= tolerance:
        raise ExportError(
            f"exported {fmt} model differs from PyTorch by {worst:.3g} (> {tolerance:g}) on sizes "
            + ", ".join("x".join(map(str, s[-2:])) for s in shapes) + "; nothing was written"
        )
    return worst


# ------------------------------------------------------------------------ the command


def default_output(ckpt: Path, style: str, fmt: str) -> Path:
    return ckpt.with_name(f"{style}{FORMATS[fmt]}")


def export_model(
    ckpt: str | os.PathLike,
    fmt: str = ONNX.name,
    output: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    exporter: str = "auto",
    opset: int | None = None,
    check: bool = True,
    tolerance: float | None = None,
    max_size: int | None = None,
) -> ExportResult:
    """Export the transform net of any supported checkpoint; see the module docstring.
    ``tolerance``: None is :data:`TOLERANCE` (:data:`EXECUTORCH_TOLERANCE` for ExecuTorch);
    ``max_size``: format=executorch only, the largest height and width the program takes."""
    if fmt not in FORMATS:
        raise ExportError(f"format={fmt}: choose onnx, torchscript, executorch, safetensors or web")
    if max_size is not None and fmt != EXECUTORCH.name:
        raise ExportError(f"max_size={max_size} is an option of format=executorch only (format={fmt})")
    if fmt == EXECUTORCH.name:
        max_size = EXECUTORCH_MAX_SIDE if max_size is None else max_size
        if not isinstance(max_size, int) or isinstance(max_size, bool) or not (
                EXECUTORCH_MIN_SIDE <= max_size <= EXECUTORCH_LARGEST):
            raise ExportError(f"max_size={max_size!r}: the largest image side the ExecuTorch program takes, an "
                              f"integer from {EXECUTORCH_MIN_SIDE} to {EXECUTORCH_LARGEST} (default {EXECUTORCH_MAX_SIDE})")
    if tolerance is None:
        tolerance = EXECUTORCH_TOLERANCE if fmt == EXECUTORCH.name else TOLERANCE
    ckpt = Path(ckpt)
    source = open_model(ckpt)
    model, style = source.require_network("export"), source.style_name
    target = Path(output).expanduser() if output else default_output(ckpt, style, fmt)
    if target.is_dir():
        target = target / f"{style}{FORMATS[fmt]}"
    if not target.parent.is_dir():
        raise ExportError(f"{target}: folder {target.parent} does not exist; create it or choose another output")
    if target.exists() and os.path.samefile(target, ckpt):
        target = unique_path(target)  # never write over the checkpoint itself
    elif not overwrite:
        target = unique_path(target)
    if fmt == SAFETENSORS:
        save_style_model(model, target, metadata=dataclasses.replace(source.metadata, style_name=style))
        return ExportResult(target, fmt)
    metadata = dataclasses.replace(export_metadata(source.metadata, source_kind=source.kind,
                                                   num_styles=model.num_styles), style_name=style)
    meta = metadata.to_strings(format=EXPORTED[fmt].format_tag)
    if fmt == EXECUTORCH.name:
        meta.update(min_size=str(EXECUTORCH_MIN_SIDE), max_size=str(max_size), input=meta["input"].replace(
            "(N, 3, H, W), any N, H, W", f"(1, 3, H, W), {EXECUTORCH_MIN_SIDE} <= H, W <= {max_size}"))
    with atomic_output(target, suffix=FORMATS[fmt]) as tmp:
        if fmt == ONNX.name:
            used = write_onnx(model, tmp, meta, exporter=exporter, opset=opset)
        elif fmt == EXECUTORCH.name:
            used = write_executorch(model, tmp, meta, max_size=max_size)
        else:
            used = write_torchscript(model, tmp, meta)
        worst = verify(tmp, fmt, model, tolerance=tolerance) if check else None
    return ExportResult(target, fmt, worst, [tuple(s) for s in VERIFY_SHAPES] if check else [], used, meta)
