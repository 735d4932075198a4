"""Stylize photos, folders and globs: ``python stylize.py ckpt=... input=... [output=...]``.

:func:`stylize` takes the composed ``configs/stylize.yaml`` and returns a
:class:`Summary`. Planning (:func:`plan_jobs`) turns ``input``/``output`` into
(source, target) pairs:

- ``input`` a file: one job; a folder: every image below it (recursive, hidden files
  and earlier outputs ``*_<style>.<ext>`` left out); anything else: a glob pattern
  (``**`` recurses).
- ``output`` unset: beside each input as ``<name>_<style>.<ext>``. For a single input,
  ``output`` is the file to write (its folder must exist) or an existing folder; for
  several, a folder (created) in which the input tree is mirrored under the same names.
  ``format=png`` (etc.) replaces the extension; otherwise it is the input's.
- An existing target is skipped unless ``overwrite=true``; an input is never written over.

Images: EXIF rotation is applied and every mode becomes RGB (see
:mod:`fast_style.io.images`). Alpha is kept: the RGB, composited over white, is
stylized and the original alpha is re-attached when the output format can store it
(PNG, WebP, TIFF); formats without alpha (JPEG, BMP) get the composited RGB.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from fast_style.inference.colour import blend, preserve_color
from fast_style.errors import FastStyleError
from fast_style.io.formats import detect_deployed, load_transformer
from fast_style.io.images import (
    IMAGE_EXTENSIONS,
    open_rgb_alpha,
    pil_to_tensor,
    save_image,
    tensor_to_pil,
)
from fast_style.inference.runner import Stylizer, resolve_device, resolve_precision
from fast_style.io.runtimes import DeployedStylizer, HugeImageError, open_deployed

log = logging.getLogger(__name__)
ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")
GLOB_CHARS = set("*?[")


class InputError(FastStyleError):
    """Missing or empty inputs, unusable outputs or options."""


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass
class Summary:
    done: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    # multi-process runs (devices > 1) report summed counts instead of per-file lists
    totals: tuple[int, int, int] | None = None

    def counts(self) -> tuple[int, int, int]:
        """(done, skipped, failed)."""
        return self.totals or (len(self.done), len(self.skipped), len(self.failed))

    def line(self, seconds: float) -> str:
        done, skipped, failed = self.counts()
        return f"done {done}, skipped {skipped}, failed {failed} ({seconds:.1f} s)"


# ---------------------------------------------------------------------------- planning


def _output_format(path: Path) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise InputError(f"{path}: cannot write images with extension {path.suffix!r}; use .png, .jpg, .webp or .tif")
    return fmt


def _is_our_output(path: Path, style: str) -> bool:
    return path.stem.endswith(f"_{style}")


def find_inputs(pattern: str, *, style: str) -> tuple[list[Path], Path | None, bool]:
    """(files, root to mirror from, several?) for an ``input`` value."""
    path = Path(pattern).expanduser()
    if path.is_file():
        return [path], None, False
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
            and not _is_our_output(p, style)
        )
        if not files:
            raise InputError(f"{path}: folder contains no images ({', '.join(IMAGE_EXTENSIONS)})")
        return files, path, True
    if GLOB_CHARS & set(pattern):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True) if Path(p).is_file())
        if not files:
            raise InputError(f"{pattern}: no files match this pattern")
        magic = next(i for i, part in enumerate(Path(pattern).parts) if GLOB_CHARS & set(part))
        root = Path(*Path(pattern).expanduser().parts[:magic]) if magic else Path(".")
        return files, root, True
    raise InputError(f"{pattern}: no such file or folder")


def plan_jobs(
    sources: list[Path], *, root: Path | None, several: bool, output: str | None, style: str, fmt: str | None
) -> list[Job]:
    """(source, target) pairs; see the module docstring for the rules."""

    def suffix(src: Path) -> str:
        return f".{fmt.lstrip('.')}" if fmt else src.suffix

    if output is None:
        return [Job(s, s.with_name(f"{s.stem}_{style}{suffix(s)}")) for s in sources]
    out = Path(output).expanduser()
    if not several:
        src = sources[0]
        if out.is_dir() or str(output).endswith(("/", os.sep)):
            if not out.is_dir():
                raise InputError(f"{out}: output folder does not exist; create it first")
            target = out / f"{src.stem}_{style}{suffix(src)}"
        else:
            target = out.with_suffix(f".{fmt.lstrip('.')}") if fmt else out
            if not target.parent.is_dir():
                raise InputError(f"{target}: folder {target.parent} does not exist; create it or choose another output")
        return [Job(src, target)]
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; with several inputs, output must be a folder")
    if out.suffix.lower() in IMAGE_EXTENSIONS:
        raise InputError(f"{out}: looks like a file name; with several inputs, output must be a folder")
    jobs = []
    for src in sources:
        rel = src.relative_to(root) if root is not None and src.is_relative_to(root) else Path(src.name)
        jobs.append(Job(src, (out / rel).with_suffix(suffix(src))))
    return jobs


# ----------------------------------------------------------------------------- images


def resized(image: Image.Image, *, size: int | None, scale: float | None) -> Image.Image:
    """Resize so the longer side is ``size`` px, or by ``scale``; unchanged if neither."""
    if size is None and scale is None:
        return image
    factor = size / max(image.size) if size is not None else float(scale)
    new = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image if new == image.size else image.resize(new, Image.Resampling.LANCZOS)


def finish(stylized: torch.Tensor, photo: torch.Tensor, *, keep_colour: bool, strength: float) -> torch.Tensor:
    """Colour preservation, then the strength blend, on (3, H, W) tensors in [0, 1]."""
    if keep_colour:
        stylized = preserve_color(stylized, photo)
    return blend(stylized, photo, strength=strength).clamp(0, 1)


def write_output(image: torch.Tensor, alpha: Image.Image | None, target: Path, *, quality: int) -> Path:
    """Save (3, H, W) in [0, 1], re-attaching ``alpha`` when the format stores it."""
    pil = tensor_to_pil(image)
    if alpha is not None and _output_format(target) in ALPHA_FORMATS:
        pil.putalpha(alpha.resize(pil.size, Image.Resampling.LANCZOS) if alpha.size != pil.size else alpha)
    return save_image(pil, target, quality=quality)


# -------------------------------------------------------------------------------- run


def load_model(cfg, ckpt=None) -> tuple[object, dict[str, str]]:
    """(TransformerNet or, for an exported .onnx / TorchScript file, a ready
    :class:`~fast_style.io.runtimes.DeployedStylizer`, info) for ``cfg.ckpt``."""
    ckpt = cfg.ckpt if ckpt is None else ckpt
    kind = detect_deployed(ckpt)
    if kind is None:
        return load_transformer(ckpt)
    return open_deployed(
        ckpt, kind, device=str(cfg.device), precision=str(cfg.precision), compile=bool(cfg.compile),
        pixel_budget=int(cfg.pixel_budget or 0),
    )


def build_stylizer(cfg, model) -> Stylizer | DeployedStylizer:
    if isinstance(model, DeployedStylizer):
        return model  # exported models run whole, in fp32 (fast_style.io.runtimes)
    device = resolve_device(str(cfg.device))
    dtype = resolve_precision(str(cfg.precision), device)
    channels_last = cfg.channels_last
    if channels_last in (None, "auto"):
        channels_last = bool(cfg.compile) or device.type == "cuda"
    return Stylizer(
        model,
        device=device,
        dtype=dtype,
        channels_last=bool(channels_last),
        compile=bool(cfg.compile),
        tile_size=int(cfg.tile_size),
        tile_blend=int(cfg.tile_blend),
        pixel_budget=int(cfg.pixel_budget or 0),
    )


def _check_options(cfg) -> None:
    if cfg.size is not None and cfg.scale is not None:
        raise InputError("size= and scale= both set; choose one")
    if cfg.size is not None and int(cfg.size) < 1:
        raise InputError(f"size={cfg.size}: must be a positive number of px")
    if cfg.scale is not None and float(cfg.scale) <= 0:
        raise InputError(f"scale={cfg.scale}: must be positive")
    if not 0.0 <= float(cfg.strength) <= 1.0:
        raise InputError(f"strength={cfg.strength}: must be in [0, 1]")
    if not 1 <= int(cfg.quality) <= 100:
        raise InputError(f"quality={cfg.quality}: must be in 1..100")
    if int(cfg.batch_size) < 1:
        raise InputError(f"batch_size={cfg.batch_size}: must be at least 1")


@dataclass
class _Loaded:
    job: Job
    photo: torch.Tensor
    alpha: Image.Image | None


def stylize(cfg) -> Summary:
    """Run the command described by a composed ``stylize`` config; returns the summary."""
    start = time.perf_counter()
    _check_options(cfg)
    if cfg.ckpt is None:
        raise InputError("ckpt must be set, e.g. ckpt=checkpoints/starry_night.safetensors")
    if cfg.input is None:
        raise InputError("input must be set: a photo, a folder or a glob such as 'photos/*.jpg'")
    model, info = load_model(cfg)
    style = str(cfg.style_name or info["style_name"])
    if cfg.format is not None:
        _output_format(Path(f"x.{str(cfg.format).lstrip('.')}"))
    sources, root, several = find_inputs(str(cfg.input), style=style)
    jobs = plan_jobs(sources, root=root, several=several, output=cfg.output, style=style, fmt=cfg.format)
    if several and cfg.output is not None:
        Path(cfg.output).expanduser().mkdir(parents=True, exist_ok=True)
    if int(cfg.get("devices") or 1) > 1:
        return _stylize_on_devices(cfg, jobs, model, start)
    stylizer = build_stylizer(cfg, model)
    summary = Summary()
    with _progress(len(jobs), enabled=several and bool(cfg.progress)) as advance:
        _run(jobs, stylizer, cfg, summary, several=several, advance=advance)
    if several or summary.skipped:
        for path, why in summary.skipped:
            print(f"skipped {path}: {why}", file=sys.stderr)
    print(summary.line(time.perf_counter() - start), flush=True)
    return summary


def _stylize_on_devices(cfg, jobs: list[Job], model, start: float) -> Summary:
    """``devices=N``: N processes through Lightning's predict loop (fast_style.inference.executors)."""
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"{cfg.ckpt}: devices={cfg.devices} needs a PyTorch checkpoint, not an exported model")
    from fast_style.inference.executors import stylize_distributed

    summary = Summary(totals=stylize_distributed(jobs=jobs, model=model, cfg=cfg))
    print(summary.line(time.perf_counter() - start), flush=True)
    return summary


