"""Stylize photos: ``python stylize.py ckpt=<model> input=<file|folder|glob> [output=...]``.

A thin Hydra entry point; the work is in ``fast_style.inference.api.stylize``. Exit
status: 0 when every image was written or skipped, 1 when some failed, 2 for a user error.
"""

import sys
import time

import hydra
from omegaconf import DictConfig, OmegaConf

from fast_style.cli import print_summary, report_user_errors, run
from fast_style.config import StylizeConfig, register_schemas

register_schemas()


@hydra.main(version_base="1.3", config_path="configs", config_name="stylize")
def main(cfg: DictConfig) -> None:
    from fast_style.inference.api import stylize

    start = time.perf_counter()
    with report_user_errors():
        config = OmegaConf.to_object(cfg)
        summary = stylize(config.ckpt, config.input, options=config)
    print_summary(summary, seconds=time.perf_counter() - start)
    if summary.counts()[2]:
        sys.exit(1)


if __name__ == "__main__":
    run(main, schema=StylizeConfig)
