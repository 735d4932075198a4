"""Several styles in one network against one network per style (issue #15's figures).

    python scripts/multistyle_study.py [steps=400] [size=96] [train_model=tiny] [eval_size=128]
        [batch_size=4] [multi_batch_size=null: batch_size] [seeds=[42,43,44]]
        [styles=[starry_night,the_scream,udnie,great_wave]] [new_style=shipwreck]
        [photos=../shared/data/content] [style_dir=../shared/data/styles] [output_dir=logs/multistyle_study]

Trains, with train.py in subprocesses and the same settings throughout (random VGG-16
loss network), a one-style model per style, one model of all ``styles``, a one-style
model of ``new_style`` and a fine-tune that adds ``new_style`` to the multi-style model;
then scores them on the ``held_out`` photos (never trained on). What is measured:
fast_style/evaluation/multistyle.py. A finished run is reused when the study is run
again with the same ``output_dir``; delete the folder to start over.
"""

from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from fast_style.cli import report_user_errors, run

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class MultistyleStudyConfig:
    """Keys of the study (see the module docstring); ``held_out``: file stems of ``photos``
    kept out of training and scored; ``finetune_checkpoints``: how many checkpoints of
    the fine-tune run are scored; ``finetune_lr``: its learning rate (null: train.py's);
    ``multi_batch_size``: the multi-style model's batch (null: ``batch_size``; ``batch_size``
    times the number of styles gives each style the images a step of a one-style model);
    ``seeds``: every model is trained once per seed (a one-seed ratio is within the
    seed-to-seed spread, docs/results.md)."""

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


ConfigStore.instance().store(name="multistyle_study_schema", node=MultistyleStudyConfig)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="multistyle_study")
def main(cfg: DictConfig) -> None:
    from fast_style.evaluation.multistyle import (
        StudySettings,
        run_study,
        tables,
        training_folder,
    )
    from fast_style.evaluation.training_runs import write_report

    with report_user_errors():
        config: MultistyleStudyConfig = OmegaConf.to_object(cfg)
        output_dir = Path(config.output_dir).resolve()
        photos, held_out = training_folder(Path(config.photos), config.held_out, output_dir / "photos")
        settings = StudySettings(output_dir=output_dir, photos=photos, style_dir=Path(config.style_dir).resolve(),
                                 steps=config.steps, size=config.size, batch_size=config.batch_size,
                                 model=config.train_model, seeds=tuple(config.seeds), extra=tuple(config.extra),
                                 multi_batch_size=config.multi_batch_size)
        report = run_study(settings, styles=config.styles, new_style=config.new_style, held_out=held_out,
                           eval_size=config.eval_size, finetune_checkpoints=config.finetune_checkpoints,
                           finetune_lr=config.finetune_lr)
        print(write_report(report, tables(report), output_dir))
        print(f"\nwritten: {output_dir / 'study.json'}, {output_dir / 'table.md'}")


if __name__ == "__main__":
    run(main)
