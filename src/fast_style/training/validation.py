"""Range checks of the training options, run first thing in ``train(cfg)``.

Hydra's schema (``fast_style.config``) rejects wrong *types* before our code runs;
these checks reject values of the right type that cannot work, each with one line
naming the option and a value that works, before the style image, the photos, the
loss network or the Trainer are touched.
"""

from __future__ import annotations

import math
from pathlib import Path, PurePath
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fast_style.errors import FastStyleError
from fast_style.nn.losses import term_weights

# The smallest training crop (and sample image) accepted. Measured: the transform
# network (two stride-2 convolutions with reflection padding) and VGG-16 up to relu4_3
# (three 2x2 poolings before it) run at 8 px and fail at 7; a VGG-19 loss tapping
# conv5_1 (four poolings) needs 16. At 32 px relu4_3 still sees 4x4 positions, so its
# Gram matrix is not computed from a single feature vector. The paper trains at 256.
MIN_CROP = 32


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _require_finite(name: str, value: Any) -> None:
    """inf (and nan) pass a ``>= 0`` test or say nothing useful in it: named on their own line."""
    _require(not _is_number(value) or math.isfinite(value), f"{name}={value}: must be a finite number")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise FastStyleError(message)


def check_data(data: DictConfig) -> None:
    """``data.batch_size`` >= 1, ``data.image_size`` / ``data.sample_size`` >= MIN_CROP,
    ``data.num_workers`` >= 0, ``data.resize`` null or >= 1, ``data.index_cache`` true, false or root."""
    batch = data.get("batch_size")
    _require(_is_int(batch) and batch >= 1,
             f"data.batch_size={batch}: must be a whole number of at least 1 per device (the paper: 4)")
    size = data.get("image_size")
    _require(_is_int(size) and size >= MIN_CROP,
             f"data.image_size={size}: training crops must be at least {MIN_CROP} px (the transform network "
             f"downsamples by 4 and VGG pools 3 times before relu4_3); the paper uses 256")
    samples = data.get("sample_size")
    _require(_is_int(samples) and samples >= MIN_CROP,
             f"data.sample_size={samples}: sample images must be at least {MIN_CROP} px (the default is 256)")
    workers = data.get("num_workers")
    _require(_is_int(workers) and workers >= 0,
             f"data.num_workers={workers}: must be 0 (load in the main process) or more worker processes")
    resize = data.get("resize")
    _require(resize is None or (_is_int(resize) and resize >= 1),
             f"data.resize={resize}: must be null (keep the resolution) or a shorter-side length in px, e.g. 256")
    index = data.get("index_cache")
    _require(any(index is place for place in (True, False)) or index == "root",
             f"data.index_cache={index}: must be true (the file index in the cache folder), root (in data.root) "
             "or false (check every file's header at each start)")


def check_optimisation(cfg: DictConfig) -> None:
    """``lr`` > 0, ``style_lr`` null or > 0, loss weights >= 0 (all finite), ``trainer.max_steps`` >= 1 or -1
    (stop by max_epochs)."""
    lr = cfg.get("lr")
    _require_finite("lr", lr)
    _require(_is_number(lr) and lr > 0, f"lr={lr}: the learning rate must be above 0 (the paper: 1e-3)")
    style_lr = cfg.get("style_lr")
    _require_finite("style_lr", style_lr)
    _require(style_lr is None or (_is_number(style_lr) and style_lr > 0),
             f"style_lr={style_lr}: must be a learning rate > 0, or null (the same as lr)")
    for key, value in term_weights(cfg.loss).items():  # every term of nn.losses.LOSS_TERMS
        _require_finite(f"loss.{key}", value)
        _require(_is_number(value) and value >= 0, f"loss.{key}={value}: must be 0 (term off) or more")
    for group in ("content_layers", "style_layers"):
        for layer, value in (cfg.loss.get(group) or {}).items():
            _require_finite(f"loss.{group}.{layer}", value)
            _require(_is_number(value) and value >= 0, f"loss.{group}.{layer}={value}: must be 0 or more")
    steps = cfg.trainer.get("max_steps", -1)
    _require(_is_int(steps) and (steps >= 1 or steps == -1),
             f"trainer.max_steps={steps}: must be at least 1 (the paper: 40000), or -1 to stop at trainer.max_epochs")


def check_style(style: DictConfig) -> None:
    """``style.size`` null (the image as it is) or >= MIN_CROP."""
    size = style.get("size")
    _require(size is None or size >= MIN_CROP,
             f"style.size={size}: must be at least {MIN_CROP} px, or null for the image's own size; "
             "the paper uses 256-512")


def _picks_one_painting(style: DictConfig) -> bool:
    """Whether the ``style`` group names a painting itself (any style but ``multi``)."""
    return any(OmegaConf.is_missing(style, key) or style.get(key) for key in ("file", "image", "procedural"))


def check_styles(cfg: DictConfig) -> None:
    """``styles``: unset, or a list of distinct style names / image paths, with ``style=multi``
    (which needs it); several styles need ``model.norm=instance`` (unless ``finetune_from``,
    whose file decides) and no ``check``; ``finetune_from`` an existing file."""
    styles, style = cfg.get("styles"), cfg.style
    if styles is None:
        _require(_picks_one_painting(style), "style=multi needs the list of styles: styles=[starry_night,the_scream] "
                                             "(or write style=[starry_night,the_scream])")
    else:
        example = "e.g. style=[starry_night,the_scream] (style config names or image paths)"
        _require(len(styles) >= 1, f"styles=[]: list at least one style, {example}")
        _require(all(isinstance(s, str) and s.strip() for s in styles), f"styles={list(styles)}: every entry must "
                                                                       f"be a style's name or an image path, {example}")
        names = [PurePath(s).stem for s in styles]
        twice = next((n for n in names if names.count(n) > 1), None)
        _require(twice is None, f"styles={list(styles)}: {twice} is listed twice; list each style once")
        _require(not _picks_one_painting(style),
                 f"styles={list(styles)} lists the styles, but style={style.get('name')} picks one painting; use "
                 "style=multi with styles (in an experiment config: '- override /style: multi'), or leave styles unset")
        _require(len(styles) == 1 or cfg.model.get("norm") == "instance" or bool(cfg.get("finetune_from")),
                 f"model.norm={cfg.model.get('norm')}: several styles need model.norm=instance (the styles live in "
                 "the instance norms' scale and shift), e.g. model=transformer")
    source = cfg.get("finetune_from")
    given = "the style model file to add styles to (.safetensors, .ckpt, .pth)"
    _require(source is None or not Path(str(source)).expanduser().is_dir(), f"finetune_from={source}: a folder; give {given}")
    _require(source is None or Path(str(source)).expanduser().is_file(), f"finetune_from={source}: no such file; give {given}")
    several = source is not None or (styles is not None and len(styles) > 1)
    _require(not (several and cfg.get("check")), "check=...: the held-out check measures a one-style model against "
                                                 "its painting; set check=null to train several styles")


def check_train_config(cfg: DictConfig) -> None:
    """Every range check of the training options; the first failure is a one-line
    :class:`FastStyleError` naming the option and a working value."""
    check_data(cfg.data)
    check_style(cfg.style)
    check_styles(cfg)
    check_optimisation(cfg)
