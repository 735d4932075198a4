"""Export a style model: safetensors (default), ONNX or TorchScript.

    python scripts/export.py ckpt=logs/train/runs/<style>/<time>/checkpoints/last.ckpt [output=out.safetensors]
    python scripts/export.py ckpt=checkpoints/starry_night.safetensors format=onnx [output=starry_night.onnx]
    python scripts/export.py ckpt=mosaic.pth format=torchscript [overwrite=true]

``ckpt``: a ``.safetensors`` style model, a Lightning ``.ckpt`` or a pytorch/examples
``.pth``/``.model`` (kind detected from the content). ``format=safetensors`` writes the
transform net's weights with metadata; ``onnx`` and ``torchscript`` write a network with
dynamic batch, height and width (float32 RGB in [0, 1], NCHW), check it against PyTorch
on two sizes (one odd) and fail if the max difference exceeds 1e-4. Without ``output``
the file goes beside the checkpoint as ``<style>.<ext>``; an existing file is never
replaced unless ``overwrite=true`` (a numbered name is used instead). Details:
``fast_style/export.py``. ONNX needs ``pip install -e ".[export]"``.
"""

from __future__ import annotations

import sys

from omegaconf import OmegaConf

from fast_style.cli import report_user_errors
from fast_style.errors import FastStyleError

USAGE = (
    "usage: python scripts/export.py ckpt=PATH [format=safetensors|onnx|torchscript] [output=PATH] "
    "[overwrite=true] [exporter=auto|dynamo|legacy] [opset=N]"
)
KEYS = {"ckpt", "output", "overwrite", "format", "exporter", "opset"}


def main(argv: list[str]) -> None:
    with report_user_errors():
        bad = [arg for arg in argv if "=" not in arg]
        if bad:
            raise FastStyleError(f"arguments are key=value, got {bad[0]!r}; {USAGE}")
        args = OmegaConf.from_dotlist(argv)
        unknown = set(args) - KEYS
        if unknown:
            raise FastStyleError(f"unknown option(s) {sorted(unknown)}; {USAGE}")
        if not args.get("ckpt"):
            raise FastStyleError(f"ckpt is required; {USAGE}")
        fmt = str(args.get("format", "safetensors"))
        overwrite = bool(args.get("overwrite", False))
        if fmt == "safetensors":
            from fast_style.io.model_files import CheckpointError, export_lightning_checkpoint
            from fast_style.io.formats import detect_format

            try:
                kind = detect_format(args.ckpt)[0]
            except CheckpointError:
                kind = "lightning"  # let the Lightning exporter report the problem, as before
            if kind == "lightning":  # keeps the training metadata as before
                path = export_lightning_checkpoint(args.ckpt, args.get("output"), overwrite=overwrite)
                print(f"style model written: {path}")
                return
        from fast_style.io.export import export_model

        opset = args.get("opset")
        result = export_model(
            args.ckpt, fmt, args.get("output"), overwrite=overwrite,
            exporter=str(args.get("exporter", "auto")), opset=int(opset) if opset is not None else None,
        )
        print(result.line() if fmt != "safetensors" else f"style model written: {result.path}")


if __name__ == "__main__":
    main(sys.argv[1:])
