"""The Python API of stylizing: :func:`stylize` (files, folders, globs) and
:func:`stylize_images` (tensors or files in, tensors out). ``python stylize.py`` calls
:func:`stylize` with the options Hydra composed.

    import fast_style
    summary = fast_style.stylize("checkpoints/starry_night.safetensors", "photos/", output="out/", size=1024)
    model = fast_style.open_model("mosaic.pth")              # any model file, kind detected by content
    (image,) = fast_style.stylize_images(model, ["photo.jpg"], strength=0.8)   # (3, H, W) in [0, 1]
    fast_style.stylize("four.safetensors", "photo.jpg", style="starry_night:0.7,udnie:0.3")  # a mix
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fast_style.inference.executors import report, run_local
from fast_style.inference.finishing import finish
from fast_style.inference.mixing import StyleChoice, choose_styles
from fast_style.inference.options import OptionError, OptionTypeError, StylizeOptions, with_aliases
from fast_style.inference.outcome import Summary
from fast_style.inference.plan import plan
from fast_style.inference.reading import load_photo
from fast_style.inference.runners.base import notice
from fast_style.inference.runners.rules import make_runner
from fast_style.inference.runners.settings import resolve_strength_space
from fast_style.io.files import safe_name
from fast_style.io.in_memory import as_photo
from fast_style.io.model_files import StyleModel, open_model

ONE_IMAGE = (str, bytes, os.PathLike, torch.Tensor, np.ndarray, Image.Image)  # given where a list of them is due


def _rank() -> int:
    """This process's global rank: 0 unless Lightning started it as one of several."""
    if not any(key in os.environ for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")):
        return 0
    from pytorch_lightning.utilities import rank_zero_only

    return rank_zero_only.rank


def _open(model: StyleModel | str | os.PathLike, options: StylizeOptions) -> StyleModel:
    if isinstance(model, StyleModel):
        return model
    return open_model(model, device=str(options.device), allow_torchscript=bool(options.allow_torchscript))


def _prepared(model: StyleModel, options: StylizeOptions) -> tuple[StylizeOptions, StyleChoice]:
    """The options with ``strength_space`` resolved for ``model``, and the run's style
    choice (one-line errors for a ``style``/``mask`` that does not fit the model)."""
    styles = choose_styles(model, options)
    return dataclasses.replace(options, strength_space=resolve_strength_space(model, options)), styles


def stylize(
    model: StyleModel | str | os.PathLike, input: str | os.PathLike, *, options: StylizeOptions | None = None,
    **values: Any,
) -> Summary:
    """Stylize a photo, a folder (recursive) or a glob; returns the :class:`Summary`.

    ``model`` is a path to any model file or an opened :class:`StyleModel`; ``options``
    are a :class:`StylizeOptions`, or its fields as keywords (``output``, ``size``,
    ``strength``, ...; they override ``options``). One
    input: a problem is raised as a one-line :class:`~fast_style.errors.FastStyleError`;
    several: bad files are reported on stderr, counted and skipped.
    """
    opts = dataclasses.replace(options, **with_aliases(values)) if options else StylizeOptions.of(values)
    opts.check()
    if input is None or str(input) in ("", "None"):
        raise OptionError("input must be set: a photo, a folder or a glob such as 'photos/*.jpg'")
    if not isinstance(input, str | os.PathLike):
        raise OptionTypeError(f"input={input!r} is of type {type(input).__name__}; give one path: a photo, a folder "
                              "or a glob such as 'photos/*.jpg' (images in memory: stylize_images)")
    model = _open(model, opts)
    opts, styles = _prepared(model, opts)
    if styles.line and _rank() == 0:
        notice(styles.line)
    jobs, several, refused = plan(str(input), opts, style=safe_name(str(opts.style_name or styles.label)))
    for outcome in refused:
        if not several:
            outcome.raise_error()
        if _rank() == 0:  # with devices > 1 every process plans the same jobs
            report(outcome)
    if not jobs:
        summary = Summary()
    elif int(opts.devices) > 1:
        from fast_style.inference.distributed import run_on_devices

        summary = run_on_devices(jobs, model, opts, styles)
    else:
        summary = run_local(jobs, make_runner(model, opts, styles), opts, several=several)
    return summary.add(refused)


def stylize_images(
    model: StyleModel | str | os.PathLike, images: Iterable[torch.Tensor | str | os.PathLike], **options: Any
) -> list[torch.Tensor]:
    """Stylized (3, H, W) tensors in [0, 1], one for each of ``images``: files (paths), or
    images in memory: (3, H, W) tensors in [0, 1], numpy arrays (H, W, 3) and Pillow
    images of any mode (conversions: :mod:`fast_style.io.in_memory`; anything else is a
    ``TypeError`` or ``ValueError`` saying what to pass).

    ``images`` is a list (any iterable) of images: one image on its own is a ``TypeError``.
    ``size``/``scale`` apply to files; ``preserve_color``, ``strength``, ``style``,
    ``mask`` and every speed option apply to all.
    """
    if isinstance(images, ONE_IMAGE) or not isinstance(images, Iterable):
        raise OptionTypeError(f"images= is a list of images, not one {type(images).__name__}; for one image pass "
                              "[image]")
    opts = StylizeOptions.of(options).check()
    model = _open(model, opts)
    opts, styles = _prepared(model, opts)
    runner = make_runner(model, opts, styles)
    results = []
    for index, image in enumerate(images):
        if isinstance(image, str | os.PathLike):
            photo = load_photo(Path(image), opts)[0]
        else:
            photo = as_photo(image, label=f"images[{index}]", max_pixels=int(opts.max_pixels))
        results.append(finish(runner(photo)[0], photo, opts))
    return results
