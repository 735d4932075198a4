"""How good is a style model? Its losses and speed against pixel optimisation.

    python scripts/evaluate.py ckpt=checkpoints/<style>.safetensors images=<folder of photos>
        [num_images=4] [size=256] [iterations=[50,100,300]] [style=<name> | style=custom style.image=PATH]
        [styles=<name or index>]   # a multi-style model: which of its styles

For each photo: content, style, TV and total loss of the feed-forward output and of
L-BFGS after each iteration count (started from the photo), under the loss the model
was trained with; wall times measured in the same run. Prints a table, writes
evaluation.json, table.md and grid.png (see fast_style/evaluate.py and configs/evaluate.yaml).
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from fast_style.cli import report_user_errors, run

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from fast_style.evaluation.evaluate import evaluate

    with report_user_errors():
        evaluate(cfg, config_dir=CONFIG_DIR)


if __name__ == "__main__":
    run(main)
