"""Stylize photos: ``python stylize.py ckpt=<model> input=<file|folder|glob> [output=...]``.

A thin Hydra entry point; the work is in ``fast_style.inference.pipeline.stylize``. Exit status:
0 when every image was written or skipped, 1 when some failed, 2 for a user error.
"""

import sys

import hydra
from omegaconf import DictConfig

from fast_style.cli import report_user_errors


@hydra.main(version_base="1.3", config_path="configs", config_name="stylize")
def main(cfg: DictConfig) -> None:
    from fast_style.inference.pipeline import stylize

    with report_user_errors():
        summary = stylize(cfg)
    if summary.counts()[2]:
        sys.exit(1)


if __name__ == "__main__":
    main()
