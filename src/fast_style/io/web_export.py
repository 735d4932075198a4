"""Export a style model as a static web page that runs it in the browser (onnxruntime-web).

    python scripts/export.py ckpt=<model> format=web [output=<folder>] [ort_dist=<onnxruntime-web dist/>] [overwrite=true]

The folder (default: ``<style>-web/`` beside the checkpoint) is self-contained and needs no
build step; ``python -m http.server`` in it serves it::

    index.html  the page (fast_style/io/web/index.html)
    app.js      its script (fast_style/io/web/app.js): photo, webcam, strength, colour, mixing
    model.onnx  the network, exported and verified like format=onnx (fast_style.io.export)
    model.json  metadata: styles, multi-style, precision written and its measured PSNR, ORT source
    README.md   how to serve it, which model was written and why
    ort/        only with ``ort_dist``: onnxruntime-web's ort.min.mjs and its jsep wasm (offline use)

Without ``ort_dist`` the page imports onnxruntime-web :data:`ORT_VERSION` from :data:`CDN`.

**fp16 weights.** ``model.onnx`` holds fp16 weights (half the bytes) when that meets the
project's precision bound, else fp32: :func:`fp16_weights` stores each float32 initializer
of at least :data:`FP16_MIN_ELEMENTS` values as float16 followed by a ``Cast`` back to
float32, so the arithmetic stays fp32 (runs on every onnxruntime-web backend, wasm
included; onnxruntime folds the casts at load) and only the weights are rounded. The
bound is judged by ``judge`` (the caller passes
:meth:`fast_style.inference.precision.Agreement.of`: PSNR >= 40 dB and mean <= 1/255;
``io`` sits below ``inference`` and cannot import it) on :func:`sample_photos`, for every
style weight vector of :func:`fast_style.io.export.verification_styles`; both models run in
onnxruntime (Python), outputs clamped to [0, 1]. Without a ``judge`` fp32 is written.

Bad input is one line (:class:`~fast_style.io.export.ExportError`): a file without a
PyTorch network, an ``ort_dist`` without onnxruntime-web's files, an output folder that
is a file or holds files other than a previous web export's (replaced only with
``overwrite``; a folder holding anything else is never deleted).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from fast_style.io.export import (
    ExportError,
    export_metadata,
    verification_styles,
    verify,
    write_onnx,
)
from fast_style.io.files import owned_prefix
from fast_style.io.kinds import ONNX
from fast_style.io.model_files import open_model

WEB_FORMAT = "fast-style/web"
ORT_VERSION = "1.31.1"
CDN = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ORT_VERSION}/dist/"
# what the page loads from onnxruntime-web's dist/: the module (WebGPU through JSEP, and
# wasm with threads and SIMD) and the wasm binary with its loader
ORT_FILES = ("ort.min.mjs", "ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm")
PAGE_FILES = ("index.html", "app.js")
FP16_MIN_ELEMENTS = 16  # smaller float tensors (Resize scales, ...) stay float32
SAMPLE_SIDE = 192  # the sample photos' longer side for the fp16 check


@dataclass
class WebExportResult:
    folder: Path
    precision: str  # "fp16" or "fp32": the weights in model.onnx
    psnr_db: float | None  # the fp16 weights' worst PSNR against fp32 (None: not measured)
    mean_diff: float | None
    max_diff: float  # the verification of the fp32 export against PyTorch
    model_bytes: int
    ort_source: str
    styles: list[str] = field(default_factory=list)

    def line(self) -> str:
        why = (f"fp16 weights: PSNR {self.psnr_db:.1f} dB against fp32" if self.precision == "fp16" else
               "fp32 weights" + (f" (fp16: PSNR {self.psnr_db:.1f} dB, below the bound)"
                                 if self.psnr_db is not None else ""))
        return (f"web page written: {self.folder} (model.onnx {self.model_bytes / 1e6:.2f} MB, {why}; "
                f"onnxruntime-web from {self.ort_source}); serve it: cd {self.folder} && python -m http.server")


# ------------------------------------------------------------------------ fp16 weights


def fp16_weights(proto):
    """A copy of ONNX ``proto`` whose float32 initializers of >= :data:`FP16_MIN_ELEMENTS`
    values are stored as float16, each followed by a ``Cast(to=FLOAT)`` under its old name
    (prepended to the graph, so the order stays topological)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    casts, kept = [], []
    for init in graph.initializer:
        values = numpy_helper.to_array(init)
        if init.data_type != TensorProto.FLOAT or values.size < FP16_MIN_ELEMENTS:
            kept.append(init)
            continue
        half = numpy_helper.from_array(values.astype(np.float16), name=f"{init.name}__fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}__to_fp32"))
    graph.ClearField("initializer")
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    graph.ClearField("node")
    graph.node.extend(casts + nodes)
    # inputs listing initializers (old IR) would now name tensors no longer fed from outside
    names = {c.output[0] for c in casts}
    inputs = [i for i in graph.input if i.name not in names]
    graph.ClearField("input")
    graph.input.extend(inputs)
    return model