def _precheck(job: Job, *, overwrite: bool) -> str | None:
    """Why ``job`` must not run, or None."""
    if job.target.exists() and job.source.exists() and os.path.samefile(job.target, job.source):
        return f"{job.target} is the input; refusing to write over it"
    if job.target.exists() and not overwrite:
        return f"{job.target} exists (pass overwrite=true to replace it)"
    return None


def _run(jobs: list[Job], stylizer: Stylizer | DeployedStylizer, cfg, summary: Summary, *, several: bool, advance: Callable[[], None]) -> None:
    pending: dict[tuple[int, int], list[_Loaded]] = {}
    batch_size = int(cfg.batch_size)

    def fail(job: Job, exc: Exception) -> None:
        if not several:
            raise exc if isinstance(exc, FastStyleError) else InputError(f"{job.source}: {exc}") from exc
        message = str(exc) if isinstance(exc, FastStyleError) else f"{job.source}: {type(exc).__name__}: {exc}"
        print(f"failed: {message}", file=sys.stderr, flush=True)
        summary.failed.append((job.source, message))

    def flush(key: tuple[int, int]) -> None:
        items = pending.pop(key)
        try:
            outputs = stylizer(torch.stack([item.photo for item in items]))
        except Exception as exc:  # noqa: BLE001 - one bad batch must not stop a folder run
            for item in items:
                fail(item.job, HugeImageError(f"{item.job.source}: {exc}") if isinstance(exc, HugeImageError) else exc)
                advance()
            return
        for item, out in zip(items, outputs, strict=True):
            try:
                result = finish(out, item.photo, keep_colour=bool(cfg.preserve_color), strength=float(cfg.strength))
                summary.done.append(write_output(result, item.alpha, item.job.target, quality=int(cfg.quality)))
            except Exception as exc:  # noqa: BLE001
                fail(item.job, exc)
            advance()

    for job in jobs:
        why = _precheck(job, overwrite=bool(cfg.overwrite))
        if why is not None:
            if not several:
                raise InputError(why)
            summary.skipped.append((job.source, why))
            advance()
            continue
        try:
            _output_format(job.target)
            if several:
                job.target.parent.mkdir(parents=True, exist_ok=True)
            rgb, alpha = open_rgb_alpha(job.source)
            rgb = resized(rgb, size=cfg.size, scale=cfg.scale)
        except Exception as exc:  # noqa: BLE001
            fail(job, exc)
            advance()
            continue
        photo = pil_to_tensor(rgb)
        key = tuple(photo.shape[-2:])
        pending.setdefault(key, []).append(_Loaded(job, photo, alpha))
        if len(pending[key]) >= batch_size or stylizer.needs_tiling(*key):
            flush(key)
    for key in list(pending):
        flush(key)


