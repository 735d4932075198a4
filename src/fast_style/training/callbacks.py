"""Training callbacks: progress images, the final style-model export and the training pace."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_only
from torchvision.utils import make_grid

from fast_style.io.files import unique_path
from fast_style.io.images import save_image
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import save_style_model

log = logging.getLogger(__name__)


def stylize_batch(module: pl.LightningModule, images: torch.Tensor, style: int | None = None) -> torch.Tensor:
    """The transform net's output for ``images`` in eval mode, clamped to [0, 1]; ``style``:
    which of a multi-style network's styles (one-hot weights), None for a one-style network."""
    was_training = module.transformer.training
    module.transformer.eval()
    try:
        with torch.no_grad():
            images = images.to(module.device)
            weights = None
            if style is not None:
                weights = torch.zeros(module.transformer.num_styles, device=module.device)
                weights[style] = 1.0
            return module(images, weights).float().clamp(0, 1).cpu()
    finally:
        module.transformer.train(was_training)


class StyleSamples(pl.Callback):
    """Every ``every_n_steps`` steps (and after the last) stylize the data module's fixed
    sample photos and log a grid (top row: photos; below: stylized, one row per style of
    the network, in its order) to TensorBoard as ``samples`` and as
    ``<run>/samples/step_XXXXXXX.png``."""

    def __init__(self, *, every_n_steps: int = 500, dirname: str = "samples"):
        self.every_n_steps = every_n_steps
        self.dirname = dirname
        self.last_written: Path | None = None

    def _log(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        samples = trainer.datamodule.sample_images() if trainer.datamodule is not None else None
        if samples is None or len(samples) == 0:
            return
        count = module.transformer.num_styles
        rows = [stylize_batch(module, samples)] if count == 1 else [stylize_batch(module, samples, s) for s in range(count)]
        grid = make_grid(torch.cat([samples, *rows]), nrow=len(samples), padding=2, pad_value=1.0)
        step = trainer.global_step
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                experiment.add_image("samples", grid, global_step=step)
        folder = Path(trainer.default_root_dir) / self.dirname
        folder.mkdir(parents=True, exist_ok=True)
        self.last_written = save_image(grid, folder / f"step_{step:07d}.png")

    @rank_zero_only
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps > 0 and trainer.global_step % self.every_n_steps == 0:
            self._log(trainer, pl_module)

    @rank_zero_only
    def on_train_end(self, trainer, pl_module) -> None:
        if self.every_n_steps > 0 and trainer.global_step % self.every_n_steps != 0:
            self._log(trainer, pl_module)
        if self.last_written is not None:
            log.info("sample images: %s", self.last_written.parent)


class ExportStyleModel(pl.Callback):
    """At the end of training write the transform net as ``<dirpath>/<filename>.safetensors``
    (and, with ``run_dirpath``, a copy as ``<run_dirpath>/<filename>.safetensors``).

    An existing file in ``dirpath`` is never replaced unless ``overwrite``: a numbered
    name (``<filename>-1.safetensors``, ...) is used instead. The path is logged and
    kept in ``self.path``.
    """

    def __init__(self, *, dirpath: str, filename: str, overwrite: bool = False, run_dirpath: str | None = None):
        self.dirpath = dirpath
        self.filename = filename
        self.overwrite = overwrite
        self.run_dirpath = run_dirpath
        self.path: Path | None = None

    @rank_zero_only
    def on_train_end(self, trainer, pl_module) -> None:
        target = Path(self.dirpath).resolve() / f"{self.filename}.safetensors"
        if not self.overwrite:
            target = unique_path(target)
        metadata = StyleModelMetadata.from_training(pl_module.hparams, steps=trainer.global_step)
        metadata.style_name = metadata.style_name or self.filename
        self.path = save_style_model(pl_module.transformer, target, metadata=metadata)
        if self.run_dirpath and Path(self.run_dirpath).resolve() != Path(self.dirpath).resolve():
            save_style_model(pl_module.transformer, Path(self.run_dirpath) / f"{self.filename}.safetensors", metadata=metadata)
        log.info("style model: %s", self.path)


class TrainingPace(pl.Callback):
    """Steps per second of this process' training: ``(global step at the end - at the start)
    / seconds from on_train_start to on_train_end`` (set-up and the final export left out;
    a resumed run counts its own steps). ``steps_per_s`` is None until training ended."""

    def __init__(self) -> None:
        self._start: tuple[float, int] | None = None
        self.steps_per_s: float | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = (time.perf_counter(), trainer.global_step)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._start is not None:
            seconds, steps = time.perf_counter() - self._start[0], trainer.global_step - self._start[1]
            self.steps_per_s = steps / seconds if seconds > 0 else None