def sample_photos(side: int = SAMPLE_SIDE) -> list[torch.Tensor]:
    """scikit-image's astronaut, chelsea and coffee, longer side ``side`` (area resize), as
    (1, 3, H, W) float32 in [0, 1]; drawn gradients where scikit-image is missing."""
    from PIL import Image

    try:
        from skimage import data

        arrays = [data.astronaut(), data.chelsea(), data.coffee()]
    except ImportError:
        yy, xx = np.mgrid[0:side, 0:side] / side
        arrays = [(np.stack([np.sin(xx * 7 + k), np.cos(yy * 5 - k), np.sin((xx + yy) * 9)], -1) * 127.5 + 127.5
                   ).astype(np.uint8) for k in range(3)]
    photos = []
    for array in arrays:
        image = Image.fromarray(array).convert("RGB")
        scale = side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BOX)
        photos.append(torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None].contiguous())
    return photos


@dataclass(frozen=True)
class Worst:
    """The worst case over the sample photos: lowest PSNR, largest mean difference, and
    whether every case met the bound."""

    psnr_db: float
    mean_diff: float
    within_bound: bool


def fp16_agreement(fp32_path: Path, fp16_path: Path, num_styles: int, judge: Callable) -> Worst:
    """``judge(fp16 output, fp32 output)`` over :func:`sample_photos` and the style weight
    vectors of :func:`verification_styles`, worst case; ``judge`` returns an object with
    ``psnr_db``, ``mean_diff`` and ``within_bound``."""
    run32 = open_model(fp32_path, device="cpu").runtime
    run16 = open_model(fp16_path, device="cpu").runtime
    cases = []
    for photo in sample_photos():
        for style in verification_styles(num_styles):
            args = (photo,) if style is None else (photo, style)
            cases.append(judge(run16(*args), run32(*args)))
    return Worst(min(c.psnr_db for c in cases), max(c.mean_diff for c in cases), all(c.within_bound for c in cases))


# ------------------------------------------------------------------------ the folder


def find_ort_dist(folder: str | os.PathLike) -> Path:
    """onnxruntime-web's ``dist/`` folder: ``folder`` itself or its ``dist/`` (the npm package's
    root); ExportError when :data:`ORT_FILES` are not there."""
    folder = Path(folder).expanduser()
    for candidate in (folder, folder / "dist"):
        if all((candidate / name).is_file() for name in ORT_FILES):
            return candidate
    raise ExportError(f"ort_dist={folder}: no onnxruntime-web files there ({', '.join(ORT_FILES)}); give the dist/ "
                      f"folder of the npm package (npm install onnxruntime-web@{ORT_VERSION}), or leave ort_dist out "
                      "to load it from the CDN")


def _is_web_export(folder: Path) -> bool:
    try:
        return json.loads((folder / "model.json").read_text()).get("format") == WEB_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def check_target(target: Path, *, overwrite: bool) -> None:
    """ExportError unless ``target`` can take the export: absent or empty; a previous web
    export only with ``overwrite``; anything else never."""
    if target.exists() and not target.is_dir():
        raise ExportError(f"output={target} is a file; format=web writes a folder: choose another output")
    if not target.parent.is_dir():
        raise ExportError(f"output={target}: folder {target.parent} does not exist; create it or choose another output")
    if target.is_dir() and any(target.iterdir()):
        if not _is_web_export(target):
            raise ExportError(f"output={target} is a folder that holds other files (not a web export); "
                              "choose an empty or new folder")
        if not overwrite:
            raise ExportError(f"output={target} already holds a web export; add overwrite=true to replace it, "
                              "or choose another output")


def _readme(meta: dict, ort_source: str) -> str:
    styles = meta["styles"]
    if meta["precision"] == "fp16":
        why = (f"fp16 weights (half the bytes; arithmetic stays fp32): against the fp32 model on sample photos its "
               f"worst PSNR is {meta['psnr_db']:.1f} dB and mean difference {meta['mean_diff_255']:.2f}/255, within "
               "the project's bound (PSNR >= 40 dB, mean <= 1/255).")
    elif meta.get("psnr_db") is not None:
        why = (f"fp32 weights: fp16 weights gave a PSNR of {meta['psnr_db']:.1f} dB against fp32 on sample photos, "
               "below the project's bound (>= 40 dB), so the full-precision model was kept.")
    else:
        why = "fp32 weights (the fp16 variant was not measured)."
    ort = ("a local copy in ort/ (works offline)" if ort_source == "local" else
           f"the CDN, {CDN}ort.min.mjs (needs the internet; export with ort_dist=<onnxruntime-web dist/> to "
           "work offline)")
    mix = (f"\nThe model holds {len(styles)} styles ({', '.join(styles)}); mix them with the sliders or "
           f"`index.html?image=photo.jpg&style={styles[0]}:0.7,{styles[1]}:0.3`.\n" if len(styles) > 1 else "")
    return f"""# {meta['style_name']}: fast style transfer in the browser

Serve this folder and open it:

    python -m http.server 8000      # then open http://localhost:8000/

Pick or drop a photo, or switch on the webcam. `index.html?image=<url>` stylizes that photo on
load; a script reads `window.fastStyle.ready` (a Promise), then `window.fastStyle.result` (PNG
data URL) or `window.fastStyle.error`.
{mix}
onnxruntime-web {ORT_VERSION} comes from {ort}. It uses WebGPU where the browser has it, else
WebAssembly (SIMD). Threads need a cross-origin isolated page (headers
`Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp`);
`python -m http.server` sends neither, so the page then runs on one thread and says so.

model.onnx: {why}

Input `image`: float32 RGB in [0, 1], (1, 3, H, W), any H and W
{"; `style_weights`: float32 (" + str(len(styles)) + ",), in the order above" if len(styles) > 1 else ""}.
Output `stylized`: the same size, clamped to [0, 1] by the page. Details: model.json.
"""


