"""``train(cfg)``: everything ``python train.py`` does, given a composed Hydra config.

Order matters for failing fast: the options' ranges first (:mod:`.validation`), then
the style images (their sizes read from the headers), the model to add styles to
(``finetune_from``, :mod:`.finetune`), the training images, the checkpoint to resume
from (verified, :mod:`.checkpoints`) and the loss network's weights are all checked
before the Trainer starts, so a bad value, path or download ends in seconds with one
line, not after minutes of set-up.

Styles: ``styles`` unset is the one ``style`` of today; a list of S > 1 styles trains one
network with S styles (``model.num_styles``); a list of one is the one-style model.
``finetune_from`` adds the listed styles (or the one ``style``) to a trained network.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException

from fast_style.devices import accelerator_device, cluster_plugins, training_path
from fast_style.errors import CheckpointError, FastStyleError
from fast_style.io.files import atomic_write_text
from fast_style.io.images import load_image
from fast_style.training.callbacks import ExportStyleModel, StyleSamples
from fast_style.training.checkpoints import Checkpoint, check_fits, choose_checkpoint
from fast_style.training.finetune import Base, copy_base, grown_arch, log_arch_choice, open_base
from fast_style.training.module import LOSS_NET_PREFIX, StyleTransferModule
from fast_style.training.styles import check_style_pixels, resolve_style_image, style_list
from fast_style.training.validation import check_train_config

log = logging.getLogger(__name__)


def _plain(node: Any) -> Any:
    """A config node as plain Python containers (what checkpoints can store safely)."""
    return OmegaConf.to_container(node, resolve=True, throw_on_missing=True) if isinstance(node, DictConfig) else node


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a dict-of-configs group (callbacks, loggers)."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if isinstance(node, DictConfig) and "_target_" in node]


def load_style_tensor(path: Path, *, size: int | None) -> torch.Tensor:
    """The style image as (1, 3, H, W) in [0, 1], longer side at most ``size``; an image
    too large for the style targets is refused from its header, before decoding."""
    check_style_pixels(path, size=size)
    return load_image(path, max_size=size).unsqueeze(0)


SINGLE_STYLE_KEYS = ("name", "file", "sha256", "image", "size")  # what a one-style model's hparams keep


def build_module(cfg: DictConfig, style_image: torch.Tensor | list[torch.Tensor], *,
                 specs: list[dict[str, Any]] | None = None, base: Base | None = None) -> StyleTransferModule:
    """The module as configured; ``auto`` precision and layout are resolved first (in ``cfg``,
    so that a Trainer instantiated from ``cfg.trainer`` afterwards gets the same choice).

    ``specs`` (:func:`fast_style.training.styles.style_list`; default: the ``style`` group)
    are the styles trained, one image each in ``style_image``. More than one: a network
    with that many styles. ``base`` (``finetune_from``): the file's network grown by the
    new styles, its tensors copied in, only the new styles trained."""
    resolve_auto_path(cfg)
    specs = specs or style_list(cfg)
    model, names = _plain(cfg.model), [spec["name"] for spec in specs]
    style = {k: v for k, v in specs[0].items() if k in SINGLE_STYLE_KEYS}
    frozen = 0
    if base is not None:
        log_arch_choice(base, model)
        model, names, frozen = grown_arch(base, len(names)), [*base.names, *names], len(base.names)
    elif len(names) > 1:
        model = {**model, "num_styles": len(names)}
    if len(names) > 1:
        style = {"name": cfg.style.name}
    log_images_per_style(len(names) - frozen, int(cfg.data.batch_size))
    module = StyleTransferModule(
        model=model,
        loss=_plain(cfg.loss),
        loss_net=_plain(cfg.loss_net),
        style=style,
        style_image=style_image,
        styles=names if len(names) > 1 else None,
        frozen_styles=frozen,
        schedule_seed=cfg.get("seed") or 0,
        lr=cfg.lr,
        lr_schedule=cfg.lr_schedule,
        style_lr=cfg.get("style_lr"),
        channels_last=cfg.channels_last,
        compile=cfg.get("compile", False),
    )
    if base is not None:
        copy_base(module.transformer, base.network)
        module.hparams["finetune_from"] = str(base.path)
    return module


def log_images_per_style(trained: int, batch: int) -> None:
    """One line on what each of ``trained`` > 1 styles gets of a ``batch``: a K-style run
    with batch N gives each style N/K images a step, a one-style run N; batch N*K gives
    each style what a one-style run with batch N gets (docs/training.md)."""
    if trained > 1:
        share = batch / trained
        log.info("%d styles share each batch of %d: each style gets %g image%s a step, a one-style run with "
                 "the same batch %d (data.batch_size=%d matches it)", trained, batch, share, "" if share == 1 else "s",
                 batch, batch * trained)


def load_style_images(cfg: DictConfig, specs: list[dict[str, Any]]) -> list[torch.Tensor]:
    """Each style's image (1, 3, H, W), found, downloaded and verified as its config says."""
    images = []
    for spec in specs:
        path = resolve_style_image(style_dir=cfg.paths.style_dir, **spec)
        images.append(load_style_tensor(path, size=spec.get("size")))
        log.info("style %s: %s (%dx%d)", spec["name"], path, images[-1].shape[-1], images[-1].shape[-2])
    return images


