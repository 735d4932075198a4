"""fast-style: feed-forward neural style transfer with perceptual losses."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fast-style")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