class _progress:
    """A rich progress bar over files (stderr), or a no-op."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total, self.enabled, self.bar = total, enabled, None

    def __enter__(self) -> Callable[[], None]:
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("stylizing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self.bar.__enter__()
        task = self.bar.add_task("stylizing", total=self.total)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def stylize_files(
    ckpt: str | os.PathLike, inputs: Iterable[str | os.PathLike], **overrides: object
) -> list[torch.Tensor]:
    """Python API: stylized (3, H, W) tensors for image files, with ``cfg`` defaults."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(default_config(), overrides)
    model, _ = load_model(cfg, ckpt)
    stylizer = build_stylizer(cfg, model)
    results = []
    for path in inputs:
        rgb, _ = open_rgb_alpha(path)
        photo = pil_to_tensor(resized(rgb, size=cfg.size, scale=cfg.scale))
        results.append(finish(stylizer(photo)[0], photo, keep_colour=bool(cfg.preserve_color), strength=float(cfg.strength)))
    return results


DEFAULTS = {
    "ckpt": None, "input": None, "output": None, "format": None, "style_name": None,
    "size": None, "scale": None, "device": "auto", "precision": "auto", "channels_last": "auto",
    "compile": False, "batch_size": 1, "overwrite": False, "quality": 95,
    "preserve_color": False, "strength": 1.0, "tile_size": 512, "tile_blend": 16,
    "pixel_budget": 4194304, "progress": True, "devices": 1, "accelerator": "auto",
}


def default_config():
    """The defaults of ``configs/stylize.yaml`` as an OmegaConf config (Python API, tests)."""
    from omegaconf import OmegaConf

    return OmegaConf.create(dict(DEFAULTS))
