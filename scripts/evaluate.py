"""How good is a style model? Its losses and speed against pixel optimisation.

    python scripts/evaluate.py ckpt=checkpoints/<style>.safetensors images=<folder of photos>
        [num_images=4] [size=256] [iterations=[50,100,300]] [style=<name> | style=custom style.image=PATH]
        [styles=<name or index>]   # a multi-style model: which of its styles

For each photo: content, style, TV and total loss of the feed-forward output and of
L-BFGS after each iteration count (started from the photo), under the loss the model
was trained with; wall times measured in the same run. Prints a table, writes
evaluation.json, table.md and grid.png (see fast_style/evaluation/evaluate.py; every option and its
default: fast_style.config.EvaluateConfig).
"""

from omegaconf import DictConfig

from fast_style.cli import config_dir_beside, entry
from fast_style.config import EvaluateConfig


@entry(config_name="evaluate", schema=EvaluateConfig)
def main(cfg: DictConfig) -> None:
    from fast_style.evaluation.evaluate import evaluate

    evaluate(cfg, config_dir=config_dir_beside(__file__))


if __name__ == "__main__":
    main()
