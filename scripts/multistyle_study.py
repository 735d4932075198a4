"""Several styles in one network against one network per style (issue #15's figures).

    python scripts/multistyle_study.py [steps=400] [size=96] [train_model=tiny] [eval_size=128]
        [batch_size=4] [multi_batch_size=null: batch_size] [seeds=[42,43,44]]
        [styles=[starry_night,the_scream,udnie,great_wave]] [new_style=shipwreck]
        [photos=../shared/data/content] [style_dir=../shared/data/styles] [output_dir=logs/multistyle_study]

Trains, with train.py in subprocesses and the same settings throughout (random VGG-16
loss network), a one-style model per style, one model of all ``styles``, a one-style
model of ``new_style`` and a fine-tune that adds ``new_style`` to the multi-style model;
then scores them on the ``held_out`` photos (never trained on). What is measured:
studies/multistyle.py. A finished run is reused when the study is run
again with the same ``output_dir``; delete the folder to start over.
"""

import os
import sys
from pathlib import Path

# The checkout is decided here, once: its root makes ``studies`` importable (also in child
# processes, through PYTHONPATH) and is passed down as an explicit option.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from fast_style.cli import report_user_errors, run  # noqa: E402
from studies.schemas import CONFIG_DIR, MultistyleStudyConfig, register_schemas  # noqa: E402

register_schemas()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="multistyle_study")
def main(cfg: DictConfig) -> None:
    from studies.multistyle import main as study

    with report_user_errors():
        config: MultistyleStudyConfig = OmegaConf.to_object(cfg)
        study(config, project=ROOT)


if __name__ == "__main__":
    run(main)
