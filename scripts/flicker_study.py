"""Flicker with and without the temporal term (issue #14's figure).

    python scripts/flicker_study.py [steps=900] [temporal_weights=[1e6]] [train_experiment=demo]
        [images=../shared/data/content] [num_images=null] [size=256] [frames=16] [seed=42]
        [output_dir=logs/flicker_study] [extra=[...train.py overrides...]]

Trains, with train.py in subprocesses, one model per weight in [0, *temporal_weights]
(``train_experiment``, ``steps`` and ``seed`` the same; its time limit and check off), then
scores them on held-out photos: perceptual loss (content, style, TV, total) and the
temporal warping error on clips with a known camera move. What is measured and the
goals: fast_style/evaluation/flicker_study.py. A finished run is reused when the study
is run again with the same ``output_dir``; delete the folder to start over.
"""

from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from fast_style.cli import report_user_errors, run

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class FlickerStudyConfig:
    """Keys of the study (see the module docstring); ``images``: photos to score on (those
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


ConfigStore.instance().store(name="flicker_study_schema", node=FlickerStudyConfig)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="flicker_study")
def main(cfg: DictConfig) -> None:
    from fast_style.evaluation.flicker_study import FlickerStudySettings, run_study, table
    from fast_style.evaluation.training_runs import write_report

    with report_user_errors():
        config: FlickerStudyConfig = OmegaConf.to_object(cfg)
        output_dir = Path(config.output_dir).resolve()
        settings = FlickerStudySettings(output_dir=output_dir, experiment=config.train_experiment, steps=config.steps,
                                        seed=config.seed, extra=tuple(config.extra))
        report = run_study(settings, temporal_weights=config.temporal_weights, images=Path(config.images).resolve(),
                           num_images=config.num_images, size=config.size, frames=config.frames)
        print(write_report(report, table(report), output_dir))
        print(f"\nwritten: {output_dir / 'study.json'}, {output_dir / 'table.md'}")


if __name__ == "__main__":
    run(main)
