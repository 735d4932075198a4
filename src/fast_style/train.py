"""``train(cfg)``: everything ``python train.py`` does, given a composed Hydra config.

Order matters for failing fast: the style image, the training images and the loss
network's weights are all checked before the Trainer starts, so a bad path or a
missing download ends in seconds with one line, not after minutes of set-up.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fast_style.callbacks import ExportStyleModel, StyleSamples
from fast_style.errors import FastStyleError
from fast_style.imageio import load_image
from fast_style.module import StyleTransferModule
from fast_style.styles import resolve_style_image

log = logging.getLogger(__name__)


def _plain(node: Any) -> Any:
    """A config node as plain Python containers (what checkpoints can store safely)."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a dict-of-configs group (callbacks, loggers)."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if isinstance(node, DictConfig) and "_target_" in node]


def load_style_tensor(path: Path, *, size: int | None) -> torch.Tensor:
    """The style image as (1, 3, H, W) in [0, 1], longer side at most ``size``."""
    return load_image(path, max_size=size).unsqueeze(0)


def build_module(cfg: DictConfig, style_image: torch.Tensor) -> StyleTransferModule:
    return StyleTransferModule(
        model=_plain(cfg.model),
        loss=_plain(cfg.loss),
        loss_net=_plain(cfg.loss_net),
        style={k: v for k, v in _plain(cfg.style).items() if k in ("name", "file", "sha256", "image", "size")},
        style_image=style_image,
        lr=cfg.lr,
        channels_last=cfg.channels_last,
    )


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train one style model as configured; returns the paths it produced."""
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    if cfg.get("demo"):
        from fast_style.demo import prepare_content

        prepare_content(Path(cfg.data.root))

    style_path = resolve_style_image(style_dir=cfg.paths.style_dir, **_plain(cfg.style))
    style_image = load_style_tensor(style_path, size=cfg.style.get("size"))
    log.info("style %s: %s (%dx%d)", cfg.style.name, style_path, style_image.shape[-1], style_image.shape[-2])

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")

    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path and not os.path.isfile(ckpt_path):
        raise FastStyleError(f"ckpt_path={ckpt_path}: no such checkpoint; give a .ckpt file such as <run>/checkpoints/last.ckpt")

    module = build_module(cfg, style_image)
    log.info("loss network: %s %s", cfg.loss_net.arch, module.hparams["loss_net_source"])

    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    result: dict[str, Any] = {"output_dir": str(output_dir), "global_step": trainer.global_step}
    for callback in callbacks:
        if isinstance(callback, ExportStyleModel) and callback.path:
            result["style_model"] = str(callback.path)
        if isinstance(callback, StyleSamples) and callback.last_written:
            result["samples"] = str(callback.last_written)
        if isinstance(callback, pl.callbacks.ModelCheckpoint) and callback.last_model_path:
            result["last_ckpt"] = callback.last_model_path
    if loggers:
        result["tensorboard"] = str(getattr(loggers[0], "log_dir", output_dir))
    if trainer.is_global_zero:
        summary = "\n".join(f"  {k:13s} {v}" for k, v in result.items())
        print(f"\nTraining finished ({cfg.style.name}, loss network {module.hparams['loss_net_source']}):\n{summary}")
        if result.get("tensorboard"):
            print(f"  watch with:   tensorboard --logdir {result['tensorboard']}")
    return result
