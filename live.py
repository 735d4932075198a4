"""Stylize frames as they come: ``python live.py ckpt=<model> source=<camera index | video file | stream URL>``.

A thin Hydra entry point; the work is in ``fast_style.inference.live.run_live`` (docs/stylizing.md,
"Live: camera, clip or stream"). Frames go to a window where there is a display, else to
``output=<file.mp4>``, ``output=<folder>/`` (an image sequence) or ``output=discard``. Exit status:
0 at the end of the source or a limit (``max_frames``, ``duration``, the window closed), 1 when the
source stalled or failed midway (what was written is kept, complete), 2 for a user error (a model,
source or output that cannot be used; a source that sends nothing), 130 Ctrl-C, 143 SIGTERM (the
output finalised first). ``style=`` is passed on as ``styles=``, as in stylize.py.
"""

import sys

from omegaconf import DictConfig, OmegaConf

from fast_style.cli import entry, style_alias
from fast_style.config import LiveConfig


@entry(config_name="live", schema=LiveConfig, argv=style_alias)
def main(cfg: DictConfig) -> None:
    from fast_style.inference.live import run_live

    config = OmegaConf.to_object(cfg)
    summary = run_live(config.ckpt, config.source, options=config)
    print(summary.line(), flush=True)
    if summary.failed():
        print(f"error: {summary.why}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
