"""``train(cfg)``: everything ``python train.py`` does, given a composed Hydra config.

The config is resolved once into a :class:`~fast_style.training.spec.TrainSpec` (the
device's precision and layout, the range checks, the styles) and only read: the module,
the styles, fine-tuning, checkpoints and the Trainer take the spec.

Order matters for failing fast: the options' ranges first (:mod:`.validation`), then
the style images (their sizes read from the headers), the model to add styles to
(``finetune_from``, :mod:`.finetune`), the training images, the checkpoint to resume
from (verified, :mod:`.checkpoints`) and the loss network's weights are all checked
before the Trainer starts, so a bad value, path or download ends in seconds with one
line, not after minutes of set-up; so are the objective's photos (:mod:`.objective`).

After training, on global rank 0: the objective (``objective=heldout | train_total | none``)
is computed, written to ``<run>/objective.json`` and kept in the result as ``objective``,
which ``train.py`` returns to Hydra's sweeper; then the run's hyper-parameters are logged with
its final metrics for TensorBoard's HPARAMS tab (:mod:`.hparams`).

Styles: ``styles`` unset is the one ``style`` of today; a list of S > 1 styles trains one
network with S styles (``model.num_styles``); a list of one is the one-style model.
``finetune_from`` adds the listed styles (or the one ``style``) to a trained network.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException

from fast_style.devices import cluster_plugins
from fast_style.errors import CheckpointError, FastStyleError
from fast_style.io.files import atomic_write_text
from fast_style.io.images import load_image
from fast_style.training.callbacks import ExportStyleModel, StyleSamples, TrainingPace
from fast_style.training.checkpoints import Checkpoint, check_fits, choose_checkpoint
from fast_style.training.finetune import (
    Base,
    copy_base,
    grown_arch,
    grown_name,
    log_arch_choice,
    open_base,
)
from fast_style.training.hparams import final_metrics, log_final_hparams, run_hparams
from fast_style.training.module import LOSS_NET_PREFIX, StyleTransferModule
from fast_style.training.objective import Photos, compute_objective, load_photos, write_objective
from fast_style.training.spec import TrainSpec, build_train_spec
from fast_style.training.styles import check_style_pixels, resolve_style_image

log = logging.getLogger(__name__)


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


def build_module(spec: TrainSpec, style_image: torch.Tensor | list[torch.Tensor], *,
                 base: Base | None = None) -> StyleTransferModule:
    """The module of ``spec``: its styles (one image each in ``style_image``; more than one:
    a network with that many styles), precision layout and optimisation. ``base``
    (``finetune_from``): the file's network grown by the new styles, its tensors copied in,
    only the new styles trained."""
    model, names = dict(spec.model), spec.style_names
    style = {k: v for k, v in spec.styles[0].as_dict().items() if k in SINGLE_STYLE_KEYS}
    frozen = 0
    if base is not None:
        log_arch_choice(base, model)
        model, names, frozen = grown_arch(base, len(names)), [*base.names, *names], len(base.names)
    elif len(names) > 1:
        model = {**model, "num_styles": len(names)}
    if len(names) > 1:
        style = {"name": spec.style_name}
    log_images_per_style(len(names) - frozen, spec.batch_size)
    module = StyleTransferModule(
        model=model,
        loss=dict(spec.loss),
        loss_net=dict(spec.loss_net),
        style=style,
        style_image=style_image,
        styles=names if len(names) > 1 else None,
        frozen_styles=frozen,
        schedule_seed=spec.seed or 0,
        lr=spec.lr,
        lr_schedule=spec.lr_schedule,
        style_lr=spec.style_lr,
        channels_last=spec.device.channels_last,
        compile=spec.compile,
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


def load_style_images(spec: TrainSpec) -> tuple[list[torch.Tensor], list[Path]]:
    """Each style's image (1, 3, H, W), found, downloaded and verified as its config says, and
    the files they were read from."""
    images, paths = [], []
    for style in spec.styles:
        path = resolve_style_image(style_dir=spec.style_dir, **style.as_dict())
        images.append(load_style_tensor(path, size=style.size))
        paths.append(Path(path).resolve())
        log.info("style %s: %s (%dx%d)", style.name, path, images[-1].shape[-1], images[-1].shape[-2])
    return images, paths


def _quiet_known_warnings() -> None:
    """Silence warnings that are expected here and only confuse users."""
    # the frozen VGG is in eval mode on purpose
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    # emitted by Lightning's own internals on recent torch versions
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated.*")


FINISHED_MARKER = "finished.json"
SIGTERM_EXIT = 128 + 15  # the shell's status for a process ended by SIGTERM


def select_checkpoint(spec: TrainSpec) -> Checkpoint | None:
    """The verified checkpoint to resume from: ``ckpt_path`` if given, else (``auto_resume``)
    this run folder's ``checkpoints/last.ckpt``, or its newest periodic checkpoint when
    last.ckpt is damaged (moved aside) or missing, else None (a fresh start); see
    :func:`fast_style.training.checkpoints.choose_checkpoint`."""
    return choose_checkpoint(ckpt_path=spec.ckpt_path, checkpoint_dir=spec.output_dir / "checkpoints",
                             auto_resume=spec.auto_resume, rank_zero=rank_zero_only.rank == 0)


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


def objective_photos(spec: TrainSpec, datamodule: Any) -> Photos | None:
    """The heldout objective's photos, read before training (None for the other kinds):
    ``objective.images`` / ``check.images`` files, or the data module's sample photos."""
    options = spec.objective
    if options["kind"] != "heldout":
        return None
    if options["images"] is not None:
        return load_photos(options)
    names = [p.name for p in datamodule.sample_files()] if getattr(datamodule, "shard_set", None) is None else None
    return load_photos(options, samples=datamodule.sample_images(), sample_names=names)


