"""The Hydra schemas of scripts/multistyle_study.py and scripts/flicker_study.py, and their config folder.

``studies/configs/<name>.yaml`` only chooses the schema and sets Hydra's behaviour; every key
and its default is the dataclass's. The entry scripts call :func:`register_schemas` before
``hydra.main`` composes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class MultistyleStudyConfig:
    """Keys of the multi-style study (:mod:`studies.multistyle`); ``held_out``: file stems of ``photos``
    kept out of training and scored; ``finetune_checkpoints``: how many checkpoints of
    the fine-tune run are scored; ``finetune_lr``: its learning rate (null: train.py's);
    ``multi_batch_size``: the multi-style model's batch (null: ``batch_size``; ``batch_size``
    times the number of styles gives each style the images a step of a one-style model);
    ``seeds``: every model is trained once per seed (a one-seed ratio is within the
    seed-to-seed spread, docs/results.md). Relative ``photos`` and ``style_dir`` are
    resolved against the working directory."""

    output_dir: str = "logs/multistyle_study"
    photos: str = "../shared/data/content"
    style_dir: str = "../shared/data/styles"
    held_out: list[str] = field(default_factory=lambda: ["chelsea", "coffee", "raccoon", "toronto_skyline"])
    styles: list[str] = field(default_factory=lambda: ["starry_night", "the_scream", "udnie", "great_wave"])
    new_style: str = "shipwreck"
    steps: int = 400
    size: int = 96
    eval_size: int = 128
    batch_size: int = 4
    multi_batch_size: int | None = None
    train_model: str = "tiny"  # train.py's model= (tiny, transformer, ...); a study key named model would be taken for that config group
    seeds: list[int] = field(default_factory=lambda: [42, 43, 44])
    finetune_checkpoints: int = 16
    finetune_lr: float | None = None
    extra: list[str] = field(default_factory=list)


@dataclass
class FlickerStudyConfig:
    """Keys of the flicker study (:mod:`studies.flicker_study`); ``images``: photos to score on (those
    whose file stem is a training photo's are left out); ``num_images``: the first N (null: all)."""

    output_dir: str = "logs/flicker_study"
    train_experiment: str = "demo"  # train.py's experiment=; a study key named experiment would be taken for that config group
    steps: int = 900
    seed: int = 42
    temporal_weights: list[float] = field(default_factory=lambda: [1e6])
    images: str = "../shared/data/content"
    num_images: int | None = None
    size: int = 256
    frames: int = 16
    extra: list[str] = field(default_factory=list)


def register_schemas() -> None:
    """Store ``multistyle_study_schema`` and ``flicker_study_schema`` in Hydra's ConfigStore."""
    store = ConfigStore.instance()
    store.store(name="multistyle_study_schema", node=MultistyleStudyConfig)
    store.store(name="flicker_study_schema", node=FlickerStudyConfig)
