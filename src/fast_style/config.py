"""Hydra schemas of every command: the single source of command-line defaults and types.

Each command's primary config (``configs/<command>.yaml``) starts its defaults list with
its schema, ``<command>_schema``, registered from :data:`COMMANDS` (the one list), so a misspelt key (``strenght=0.5``) or a wrong type
(``size=big``) is rejected by Hydra before anything runs, and ``overwrite=no`` is the
boolean false. Option defaults live in the dataclasses, not in the yaml files; the
yaml files of the config groups (``model/``, ``loss/``, ``style/`` ...) are named
presets whose keys the group schemas below check. What Hydra itself does (run folder or
none, log files) is one shared block per kind of command: ``configs/hydra/default.yaml``
(train.py's run folders) and ``configs/hydra/tool.yaml`` (every other command: no run
folder, no ``.hydra/``, no log file), taken through each yaml's defaults list.

    python stylize.py --cfg job       # every option with its value, as composed
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from fast_style.inference.live_options import LiveOptions
from fast_style.inference.options import StylizeOptions
from fast_style.training.options import DataOptions, PrepareDataConfig


@dataclass
class StylizeConfig(StylizeOptions):
    """``python stylize.py``: the model file and the input, plus every :class:`StylizeOptions`."""

    ckpt: str = MISSING
    input: str = MISSING


@dataclass
class LiveConfig(LiveOptions):
    """``python live.py``: the model file and the source (a camera index, a video file or a
    stream URL), plus every :class:`LiveOptions` (which holds every :class:`StylizeOptions`)."""

    ckpt: str = MISSING
    source: str = MISSING


@dataclass
class ExportConfig:
    """``python scripts/export.py``: ``ckpt`` to ``format`` (safetensors, onnx, torchscript, executorch, web);
    ``ort_dist``: format=web only, a local onnxruntime-web ``dist/`` folder copied into the export
    (None: the page loads the pinned version from a CDN); ``max_size``: format=executorch only,
    the largest height and width the ``.pte`` takes (None: 1024; its memory is planned for it)."""

    ckpt: str = MISSING
    format: str = "safetensors"
    output: str | None = None
    overwrite: bool = False
    exporter: str = "auto"
    opset: int | None = None
    ort_dist: str | None = None
    max_size: int | None = None


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
    the flow-free temporal stability term (0: off; see fast_style.nn.temporal); ``colour_weight``:
    the painting's pixel mean and covariance (0: off; see fast_style.nn.losses)."""

    content_layers: dict[str, float] = MISSING
    style_layers: dict[str, float] = MISSING
    content_weight: float = MISSING
    style_weight: float = MISSING
    tv_weight: float = MISSING
    batched: bool = MISSING
    temporal_weight: float = 0.0
    colour_weight: float = 0.0


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
class ReferenceWeights:
    """``objective.reference_weights``: the fixed weights of the objective's reference total;
    each null: the loss preset's own (``configs/loss/<loss>.yaml``)."""

    content_weight: float | None = None
    style_weight: float | None = None
    tv_weight: float | None = None
    colour_weight: float | None = None


