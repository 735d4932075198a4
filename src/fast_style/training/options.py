"""The options of the training data and of data preparation: the one place of their defaults.

Plain dataclasses (no torch, no Lightning), so that the command-line schemas of
:mod:`fast_style.config` can hold them without importing the training stack:
:class:`DataOptions` is train.py's ``data`` group (``configs/data/*.yaml`` are presets
that only set what differs, such as ``root``) and the keyword arguments of
:class:`fast_style.training.data.ContentDataModule`, whose defaults are read from here;
:class:`PrepareDataConfig` is ``scripts/prepare_data.py``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import MISSING

DATA_MODULE = "fast_style.training.data.ContentDataModule"


@dataclass
class DataOptions:
    """train.py's ``data`` group: the training photos and how they are cut.

    ``root``: any folder tree of images (the paper: COCO 2014 train, ~83k images);
    ``image_size``: random crops of image_size x image_size, after resizing the shorter side
    to ``resize`` (null: keep the resolution; images smaller than the crop are always resized
    up); ``batch_size`` per device; ``num_workers`` loader processes; ``hflip``: random
    horizontal flips; ``pin_memory``: true, false or auto (on CUDA); ``num_samples`` fixed
    photos of ``sample_size`` px stylized for the progress images (from ``root`` unless
    ``sample_root``); ``shards``: prepared shards (``scripts/prepare_data.py``): auto
    (``<root>/.fast-style-shards/resize-<resize>/`` when complete there), a path (that set)
    or false (the folder); ``cache``: prepare them there on the first start when missing;
    ``index_cache``: keep the folder's header scan in the user cache folder (true), in
    ``<root>/.fast-style-index.json`` (root) or not at all (false);
    ``fill_with_samples``: copy scikit-image's sample photos into an empty ``root`` (the demo).
    """

    _target_: str = DATA_MODULE
    root: str = MISSING
    image_size: int = 256
    resize: int | None = 256
    batch_size: int = 4
    num_workers: int = 4
    hflip: bool = False
    pin_memory: Any = "auto"
    num_samples: int = 4
    sample_size: int = 256
    sample_root: str | None = None
    shards: Any = "auto"
    cache: bool = False
    index_cache: Any = True
    fill_with_samples: bool = False


def data_default(name: str) -> Any:
    """The default of :class:`DataOptions` field ``name``."""
    return next(f.default for f in fields(DataOptions) if f.name == name)


@dataclass
class PrepareDataConfig:
    """``python scripts/prepare_data.py``: every option and its default.

    ``data``: the data group of train.py (``data.root``, ``data.resize`` are read);
    ``output``: the shard folder (None: ``<data.root>/.fast-style-shards/resize-<R>``,
    where training finds it by itself); ``format``: raw (memmapped uint8 arrays, the
    fastest to read) or jpeg (``quality``; about a fifth of the disk); ``cap``: the
    largest shorter side kept when ``data.resize`` is null; ``shard_size``: images per
    shard (the unit of resuming); ``workers``: processes (None: every CPU core);
    ``overwrite``: rebuild a set made with other settings (or to take in a changed folder).
    """

    task_name: str = "prepare_data"
    output: str | None = None
    format: str = "raw"
    quality: int = 95
    cap: int = 512
    shard_size: int = 1024
    workers: int | None = None
    overwrite: bool = False
    progress: bool = True
    data: DataOptions = field(default_factory=DataOptions)
    paths: Any = MISSING
