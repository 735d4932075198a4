"""Stylize one photo by optimising its pixels (Gatys et al.):
``python optimize.py style=<name> content=photo.jpg [output=...] [loss=gatys]``.

A thin Hydra entry point; the work is in ``fast_style.evaluation.optimize.optimize``.
"""

from omegaconf import DictConfig

from fast_style.cli import entry
from fast_style.config import OptimizeConfig


@entry(config_name="optimize", schema=OptimizeConfig)
def main(cfg: DictConfig) -> None:
    from fast_style.evaluation.optimize import optimize

    optimize(cfg)


if __name__ == "__main__":
    main()