@dataclass
class ObjectiveSchema:
    """``objective`` of ``train.py``: what the run returns to a sweeper (Optuna, Nevergrad, Ax
    minimise it) and writes to ``<run>/objective.json``; fast_style.training.objective.

    ``kind``: heldout (``objective=heldout``, the default: the perceptual loss of the trained
    model on ``images``), train_total (``objective=train_total``: the last logged training
    total) or none (``objective=none``: nothing computed, nothing returned); ``images``: a
    folder, an image file or a list of them (null: ``check.images`` when ``check`` is set,
    else the data module's sample photos); ``size``: their centre squares' side in px (null:
    ``data.sample_size``); ``batch_size``: photos per forward pass; ``reference_weights``:
    the fixed weights of the reference total (:class:`ReferenceWeights`; e.g.
    ``objective.reference_weights.style_weight=1e10``); ``returns``: which total the run
    returns (heldout): total (under the run's own ``loss`` weights) or reference (under
    ``reference_weights``: for a sweep over the loss weights, configs/hparams_search/)."""

    kind: str = "heldout"
    images: Any = None
    size: int | None = None
    batch_size: int = 4
    reference_weights: ReferenceWeights = field(default_factory=ReferenceWeights)
    returns: str = "total"


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
    after training, check the model on held-out photos (:class:`CheckSchema`); ``objective``:
    the number the run returns to a sweeper (:class:`ObjectiveSchema`, group ``objective/``).

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
    data: DataOptions = field(default_factory=DataOptions)
    trainer: Any = MISSING
    callbacks: Any = None
    logger: Any = None
    paths: Any = MISSING
    check: CheckSchema | None = None
    objective: ObjectiveSchema = field(default_factory=ObjectiveSchema)


@dataclass
class EvaluateLossNet:
    """``loss_net`` of ``scripts/evaluate.py``: each key null takes the model's own (its metadata
    names the weights: imagenet, file:<path> or random(seed=N)); style models do not record
    arch and pool, which then default to vgg16 and max."""

    arch: str | None = None
    pool: str | None = None
    pretrained: Any = None
    weights: str | None = None
    seed: int | None = None


@dataclass
class EvaluateConfig:
    """``python scripts/evaluate.py``: a style model against pixel optimisation under its training loss.

    ``ckpt``: a .safetensors style model or a Lightning .ckpt (both record their training
    loss); ``styles``: which style of a multi-style model (a name of its styles or an index
    0..S-1); ``images``: a folder of held-out photos (searched recursively, sorted by name),
    the first ``num_images`` by name (null: all), resized (shorter side) and centre-cropped
    to ``size`` x ``size``; ``iterations``: optimisation iteration counts compared with (one
    run to the largest gives them all; a number or a list); ``optimizer``: lbfgs | adam,
    started from the photo, ``lr`` null: the optimizer's own (see :class:`OptimizeConfig`);
    ``flicker``: frames of a clip with a known camera move made from each photo for the
    flicker measure (0: off); ``output``: folder for evaluation.json, table.md and grid.png
    (null: evaluations/<style>-<size>px, numbered -1, -2 ... if it exists, unless
    ``overwrite``); ``device``: auto (cuda, then mps, then cpu) or a device name.
    ``style`` (group, default none): the painting; none takes the style config named like the
    model's style (or the ``styles`` chosen of a multi-style model)."""

    task_name: str = "evaluate"
    ckpt: str = MISSING
    styles: Any = None
    images: str = MISSING
    num_images: int | None = 4
    size: int = 256
    iterations: Any = field(default_factory=lambda: [50, 100, 300])
    optimizer: str = "lbfgs"
    lr: float | None = None
    loss_net: EvaluateLossNet = field(default_factory=EvaluateLossNet)
    flicker: int = 16
    output: str | None = None
    overwrite: bool = False
    device: str = "auto"
    progress: bool = True
    style: Any = None
    paths: Any = MISSING


