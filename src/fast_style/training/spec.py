"""The training run resolved once: :func:`build_train_spec` turns the composed config into a
frozen :class:`TrainSpec`, and everything after it (styles, fine-tuning, checkpoints, the
module, the Trainer) reads the spec, never the DictConfig, which is not changed.

Building it, in this order (each failure is one line before any set-up):

1. the device's training path (``trainer=auto``): ``trainer.precision=auto`` and
   ``channels_last=auto`` become :func:`fast_style.devices.training_path`'s choice for the
   accelerator, logged in one line; values set by hand are kept;
2. the range checks of :mod:`.validation`;
3. the styles: ``styles`` unset is the one ``style`` group; else each entry is a style
   config read from ``style_dirs`` (explicit folders of ``<name>.yaml``; None: the
   ``style/`` folders of the run's config sources, read here once) or an image path
   (:func:`fast_style.training.styles.style_list`);
4. the objective's options (:func:`fast_style.training.objective.objective_options`: its
   kind, photos, size and the reference weights).

Groups become plain containers with every interpolation resolved (what Lightning's
hyper-parameters and the exported model's metadata store): ``model``, ``loss``,
``loss_net``, ``data`` (the datamodule's keyword arguments, with ``_target_``) and
``trainer`` (the Trainer's, with the chosen precision).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fast_style.devices import accelerator_device, training_path
from fast_style.training.objective import objective_options
from fast_style.training.styles import STYLE_KEYS, style_list
from fast_style.training.validation import check_train_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StyleSpec:
    """One trained style: a named file (``file``, ``url``, ``sha256``), an ``image`` path or a
    ``procedural`` drawing; ``size``: the longer side of its image (None: as it is)."""

    name: str
    file: str | None = None
    url: str | None = None
    sha256: str | None = None
    image: str | None = None
    size: int | None = None
    procedural: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The style-config dict (keys :data:`fast_style.training.styles.STYLE_KEYS`)."""
        return {key: getattr(self, key) for key in STYLE_KEYS}


@dataclass(frozen=True)
class DevicePath:
    """The precision and layout a run trains with, and why (``reason`` None: both set by hand)."""

    precision: str
    channels_last: bool | str
    reason: str | None = None


@dataclass(frozen=True)
class TrainSpec:
    """Everything ``train`` needs, resolved (module docstring). ``style_name`` names the run's
    model (``style.name``; a fine-tuning run renames it with :meth:`named`)."""

    style_name: str
    styles: tuple[StyleSpec, ...]
    model: dict[str, Any]
    loss: dict[str, Any]
    loss_net: dict[str, Any]
    data: dict[str, Any]
    trainer: dict[str, Any]
    device: DevicePath
    lr: float
    lr_schedule: str
    style_lr: float | None
    seed: int | None
    compile: bool
    ckpt_path: str | None
    auto_resume: bool
    finetune_from: str | None
    style_dir: str
    output_dir: Path
    objective: dict[str, Any] = dataclasses.field(default_factory=lambda: {"kind": "none"})

    @property
    def style_names(self) -> list[str]:
        return [style.name for style in self.styles]

    @property
    def batch_size(self) -> int:
        return int(self.data["batch_size"])

    def named(self, style_name: str) -> TrainSpec:
        """The same spec with the model named ``style_name``."""
        return dataclasses.replace(self, style_name=style_name)


def _plain(node: Any) -> Any:
    """A config node as plain Python containers, every interpolation resolved."""
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    return node


def choose_device_path(cfg: DictConfig) -> DevicePath:
    """``trainer.precision`` and ``channels_last`` with ``auto`` replaced by the device's fast
    path (:func:`fast_style.devices.training_path`), logged in one line; values set by hand are kept."""
    precision, layout = cfg.trainer.get("precision"), cfg.get("channels_last")
    auto_precision, auto_layout = str(precision) == "auto", str(layout) == "auto"
    if not (auto_precision or auto_layout):
        return DevicePath(precision=precision, channels_last=layout)
    path = training_path(accelerator_device(cfg.trainer.get("accelerator", "auto")))
    chosen = DevicePath(precision=path.precision if auto_precision else precision,
                        channels_last=path.channels_last if auto_layout else layout, reason=path.reason)
    log.info("fast path: %s -> trainer.precision=%s, channels_last=%s%s", path.reason, chosen.precision,
             str(chosen.channels_last).lower(), "" if auto_precision and auto_layout else " (partly set by hand)")
    return chosen


def build_train_spec(cfg: DictConfig, *, style_dirs: list[Path] | None = None) -> TrainSpec:
    """The :class:`TrainSpec` of a composed train config (module docstring); ``cfg`` is only read."""
    device = choose_device_path(cfg)
    check_train_config(cfg)
    styles = tuple(StyleSpec(**spec) for spec in style_list(cfg, dirs=style_dirs))
    objective = objective_options(cfg)
    return TrainSpec(
        style_name=str(cfg.style.name),
        styles=styles,
        model=_plain(cfg.model),
        loss=_plain(cfg.loss),
        loss_net=_plain(cfg.loss_net),
        data=_plain(cfg.data),
        trainer={**_plain(cfg.trainer), "precision": device.precision},
        device=device,
        lr=cfg.lr,
        lr_schedule=cfg.lr_schedule,
        style_lr=cfg.get("style_lr"),
        seed=cfg.get("seed"),
        compile=bool(cfg.get("compile", False)),
        ckpt_path=cfg.get("ckpt_path"),
        auto_resume=bool(cfg.get("auto_resume", True)),
        finetune_from=cfg.get("finetune_from"),
        style_dir=str(cfg.paths.style_dir),
        output_dir=Path(cfg.paths.output_dir),
        objective=objective,
    )
