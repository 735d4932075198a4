"""fast-style: feed-forward neural style transfer with perceptual losses.

The Python API (imported on first use, so ``import fast_style`` stays cheap):

- :func:`open_model` -- any model file (style model, Lightning ``.ckpt``, pytorch/examples
  ``.pth``, ONNX, TorchScript, ExecuTorch) as a :class:`~fast_style.io.model_files.StyleModel`;
- :func:`stylize` -- photos, folders and globs to files, as ``python stylize.py`` does;
- :func:`stylize_images` -- tensors or files in, stylized tensors out.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fast-style")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

_API = {
    "open_model": "fast_style.io.model_files",
    "StyleModel": "fast_style.io.model_files",
    "StyleModelMetadata": "fast_style.io.metadata",
    "stylize": "fast_style.inference.api",
    "stylize_images": "fast_style.inference.api",
    "StylizeOptions": "fast_style.inference.options",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'fast_style' has no attribute {name!r}")
