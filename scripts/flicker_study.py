"""Flicker with and without the temporal term (issue #14's figure).

    python scripts/flicker_study.py [steps=900] [temporal_weights=[1e6]] [train_experiment=demo]
        [images=../shared/data/content] [num_images=null] [size=256] [frames=16] [seed=42]
        [output_dir=logs/flicker_study] [extra=[...train.py overrides...]]

Trains, with train.py in subprocesses, one model per weight in [0, *temporal_weights]
(``train_experiment``, ``steps`` and ``seed`` the same; its time limit and check off), then
scores them on held-out photos: perceptual loss (content, style, TV, total) and the
temporal warping error on clips with a known camera move. What is measured and the
goals: studies/flicker_study.py. A finished run is reused when the study
is run again with the same ``output_dir``; delete the folder to start over.
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
from studies.schemas import CONFIG_DIR, FlickerStudyConfig, register_schemas  # noqa: E402

register_schemas()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="flicker_study")
def main(cfg: DictConfig) -> None:
    from studies.flicker_study import main as study

    with report_user_errors():
        config: FlickerStudyConfig = OmegaConf.to_object(cfg)
        study(config, project=ROOT)


if __name__ == "__main__":
    run(main)