@dataclass
class OptimizeConfig:
    """``python optimize.py``: stylize one photo by optimising its pixels (Gatys et al.).

    ``content``: the photo; ``output``: the file to write (its folder must exist; null:
    beside the photo as <name>_<style>_optimized.png), replaced only with ``overwrite``
    (intermediate images too); ``size``: longer side of the photo before optimising (null:
    native); ``optimizer``: lbfgs (Gatys) | adam, ``iterations`` steps (an L-BFGS iteration
    with its strong-Wolfe line search usually evaluates the loss once); pixels are
    y = sigmoid(z), optimised in z, ``lr`` null: 1.0 for lbfgs, 0.1 for adam; ``init``:
    content (start from the photo) | noise (uniform random pixels, ``seed``);
    ``save_every``: also write <output>_iter<k> every N iterations (0: only the final image);
    ``device``: auto (cuda, then mps, then cpu) or a device name. Groups as train.py's:
    ``style``, ``loss_net``, ``loss`` (``loss=gatys``: VGG-19, Gatys' layers), ``paths``."""

    task_name: str = "optimize"
    content: str = MISSING
    output: str | None = None
    overwrite: bool = False
    size: int | None = 512
    optimizer: str = "lbfgs"
    iterations: int = 300
    lr: float | None = None
    init: str = "content"
    seed: int | None = 0
    save_every: int | None = 0
    device: str = "auto"
    progress: bool = True
    style: StyleSchema = field(default_factory=StyleSchema)
    loss_net: LossNetSchema = field(default_factory=LossNetSchema)
    loss: LossSchema = field(default_factory=LossSchema)
    paths: Any = MISSING


@dataclass
class LossCurveConfig:
    """``python scripts/loss_curve.py``: ``run_dir``: the training run's folder (searched for
    event files at any depth); ``every``: print every N-th logged row (the last one always; 1: all)."""

    run_dir: str = MISSING
    every: int = 1


@dataclass
class CompareConfig:
    """``python scripts/compare.py``: a contact sheet of training runs (fast_style.evaluation.contact_sheet).

    ``runs``: a sweep folder (its run folders), a run folder, a glob, or a list of them;
    ``output``: the sheet's folder (null: ``<sweep folder>/compare``, numbered -1, -2 ... if
    taken, or ``compare-<time>`` in the current folder for a list or glob); an existing
    compare.html there is replaced only with ``overwrite``; ``photos``: a folder, a file or a
    list (null: the photos of the runs' objective.json); ``size``: each tile's side in px;
    ``sort``: the initial order (auto: reference when the runs' loss weights differ, else
    objective; or objective, reference, content, style, tv, total, steps, time, run);
    ``device``/``runtime``/``precision``: as stylize.py's (torch fp32: no export or calibration
    per model); ``quality``: JPEG quality of the thumbnails and compare.jpg."""

    task_name: str = "compare"
    runs: Any = MISSING
    output: str | None = None
    overwrite: bool = False
    photos: Any = None
    size: int = 256
    sort: str = "auto"
    device: str = "auto"
    runtime: str = "torch"
    precision: str = "fp32"
    quality: int = 90
    progress: bool = True


# The one list of commands: configs/<name>.yaml starts its defaults with ``<name>_schema``.
COMMANDS: dict[str, type] = {
    "train": TrainConfig,
    "stylize": StylizeConfig,
    "live": LiveConfig,
    "export": ExportConfig,
    "evaluate": EvaluateConfig,
    "optimize": OptimizeConfig,
    "prepare_data": PrepareDataConfig,
    "loss_curve": LossCurveConfig,
    "compare": CompareConfig,
}
SCHEMAS = {f"{name}_schema": schema for name, schema in COMMANDS.items()}


def styles_name(styles: Any) -> str:
    """The name of a list of styles (``${styles_name:${styles}}`` in ``configs/style/multi.yaml``):
    each entry's name (a style config's name, or an image path's stem) joined by ``+``, so
    ``[starry_night, art/udnie.jpg]`` is ``starry_night+udnie``; ``multi`` while the list is unset."""
    if not styles:
        return "multi"
    return "+".join(PurePath(str(entry)).stem for entry in styles)


def register_schemas() -> ConfigStore:
    """Put every schema of :data:`COMMANDS` into Hydra's ConfigStore, and the resolvers the
    configs use into OmegaConf (idempotent); :func:`fast_style.cli.entry` calls it first."""
    store = ConfigStore.instance()
    for name, node in SCHEMAS.items():
        store.store(name=name, node=node)
    if not OmegaConf.has_resolver("styles_name"):
        OmegaConf.register_new_resolver("styles_name", styles_name)
    return store
