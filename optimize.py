"""Stylize one photo by optimising its pixels (Gatys et al.):
``python optimize.py style=<name> content=photo.jpg [output=...] [loss=gatys]``.

A thin Hydra entry point; the work is in ``fast_style.evaluation.optimize.optimize``.
"""

import hydra
from omegaconf import DictConfig

from fast_style.cli import report_user_errors, run
from fast_style.config import register_schemas

register_schemas()


@hydra.main(version_base="1.3", config_path="configs", config_name="optimize")
def main(cfg: DictConfig) -> None:
    from fast_style.evaluation.optimize import optimize

    with report_user_errors():
        optimize(cfg)


if __name__ == "__main__":
    run(main)
