"""The end of a photo job: run a same-size group, finish and write each result atomically.

Alpha is kept: the RGB, composited over white, was stylized, and the original alpha is
re-attached when the output format can store it (:data:`ALPHA_FORMATS`: PNG, WebP,
TIFF); formats without alpha (JPEG, BMP) get the composited RGB. Files are written under
a temporary name and renamed (:func:`fast_style.io.images.save_image`); without
``overwrite``, a target that another process wrote meanwhile is kept and the job skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from fast_style.inference.finishing import check_output, finish
from fast_style.inference.options import StylizeOptions
from fast_style.inference.outcome import InputError, Loaded, Outcome, failure
from fast_style.inference.runners.base import Runner
from fast_style.io.files import OutputExistsError
from fast_style.io.images import save_image, tensor_to_pil

ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")


def output_format(path: Path) -> str:
    """The Pillow format that writes ``path``'s extension; :class:`InputError` if none does."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise InputError(f"{path}: cannot write images with extension {path.suffix!r}; use .png, .jpg, .webp or .tif")
    return fmt


def write_output(image: torch.Tensor, alpha: Image.Image | None, target: Path, options: StylizeOptions) -> Path:
    """Save (3, H, W) in [0, 1] with the options' ``quality``/``png_compression``,
    re-attaching ``alpha`` when the format stores it."""
    pil = tensor_to_pil(image)
    if alpha is not None and output_format(target) in ALPHA_FORMATS:
        pil.putalpha(alpha.resize(pil.size, Image.Resampling.LANCZOS) if alpha.size != pil.size else alpha)
    return save_image(pil, target, quality=int(options.quality), png_compression=int(options.png_compression),
                      overwrite=bool(options.overwrite))


def run_batch(runner: Runner, items: Sequence[Loaded], options: StylizeOptions) -> list[Outcome]:
    """Steps 2-4 of same-size photo jobs: run the network once, finish and write each result."""
    batch = items[0].photo[None] if len(items) == 1 else torch.stack([item.photo for item in items])
    try:
        outputs = check_output(runner(batch), batch)
    except Exception as exc:  # noqa: BLE001 - one bad batch must not stop a folder run
        return [failure(item.job, exc) for item in items]
    outcomes = []
    for item, out in zip(items, outputs, strict=True):
        try:
            write_output(finish(out, item.photo, options), item.alpha, item.job.target, options)
            outcomes.append(Outcome(item.job, "done"))
        except OutputExistsError as exc:  # another process wrote it since the job started
            outcomes.append(Outcome(item.job, "skipped", str(exc)))
        except Exception as exc:  # noqa: BLE001
            outcomes.append(failure(item.job, exc))
    return outcomes