def _quiet_known_warnings() -> None:
    """Silence warnings that are expected here and only confuse users."""
    # the frozen VGG is in eval mode on purpose
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    # emitted by Lightning's own internals on recent torch versions
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated.*")


def resolve_auto_path(cfg: DictConfig) -> None:
    """Replace ``trainer.precision=auto`` and ``channels_last=auto`` (``trainer=auto``, the
    default) by the device's fast path (:func:`fast_style.devices.training_path`), in
    place, and log the choice in one line; values set by hand are kept."""
    auto_precision = str(cfg.trainer.get("precision")) == "auto"
    auto_layout = str(cfg.get("channels_last")) == "auto"
    if not (auto_precision or auto_layout):
        return
    device = accelerator_device(cfg.trainer.get("accelerator", "auto"))
    path = training_path(device)
    if auto_precision:
        cfg.trainer.precision = path.precision
    if auto_layout:
        cfg.channels_last = path.channels_last
    log.info("fast path: %s -> trainer.precision=%s, channels_last=%s%s", path.reason, cfg.trainer.precision,
             str(cfg.channels_last).lower(), "" if auto_precision and auto_layout else " (partly set by hand)")


FINISHED_MARKER = "finished.json"
SIGTERM_EXIT = 128 + 15  # the shell's status for a process ended by SIGTERM


def select_checkpoint(cfg: DictConfig, output_dir: Path) -> Checkpoint | None:
    """The verified checkpoint to resume from: ``ckpt_path`` if given, else (``auto_resume``)
    this run folder's ``checkpoints/last.ckpt``, or its newest periodic checkpoint when
    last.ckpt is damaged (moved aside) or missing, else None (a fresh start); see
    :func:`fast_style.training.checkpoints.choose_checkpoint`."""
    return choose_checkpoint(ckpt_path=cfg.get("ckpt_path"), checkpoint_dir=output_dir / "checkpoints",
                             auto_resume=cfg.get("auto_resume", True), rank_zero=rank_zero_only.rank == 0)


