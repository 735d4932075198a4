"""Export a style model from a training checkpoint.

    python scripts/export.py ckpt=logs/train/runs/<style>/<time>/checkpoints/last.ckpt [output=out.safetensors] [overwrite=true]

Writes the transform net of any Lightning ``.ckpt`` as a ``.safetensors`` style model
(weights only, with metadata; see fast_style/checkpoint.py). Without ``output`` the
file goes beside the checkpoint as ``<style>.safetensors``; an existing file is never
replaced unless ``overwrite=true``.
"""

from __future__ import annotations

import sys

from omegaconf import OmegaConf

from fast_style.checkpoint import export_lightning_checkpoint
from fast_style.cli import report_user_errors
from fast_style.errors import FastStyleError

USAGE = "usage: python scripts/export.py ckpt=PATH.ckpt [output=PATH.safetensors] [overwrite=true]"


def main(argv: list[str]) -> None:
    with report_user_errors():
        bad = [arg for arg in argv if "=" not in arg]
        if bad:
            raise FastStyleError(f"arguments are key=value, got {bad[0]!r}; {USAGE}")
        args = OmegaConf.from_dotlist(argv)
        unknown = set(args) - {"ckpt", "output", "overwrite", "format"}
        if unknown:
            raise FastStyleError(f"unknown option(s) {sorted(unknown)}; {USAGE}")
        if not args.get("ckpt"):
            raise FastStyleError(f"ckpt is required; {USAGE}")
        fmt = str(args.get("format", "safetensors"))
        if fmt != "safetensors":
            raise FastStyleError(f"format={fmt}: only safetensors is supported so far")
        path = export_lightning_checkpoint(args.ckpt, args.get("output"), overwrite=bool(args.get("overwrite", False)))
        print(f"style model written: {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
