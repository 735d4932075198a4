"""Training content: any folder tree of images, as random square crops.

``ContentImages`` lists every file under ``root`` (recursively) with an image
extension. On ``setup`` each file's header is checked once; files that are empty,
not images or unreadable are skipped with one warning each and counted. A file that
passes the header check but fails to decode later (truncated JPEG, say) is warned
about once and replaced by the next good file, so a run never dies for one file.

Each sample: decode (JPEG at a reduced draft scale when possible), apply EXIF
orientation, convert to RGB, resize so the shorter side equals ``resize`` (when set,
and always when it is shorter than the crop), random crop ``image_size`` x
``image_size``, random horizontal flip (optional). Tensors are (3, S, S) in [0, 1].
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from fast_style.errors import FastStyleError, first_line
from fast_style.io.images import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    images_below,
    open_rgb,
    pil_to_tensor,
    square_image,
)
from fast_style.training.demo import prepare_content

log = logging.getLogger(__name__)


class NoImagesError(FastStyleError):
    """A content folder without a single readable image."""


def list_images(root: str | os.PathLike) -> list[Path]:
    """Every image file under ``root`` (recursive, sorted; hidden ones left out)."""
    root = Path(root)
    if not root.exists():
        raise NoImagesError(
            f"data.root={root}: folder does not exist; point data.root at a folder of training photos "
            "(e.g. COCO train2014, see README)"
        )
    return [root] if root.is_file() else images_below(root)


def readable_header(path: Path) -> str | None:
    """None if Pillow can identify ``path`` as an image, else the reason it cannot."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        with Image.open(path) as image:
            image.size  # noqa: B018 - reading the size forces the header parse
        return None
    except Exception as exc:  # noqa: BLE001 - every failure means "skip this file"
        return first_line(exc)


def scan_images(root: str | os.PathLike) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(good files, [(bad file, reason)]) under ``root``; raises if no good file exists."""
    candidates = list_images(root)
    good, bad = [], []
    for path in candidates:
        reason = readable_header(path)
        if reason is None:
            good.append(path)
        else:
            bad.append((path, reason))
            log.warning("skipping %s: not a readable image (%s)", path, reason)
    if not good and Path(root).is_file():
        raise NoImagesError(f"data.root={root}: a file that is not a readable image ({bad[0][1]}); "
                            "point data.root at a folder of photos")
    if not good:
        found = f"{len(candidates)} image-named file(s), none readable" if candidates else "no image files"
        raise NoImagesError(
            f"data.root={root}: {found} (extensions {', '.join(IMAGE_EXTENSIONS)}); "
            "point data.root at a folder of photos"
        )
    if bad:
        log.warning("skipped %d unreadable file(s) of %d under %s", len(bad), len(candidates), root)
    return good, bad


def resize_shorter(image: Image.Image, shorter: int) -> Image.Image:
    """Resize so that the shorter side equals ``shorter``, keeping the aspect ratio."""
    w, h = image.size
    scale = shorter / min(w, h)
    size = (max(shorter, round(w * scale)), max(shorter, round(h * scale)))
    return image.resize(size, Image.Resampling.BILINEAR)


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
        w, h = image.size
        left, top = random.randint(0, w - size), random.randint(0, h - size)
        image = image.crop((left, top, left + size, top + size))
        if self.hflip and random.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return pil_to_tensor(image)

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


class ContentDataModule(pl.LightningDataModule):
    """Training crops from ``root`` plus a fixed set of ``num_samples`` sample images.

    Sample images come from ``sample_root`` if given, else from files spread evenly
    over ``root``; :meth:`sample_images` returns them as (S, 3, sample_size, sample_size).
    ``fill_with_samples`` (the offline demo) fills an empty ``root`` with photos that
    ship inside scikit-image's wheel (:func:`fast_style.training.demo.prepare_content`).
    """

    def __init__(
        self,
        *,
        root: str,
        image_size: int = 256,
        resize: int | None = 256,
        batch_size: int = 4,
        num_workers: int = 4,
        hflip: bool = False,
        pin_memory: bool | str = "auto",
        num_samples: int = 4,
        sample_size: int = 256,
        sample_root: str | None = None,
        fill_with_samples: bool = False,
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
        self.files: list[Path] = []
        self.bad_files: list[tuple[Path, str]] = []
        self._samples: torch.Tensor | None = None

    def prepare_data(self) -> None:
        """With ``fill_with_samples`` (the offline demo), copy sample photos into an empty ``root``."""
        if self.fill_with_samples:
            prepare_content(Path(self.root))

    def setup(self, stage: str | None = None) -> None:
        if self.files:
            return
        self.files, self.bad_files = scan_images(self.root)
        log.info("training images: %d under %s (%d skipped)", len(self.files), self.root, len(self.bad_files))

    def train_dataloader(self) -> DataLoader:
        dataset = ContentImages(self.files, image_size=self.image_size, resize=self.resize, hflip=self.hflip)
        pin = torch.cuda.is_available() if self.pin_memory == "auto" else bool(self.pin_memory)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=len(dataset) >= self.batch_size,
            num_workers=self.num_workers,
            pin_memory=pin,
            persistent_workers=self.num_workers > 0,
        )

    def sample_files(self) -> list[Path]:
        if self.sample_root:
            files, _ = scan_images(self.sample_root)
        else:
            self.setup()
            files = self.files
        if len(files) <= self.num_samples:
            return files
        step = len(files) / self.num_samples
        return [files[int(i * step)] for i in range(self.num_samples)]

    def sample_images(self) -> torch.Tensor:
        """Fixed sample photos, (S, 3, sample_size, sample_size), for progress images."""
        if self._samples is None:
            images = []
            for path in self.sample_files():
                try:
                    images.append(square_image(path, self.sample_size))
                except ImageReadError as exc:
                    log.warning("sample image skipped: %s", exc)
            self._samples = torch.stack(images) if images else torch.empty(0, 3, self.sample_size, self.sample_size)
        return self._samples