def export_web(ckpt: str | os.PathLike, output: str | os.PathLike | None = None, *, overwrite: bool = False,
               ort_dist: str | os.PathLike | None = None, judge: Callable | None = None, exporter: str = "auto",
               opset: int | None = None) -> WebExportResult:
    """Write the web folder of ``ckpt`` (see the module docstring)."""
    ckpt = Path(ckpt)
    dist = find_ort_dist(ort_dist) if ort_dist not in (None, "") else None
    source = open_model(ckpt)
    model, style = source.require_network("format=web"), source.style_name
    count = model.num_styles
    styles = list(source.metadata.styles) if len(source.metadata.styles) == count else (
        [style] if count == 1 else [str(i) for i in range(count)])
    target = Path(output).expanduser() if output else ckpt.with_name(f"{style}-web")
    check_target(target, overwrite=overwrite)
    import onnx

    metadata = dataclasses.replace(export_metadata(source.metadata, source_kind=source.kind, num_styles=count),
                                   style_name=style)
    strings = metadata.to_strings(format=ONNX.format_tag)
    build = Path(tempfile.mkdtemp(prefix=owned_prefix(f".{target.name}"), dir=target.parent))
    try:
        fp32 = build / "model.fp32.onnx"
        used = write_onnx(model, fp32, strings, exporter=exporter, opset=opset)
        worst = verify(fp32, ONNX.name, model)
        agreement = None
        if judge is not None:
            fp16 = build / "model.fp16.onnx"
            onnx.save(fp16_weights(onnx.load(str(fp32))), str(fp16))
            agreement = fp16_agreement(fp32, fp16, count, judge)
        precision = "fp16" if agreement is not None and agreement.within_bound else "fp32"
        chosen = build / f"model.{precision}.onnx"
        chosen.rename(build / "model.onnx")
        for stale in build.glob("model.fp*.onnx"):
            stale.unlink()
        page = resources.files("fast_style.io") / "web"
        for name in PAGE_FILES:
            (build / name).write_bytes((page / name).read_bytes())
        if dist is not None:
            (build / "ort").mkdir()
            for name in ORT_FILES:
                shutil.copyfile(dist / name, build / "ort" / name)
        ort_source = "local" if dist is not None else "cdn"
        meta = {
            "format": WEB_FORMAT,
            "style_name": style,
            "styles": styles,
            "multi_style": count > 1,
            "precision": precision,
            "psnr_db": None if agreement is None else round(min(agreement.psnr_db, 100.0), 2),  # identical: 100
            "mean_diff_255": None if agreement is None else round(agreement.mean_diff * 255, 3),
            "fp32_max_diff_vs_pytorch": worst,
            "exporter": used,
            "input": strings["input"],
            "output": strings["output"],
            "ort_version": ORT_VERSION,
            "ort_source": ort_source,
            "ort_url": "ort/ort.min.mjs" if dist is not None else CDN + "ort.min.mjs",
            "metadata": strings,
        }
        (build / "model.json").write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n")
        (build / "README.md").write_text(_readme(meta, ort_source))
        for path in build.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.chmod(build, 0o755)
        _publish(build, target)
    finally:
        if build.exists():
            shutil.rmtree(build)
    return WebExportResult(target, precision, meta["psnr_db"], None if agreement is None else agreement.mean_diff,
                           worst, (target / "model.onnx").stat().st_size, ort_source, styles)


def _publish(build: Path, target: Path) -> None:
    """Move the finished ``build`` folder to ``target`` (absent, empty, or a previous web export,
    checked again here): the old export is renamed away first and removed after."""
    old = None
    if target.is_dir():
        if any(target.iterdir()):
            check_target(target, overwrite=True)
            old = target.with_name(f"{build.name}-old")
            target.rename(old)
        else:
            target.rmdir()
    build.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
