"""Stylize photos: ``python stylize.py ckpt=<model> input=<file|folder|glob> [output=...]``.

A thin Hydra entry point; the work is in ``fast_style.inference.api.stylize``. Exit
status: 0 when every image was written or skipped, 1 when some failed, 2 for a user error.

``style=...`` is passed on as ``styles=...``: Hydra reads a bare ``style`` key as a choice
in train.py's config group of that name (``configs/style/``), which stylizing does not use.
"""

import sys
import time

from omegaconf import DictConfig, OmegaConf

from fast_style.cli import entry, print_summary, style_alias
from fast_style.config import StylizeConfig


@entry(config_name="stylize", schema=StylizeConfig, argv=style_alias)
def main(cfg: DictConfig) -> None:
    from fast_style.inference.api import stylize

    start = time.perf_counter()
    config = OmegaConf.to_object(cfg)
    summary = stylize(config.ckpt, config.input, options=config)
    print_summary(summary, seconds=time.perf_counter() - start)
    if summary.counts()[2]:
        sys.exit(1)


if __name__ == "__main__":
    main()
