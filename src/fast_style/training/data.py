"""Training content: any folder tree of images, or its prepared shards, as random square crops.

Folder: every file under ``root`` (recursively) with an image extension. On ``setup``
each file's header is checked once (cached between runs, see
:mod:`fast_style.training.index`); files that are empty, not images or unreadable are
skipped with one warning each and counted. A file that passes the header check but
fails to decode later (truncated JPEG, say) is warned about once and replaced by the
next good file, so a run never dies for one file.

Each sample: decode (JPEG at a reduced draft scale when possible), apply EXIF
orientation, convert to RGB, resize so the shorter side equals ``resize`` (when set,
and always when it is shorter than the crop), random crop ``image_size`` x
``image_size``, random horizontal flip (optional). Tensors are (3, S, S) in [0, 1].

Shards (:mod:`fast_style.training.shards`, made by ``scripts/prepare_data.py`` or
``cache=true``) hold the photos already decoded and resized; a sample from them is
the same random crop and flip (:mod:`fast_style.training.crops`). ``shards``:

- ``auto`` (default): ``<root>/.fast-style-shards/resize-<resize>/`` when a complete
  set is there; with ``cache=true`` it is prepared there first when missing. Sets
  made for another resize are not used (a warning says so).
- a path: that shard set, which must have been made with this ``resize``.
- ``false`` / null: always the folder.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset

from fast_style.io.images import ImageReadError, open_rgb, pil_to_tensor, square_image
from fast_style.training.crops import crop_and_flip, resize_shorter
from fast_style.training.demo import prepare_content
from fast_style.training.index import NoImagesError, readable_header, scan_images
from fast_style.training.options import data_default
from fast_style.training.shards import (
    MANIFEST,
    SHARDS_DIR,
    ShardError,
    ShardSet,
    ShardSettings,
    default_folder,
)

__all__ = ["ContentDataModule", "ContentImages", "NoImagesError", "ShardImages", "readable_header", "resize_shorter",
           "scan_images"]

log = logging.getLogger(__name__)


class ContentImages(Dataset):
    """Random ``image_size`` crops of the given files; see the module docstring."""

    def __init__(self, files: list[Path], *, image_size: int, resize: int | None, hflip: bool = False):
        self.files = list(files)
        self.image_size = image_size
        self.resize = resize
        self.hflip = hflip
        self._warned: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def load(self, path: Path) -> torch.Tensor:
        size = self.image_size
        target = max(size, self.resize or 0)
        image = open_rgb(path, draft_size=(target, target))
        if self.resize or min(image.size) < size:
            image = resize_shorter(image, target)
        return crop_and_flip(np.asarray(image, dtype=np.uint8), size=size, hflip=self.hflip)

    def __getitem__(self, index: int) -> torch.Tensor:
        for attempt in range(len(self.files)):
            path = self.files[(index + attempt) % len(self.files)]
            try:
                return self.load(path)
            except ImageReadError as exc:
                if path not in self._warned:
                    self._warned.add(path)
                    log.warning("skipping %s", exc)
        raise NoImagesError("no training image could be decoded")


class ShardImages(Dataset):
    """Random ``image_size`` crops of a prepared :class:`~fast_style.training.shards.ShardSet`:
    the same crop and flip as :class:`ContentImages`, without decoding or resizing
    (images whose shorter side is below the crop are resized up first)."""

    def __init__(self, shards: ShardSet, *, image_size: int, hflip: bool = False):
        self.shards = shards
        self.image_size = image_size
        self.hflip = hflip

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, index: int) -> torch.Tensor:
        array = self.shards.image(index)
        if min(array.shape[:2]) < self.image_size:
            array = np.asarray(resize_shorter(Image.fromarray(array), self.image_size))
        return crop_and_flip(array, size=self.image_size, hflip=self.hflip)


def _off(value: object) -> bool:
    return value is None or value is False or str(value).lower() in ("false", "none", "null", "off", "no", "")


def _local_rank() -> int:
    """This process's rank on its node as a launcher set it (0 when nothing did)."""
    for name in ("LOCAL_RANK", "SLURM_LOCALID"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


class Repeated(Dataset):
    """``dataset`` ``times`` over: item i is ``dataset[i % len(dataset)]``."""

    def __init__(self, dataset: Dataset, *, times: int):
        self.dataset, self.times = dataset, times

    def __len__(self) -> int:
        return len(self.dataset) * self.times

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.dataset[index % len(self.dataset)]


class ContentDataModule(pl.LightningDataModule):
    """Training crops from ``root`` plus a fixed set of ``num_samples`` sample images.

    Sample images come from ``sample_root`` if given, else from files (or shard images)
    spread evenly over ``root``; :meth:`sample_images` returns them as
    (S, 3, sample_size, sample_size). ``shards`` and ``cache``: see the module docstring;
    ``index_cache``: cache the folder's header scan (:mod:`fast_style.training.index`).
    ``fill_with_samples`` (the offline demo) fills an empty ``root`` with photos that
    ship inside scikit-image's wheel (:func:`fast_style.training.demo.prepare_content`).
    Every keyword's default is :class:`fast_style.training.options.DataOptions`' (train.py's
    ``data`` group), the one place they are written.
    """

    def __init__(
        self,
        *,
        root: str,
        image_size: int = data_default("image_size"),
        resize: int | None = data_default("resize"),
        batch_size: int = data_default("batch_size"),
        num_workers: int = data_default("num_workers"),
        hflip: bool = data_default("hflip"),
        pin_memory: bool | str = data_default("pin_memory"),
        num_samples: int = data_default("num_samples"),
        sample_size: int = data_default("sample_size"),
        sample_root: str | None = data_default("sample_root"),
        fill_with_samples: bool = data_default("fill_with_samples"),
        shards: str | bool | None = data_default("shards"),
        cache: bool = data_default("cache"),
        index_cache: bool = data_default("index_cache"),
    ):
        super().__init__()
        self.root = root
        self.image_size = image_size
        self.resize = resize
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.hflip = hflip
        self.pin_memory = pin_memory
        self.num_samples = num_samples
        self.sample_size = sample_size
        self.sample_root = sample_root
        self.fill_with_samples = fill_with_samples
        self.shards = shards
        self.cache = cache
        self.index_cache = index_cache
        self.shard_set: ShardSet | None = None
        self.files: list[Path] = []
        self.bad_files: list[tuple[Path, str]] = []
        self._samples: torch.Tensor | None = None

    def prepare_data(self) -> None:
        """With ``fill_with_samples`` (the offline demo), copy sample photos into an empty ``root``;
        with ``cache`` and ``shards=auto``, prepare the shards once (local rank 0; other
        ranks wait for its manifest)."""
        if self.fill_with_samples:
            prepare_content(Path(self.root))
        if not self.cache or str(self.shards) != "auto":
            return
        folder = default_folder(self.root, self.resize)
        if (folder / MANIFEST).is_file():
            return
        if _local_rank() == 0:
            from fast_style.training.prepare import prepare_shards

            prepare_shards(root=self.root, settings=ShardSettings(resize=self.resize), output=folder)
            return
        log.info("waiting for local rank 0 to prepare the shards in %s", folder)
        while not (folder / MANIFEST).is_file():
            time.sleep(2.0)

    def shard_folder(self) -> Path | None:
        """The shard set this run reads, or None for the folder (see the module docstring)."""
        if _off(self.shards):
            return None
        if str(self.shards) == "auto":
            folder = default_folder(self.root, self.resize)
            if (folder / MANIFEST).is_file():
                return folder
            if folder.is_dir():
                log.warning("%s holds an unfinished shard set; training from the folder (run "
                            "python scripts/prepare_data.py data.root=%s to finish it)", folder, self.root)
            others = sorted(p.parent.name for p in (Path(self.root) / SHARDS_DIR).glob(f"*/{MANIFEST}"))
            if others:
                log.warning("shards for another data.resize (%s) in %s are not used with data.resize=%s; "
                            "training from the folder", ", ".join(others), Path(self.root) / SHARDS_DIR, self.resize)
            return None
        folder = Path(str(self.shards))
        if not (folder / MANIFEST).is_file():
            raise ShardError(f"data.shards={folder}: no complete shard set there ({MANIFEST} missing); run "
                             f"python scripts/prepare_data.py data.root={self.root} output={folder} "
                             "(it resumes an interrupted run), or use data.shards=auto")
        return folder

    def open_shards(self, folder: Path) -> ShardSet:
        """The shard set in ``folder``, refused when it was made for another ``resize``."""
        shard_set = ShardSet(folder)
        made = shard_set.settings
        if made.resize != self.resize:
            raise ShardError(
                f"shards in {folder} were made with data.resize={made.resize}, but this run has "
                f"data.resize={self.resize}; prepare a matching set (python scripts/prepare_data.py "
                f"data.root={self.root} data.resize={self.resize}) or set data.resize={made.resize}")
        if made.resize is None:
            log.info("shards: data.resize=null, so photos were stored at their own size with the shorter side "
                     "capped at %d px", made.cap)
        return shard_set

    def setup(self, stage: str | None = None) -> None:
        if self.files or self.shard_set is not None:
            return
        folder = self.shard_folder()
        if folder is not None:
            self.shard_set = self.open_shards(folder)
            log.info("training images: %d from shards in %s (%s; %d skipped when prepared)", len(self.shard_set),
                     folder, self.shard_set.settings.describe(), self.shard_set.manifest["num_skipped"])
            return
        self.files, self.bad_files = scan_images(self.root, cache=self.index_cache)
        log.info("training images: %d under %s (%d skipped)", len(self.files), self.root, len(self.bad_files))

    def train_dataset(self) -> Dataset:
        """The map-style dataset of training crops (shards when found, else the folder)."""
        self.setup()
        if self.shard_set is not None:
            return ShardImages(self.shard_set, image_size=self.image_size, hflip=self.hflip)
        return ContentImages(self.files, image_size=self.image_size, resize=self.resize, hflip=self.hflip)

    def train_dataloader(self) -> DataLoader:
        """Shuffled full batches. A set smaller than one step's images (``batch_size`` on
        each of the world's ranks) is repeated (:class:`Repeated`, each draw its own random
        crop and flip) so that every step has ``batch_size`` images per rank: a
        multi-style run's schedule, and runs compared at the same batch, stay true on a
        small folder."""
        dataset = self.train_dataset()
        pin = torch.cuda.is_available() if self.pin_memory == "auto" else bool(self.pin_memory)
        world = self.trainer.world_size if self.trainer is not None else 1
        wanted = self.batch_size * world
        if len(dataset) < wanted:
            log.warning("%d training images for data.batch_size=%d%s: each batch draws some of them twice or more "
                        "(each time a new random crop)", len(dataset), self.batch_size,
                        f" on {world} ranks" if world > 1 else "")
            dataset = Repeated(dataset, times=-(-wanted // len(dataset)))
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=self.num_workers,
            pin_memory=pin,
            persistent_workers=self.num_workers > 0,
        )

    def sample_files(self) -> list[Path]:
        if self.sample_root:
            files, _ = scan_images(self.sample_root, cache=self.index_cache)
        else:
            self.setup()
            files = self.files
        return _spread(files, self.num_samples)

    def sample_images(self) -> torch.Tensor:
        """Fixed sample photos, (S, 3, sample_size, sample_size), for progress images."""
        if self._samples is None:
            images = []
            self.setup()
            if self.shard_set is not None and not self.sample_root:
                for index in _spread(range(len(self.shard_set)), self.num_samples):
                    square = ImageOps.fit(Image.fromarray(np.asarray(self.shard_set.image(index))),
                                          (self.sample_size, self.sample_size), method=Image.Resampling.LANCZOS)
                    images.append(pil_to_tensor(square))
            for path in self.sample_files() if not images else []:
                try:
                    images.append(square_image(path, self.sample_size))
                except ImageReadError as exc:
                    log.warning("sample image skipped: %s", exc)
            self._samples = torch.stack(images) if images else torch.empty(0, 3, self.sample_size, self.sample_size)
        return self._samples


def _spread(items, count: int) -> list:
    """``count`` items spread evenly over ``items`` (all of them if there are no more)."""
    items = list(items)
    if len(items) <= count:
        return items
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]