def finish_objective(spec: TrainSpec, cfg: DictConfig, *, module: StyleTransferModule, trainer: pl.Trainer,
                     photos: Photos | None, loggers: list[Any], pace: TrainingPace) -> dict[str, Any] | None:
    """On global rank 0 after training: the objective's record (written to ``objective.json``;
    None for ``objective=none``), then the hparams with the final metrics to every logger."""
    if photos is not None:
        module.to(trainer.strategy.root_device)  # Lightning's teardown moved it to the CPU
    start = time.perf_counter()
    record = compute_objective(spec.objective, module=module, trainer=trainer, photos=photos)
    if record is not None:
        record["seconds"] = round(time.perf_counter() - start, 3)
        write_objective(spec.output_dir, record)
    metrics = final_metrics(trainer.callback_metrics, objective=record, steps_per_s=pace.steps_per_s)
    log_final_hparams(loggers, run_hparams(cfg, style_name=spec.style_name), metrics, step=trainer.global_step)
    return record


def _report(result: dict[str, Any], *, style: str, loss_net: str) -> None:
    summary = "\n".join(f"  {k:13s} {v}" for k, v in result.items())
    print(f"\nTraining finished ({style}, loss network {loss_net}):\n{summary}")
    if result.get("tensorboard"):
        print(f"  watch with:   tensorboard --logdir {result['tensorboard']}")


def train(cfg: DictConfig, *, style_dirs: list[Path] | None = None) -> dict[str, Any]:
    """Train one style model as configured; returns the paths it produced. ``cfg`` is only
    read (:func:`~fast_style.training.spec.build_train_spec`; ``style_dirs``: the folders of
    the style configs that ``styles`` names, None: the run's config sources).

    A run folder that already holds ``finished.json`` is not trained again (a finished
    job that is re-run or requeued); one that holds ``checkpoints/last.ckpt`` resumes
    from it.
    """
    _quiet_known_warnings()
    spec = build_train_spec(cfg, style_dirs=style_dirs)
    output_dir = spec.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    marker = output_dir / FINISHED_MARKER
    if marker.is_file() and not spec.ckpt_path:
        result = json.loads(marker.read_text())
        print(f"Already finished: {output_dir} (delete {marker.name} to train again)")
        return result
    if spec.seed is not None:
        pl.seed_everything(spec.seed, workers=True, verbose=False)

    started = time.perf_counter()
    images, paintings = load_style_images(spec)
    base = None
    if spec.finetune_from:
        base = open_base(spec.finetune_from, new_names=spec.style_names)
        log.info("adding %s to %s (%s): their norm parameters alone are trained", ", ".join(spec.style_names),
                 base.path, ", ".join(base.names))
        spec = spec.named(grown_name(base, style_name=spec.style_name, new_names=spec.style_names))

    datamodule = instantiate(spec.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    photos = objective_photos(spec, datamodule)
    resume = select_checkpoint(spec)

    module = build_module(spec, images, base=base)
    if resume is not None:
        check_resumable(resume, module)
    loss_net = module.hparams["loss_net_source"]
    log.info("loss network: %s %s", spec.loss_net.get("arch"), loss_net)

    named = cfg if spec.style_name == cfg.style.name else OmegaConf.merge(cfg, {"style": {"name": spec.style_name}})
    callbacks = _instantiate_all(named.get("callbacks"))  # ${style.name}: the exported model's file name
    pace = TrainingPace()
    loggers = _instantiate_all(named.get("logger"))
    trainer: pl.Trainer = instantiate(spec.trainer, callbacks=[*callbacks, pace], logger=loggers or False,
                                      plugins=cluster_plugins() or None)
    log_batch_sizes(trainer, loggers, spec.batch_size)
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
    if pace.steps_per_s is not None:
        result["steps_per_s"] = pace.steps_per_s
    result["paintings"] = [str(p) for p in paintings]
    if trainer.is_global_zero:
        record = finish_objective(spec, named, module=module, trainer=trainer, photos=photos, loggers=loggers, pace=pace)
        if record is not None:
            result["objective"] = record["value"]
        # this process' wall time, from the style images to the objective (a resumed run: since its last start)
        result["seconds"] = round(time.perf_counter() - started, 3)
        atomic_write_text(marker, json.dumps(result, indent=2))
        _report(result, style=spec.style_name, loss_net=loss_net)
    return result