def check_resumable(checkpoint: Checkpoint, module: StyleTransferModule) -> None:
    """One line unless ``checkpoint``'s tensors are exactly ``module``'s (loss network aside)
    and, for several styles, it trained the same styles in the same order."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.startswith(LOSS_NET_PREFIX)}
    check_fits(checkpoint, expected, config={"model": module.hparams["model"], "loss": module.hparams["loss"]})
    then, now = checkpoint.hparams.get("styles"), module.hparams.get("styles")
    if (then or now) and list(then or []) != list(now or []):
        raise CheckpointError(f"{checkpoint.path}: trained styles {', '.join(then or ['(one style)'])}, this run "
                              f"{', '.join(now or ['(one style)'])}; resume with the same styles in the same order, "
                              "or train in a new run folder")


def log_batch_sizes(trainer: pl.Trainer, loggers: list[Any], per_device: int) -> dict[str, int]:
    """Per-device and effective batch size (per device x devices x nodes), logged as hparams."""
    sizes = {
        "batch_size_per_device": per_device,
        "world_size": trainer.world_size,
        "effective_batch_size": per_device * trainer.world_size,
    }
    log.info("batch size: %d per device x %d processes = %d per step", per_device, trainer.world_size, sizes["effective_batch_size"])
    for logger in loggers:
        logger.log_hyperparams(sizes)
    return sizes


def _report(result: dict[str, Any], *, style: str, loss_net: str) -> None:
    summary = "\n".join(f"  {k:13s} {v}" for k, v in result.items())
    print(f"\nTraining finished ({style}, loss network {loss_net}):\n{summary}")
    if result.get("tensorboard"):
        print(f"  watch with:   tensorboard --logdir {result['tensorboard']}")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train one style model as configured; returns the paths it produced.

    A run folder that already holds ``finished.json`` is not trained again (a finished
    job that is re-run or requeued); one that holds ``checkpoints/last.ckpt`` resumes
    from it.
    """
    _quiet_known_warnings()
    resolve_auto_path(cfg)
    check_train_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    marker = output_dir / FINISHED_MARKER
    if marker.is_file() and not cfg.get("ckpt_path"):
        result = json.loads(marker.read_text())
        print(f"Already finished: {output_dir} (delete {marker.name} to train again)")
        return result
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)

    specs = style_list(cfg)
    images = load_style_images(cfg, specs)
    base = None
    if cfg.get("finetune_from"):
        base = open_base(cfg.finetune_from, new_names=[spec["name"] for spec in specs])
        log.info("adding %s to %s (%s): their norm parameters alone are trained", ", ".join(s["name"] for s in specs),
                 base.path, ", ".join(base.names))
        if cfg.style.name == "+".join(spec["name"] for spec in specs):  # not named by hand: name all the styles
            cfg.style.name = "+".join([*base.names, *(spec["name"] for spec in specs)])

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    resume = select_checkpoint(cfg, output_dir)

    module = build_module(cfg, images, specs=specs, base=base)
    if resume is not None:
        check_resumable(resume, module)
    loss_net = module.hparams["loss_net_source"]
    log.info("loss network: %s %s", cfg.loss_net.arch, loss_net)

    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                      plugins=cluster_plugins() or None)
    log_batch_sizes(trainer, loggers, cfg.data.batch_size)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume.path) if resume else None,
                    weights_only=True)
    except SIGTERMException:
        # pre-emption, scontrol requeue, `timeout`: the exception checkpoint saved last.ckpt
        log.warning("stopped by SIGTERM at step %d; %s/checkpoints/last.ckpt is saved and the same "
                    "command (or the requeued job) resumes from it", trainer.global_step, output_dir)
        raise SystemExit(SIGTERM_EXIT) from None
    except SystemExit as stop:
        # sys.exit from a signal handler, e.g. submitit's after it requeued a job at its time limit
        log.warning("stopped by exit(%s) at step %d; %s/checkpoints/last.ckpt is saved and the same "
                    "command (or the requeued job) resumes from it", stop.code, trainer.global_step, output_dir)
        raise
    if trainer.interrupted:
        raise FastStyleError(f"training was interrupted at step {trainer.global_step}; run the same command again to resume")

    # the periodic checkpoint rarely falls on the last step: keep the final state too
    last_ckpt = output_dir / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(last_ckpt)

    result: dict[str, Any] = {"output_dir": str(output_dir), "global_step": trainer.global_step, "last_ckpt": str(last_ckpt)}
    for callback in callbacks:
        if isinstance(callback, ExportStyleModel) and callback.path:
            result["style_model"] = str(callback.path)
        if isinstance(callback, StyleSamples) and callback.last_written:
            result["samples"] = str(callback.last_written)
    if loggers:
        result["tensorboard"] = str(getattr(loggers[0], "log_dir", output_dir))
    if trainer.is_global_zero:
        atomic_write_text(marker, json.dumps(result, indent=2))
        _report(result, style=cfg.style.name, loss_net=loss_net)
    return result
