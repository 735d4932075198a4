"""Hydra schemas of every command: the single source of command-line defaults and types.

Each command's primary config (``configs/<command>.yaml``) starts its defaults list with
the schema registered here, so a misspelt key (``strenght=0.5``) or a wrong type
(``size=big``) is rejected by Hydra before anything runs, and ``overwrite=no`` is the
boolean false. Option defaults live in the dataclasses, not in the yaml files; the
yaml files of the config groups (``model/``, ``loss/``, ``style/`` ...) are named
presets whose keys the group schemas below check.

    python stylize.py --cfg job       # every option with its value, as composed
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from fast_style.inference.options import StylizeOptions


@dataclass
class StylizeConfig(StylizeOptions):
    """``python stylize.py``: the model file and the input, plus every :class:`StylizeOptions`."""

    ckpt: str = MISSING
    input: str = MISSING


@dataclass
class ExportConfig:
    """``python scripts/export.py``: ``ckpt`` to ``format`` (safetensors, onnx, torchscript)."""

    ckpt: str = MISSING
    format: str = "safetensors"
    output: str | None = None
    overwrite: bool = False
    exporter: str = "auto"
    opset: int | None = None


@dataclass
class ModelSchema:
    """``model/*.yaml``: TransformerNet keyword arguments."""

    width: int = MISSING
    num_residual: int = MISSING
    norm: str = MISSING
    upsample: str = MISSING
    input_skip: bool = False


@dataclass
class LossSchema:
    """``loss/*.yaml``: taps with per-layer weights, and the three term weights; ``temporal_weight``:
    the flow-free temporal stability term (0: off; see fast_style.nn.temporal)."""

    content_layers: dict[str, float] = MISSING
    style_layers: dict[str, float] = MISSING
    content_weight: float = MISSING
    style_weight: float = MISSING
    tv_weight: float = MISSING
    batched: bool = MISSING
    temporal_weight: float = 0.0


@dataclass
class LossNetSchema:
    """``loss_net/*.yaml``: VGGFeatures keyword arguments (``pretrained``: true, false or auto)."""

    arch: str = MISSING
    pretrained: Any = MISSING
    weights: str | None = MISSING
    seed: int = MISSING
    pool: str = MISSING


@dataclass
class StyleSchema:
    """``style/*.yaml``: the painting (a named file with url and sha256, any image, or a drawn one)."""

    name: str = MISSING
    file: str | None = MISSING
    url: str | None = MISSING
    sha256: str | None = MISSING
    image: str | None = MISSING
    size: int | None = MISSING
    procedural: str | None = MISSING


@dataclass
class CheckSchema:
    """``check`` of ``train.py``: after training, stylize the photos in ``images`` (centre
    squares of ``size`` px) and report whether the model keeps them (luminance SSIM >=
    ``min_ssim``) and takes the painting's palette (colour distance at most
    ``max_colour_ratio`` of the photo's); see fast_style.evaluation.resemblance_check.
    ``demo_photos``: fill an empty ``images`` folder with the demo's held-out photos."""

    images: str = MISSING
    size: int = 256
    min_ssim: float = 0.5
    max_colour_ratio: float = 0.6
    demo_photos: bool = False


@dataclass
class TrainConfig:
    """``python train.py``: top-level keys (defaults here) and the typed groups.

    ``seed``: global seed; ``ckpt_path``: resume from this Lightning checkpoint;
    ``auto_resume``: without ckpt_path, resume from the run folder's
    ``checkpoints/last.ckpt`` (a requeued or re-run job); ``lr``: Adam learning rate
    (paper 1e-3); ``style_lr``: the learning rate of a multi-style network's per-style norm
    rows (null: ``lr``); ``lr_schedule``: constant (paper) or cosine (to 0 at trainer.max_steps);
    ``channels_last``: NHWC for both networks (true), the loss network only (loss_net),
    neither (false), or auto (the device's fast layout, ``fast_style.devices.training_path``); ``compile``: torch.compile both networks; ``check``:
    after training, check the model on held-out photos (:class:`CheckSchema`).

    ``styles``: train one network on several styles (``style=multi``; ``train.py`` turns
    ``style=[a,b]`` into ``style=multi styles=[a,b]``), each a ``configs/style/<name>.yaml``
    name or the path of an image; ``finetune_from``: a style model (any PyTorch kind) whose
    network learns the new style(s) by their norm parameters alone, everything else frozen
    (docs/training.md "Adding a style").
    """

    task_name: str = "train"
    seed: int | None = 42
    ckpt_path: str | None = None
    auto_resume: bool = True
    lr: float = 1.0e-3
    lr_schedule: str = "constant"
    style_lr: float | None = None
    channels_last: Any = "auto"
    compile: bool = False
    styles: list[str] | None = None
    finetune_from: str | None = None
    style: StyleSchema = field(default_factory=StyleSchema)
    model: ModelSchema = field(default_factory=ModelSchema)
    loss_net: LossNetSchema = field(default_factory=LossNetSchema)
    loss: LossSchema = field(default_factory=LossSchema)
    data: Any = MISSING
    trainer: Any = MISSING
    callbacks: Any = None
    logger: Any = None
    paths: Any = MISSING
    check: CheckSchema | None = None


SCHEMAS = {"stylize_schema": StylizeConfig, "export_schema": ExportConfig, "train_schema": TrainConfig}


def styles_name(styles: Any) -> str:
    """The name of a list of styles (``${styles_name:${styles}}`` in ``configs/style/multi.yaml``):
    each entry's name (a style config's name, or an image path's stem) joined by ``+``, so
    ``[starry_night, art/udnie.jpg]`` is ``starry_night+udnie``; ``multi`` while the list is unset."""
    if not styles:
        return "multi"
    return "+".join(PurePath(str(entry)).stem for entry in styles)


def register_schemas() -> ConfigStore:
    """Put every schema into Hydra's ConfigStore, and the resolvers the configs use into
    OmegaConf (idempotent); entry points call it first."""
    store = ConfigStore.instance()
    for name, node in SCHEMAS.items():
        store.store(name=name, node=node)
    if not OmegaConf.has_resolver("styles_name"):
        OmegaConf.register_new_resolver("styles_name", styles_name)
    return store
