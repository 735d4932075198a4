"""Train a style model: ``python train.py style=starry_night [overrides...]``.

A thin Hydra entry point; the work is in ``fast_style.training.train.train``.
"""

import hydra
from omegaconf import DictConfig

from fast_style.cli import report_user_errors
from fast_style.config import register_schemas

register_schemas()


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    from fast_style.training.train import train

    with report_user_errors():
        train(cfg)


if __name__ == "__main__":
    main()
