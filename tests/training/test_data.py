import logging
from collections import Counter

import numpy as np
import pytest
import torch
from helpers import random_photo
from PIL import Image

from fast_style.io.images import ImageReadError, load_image, open_rgb
from fast_style.training.data import ContentDataModule, ContentImages, NoImagesError, scan_images


def test_scan_skips_corrupt_empty_and_non_image_files(image_folder, caplog):
    (image_folder / "empty.jpg").write_bytes(b"")
    (image_folder / "notes.png").write_text("this is text, not a picture")
    (image_folder / "readme.txt").write_text("ignored: not an image extension")
    with caplog.at_level(logging.WARNING):
        good, bad = scan_images(image_folder)
    assert len(good) == 5
    assert {p.name for p, _ in bad} == {"empty.jpg", "notes.png"}
    assert "empty.jpg" in caplog.text and "notes.png" in caplog.text and "skipped 2" in caplog.text


def test_truncated_file_is_skipped_at_load_time(image_folder, caplog):
    # a file that breaks only while decoding (it passed the header scan earlier)
    data = (image_folder / "sub" / "nested.jpg").read_bytes()
    (image_folder / "aaa_truncated.jpg").write_bytes(data[: len(data) // 3])
    dataset = ContentImages([image_folder / "aaa_truncated.jpg", image_folder / "photo_0.png"], image_size=16, resize=None)
    with caplog.at_level(logging.WARNING):
        first = dataset[0]
        dataset[0]
    assert first.shape == (3, 16, 16)
    assert caplog.text.count("aaa_truncated.jpg") == 1


def test_folder_without_images_is_a_clear_error(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(NoImagesError, match="no image files"):
        scan_images(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    with pytest.raises(NoImagesError, match="none readable"):
        scan_images(tmp_path)
    with pytest.raises(NoImagesError, match="does not exist"):
        scan_images(tmp_path / "missing")


def _modes(folder):
    rgb = random_photo(40, 30, seed=1)
    rgb.convert("L").save(folder / "grey.png")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.new("L", rgb.size, 0))
    rgba.save(folder / "transparent.png")
    rgb.convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    grey16 = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(grey16).save(folder / "grey16.png")
    return rgb


def test_every_mode_becomes_rgb(tmp_path):
    rgb = _modes(tmp_path)
    grey = np.asarray(rgb.convert("L"), dtype=np.float32)
    for name in ["grey.png", "transparent.png", "palette.png", "cmyk.jpg", "grey16.png"]:
        image = open_rgb(tmp_path / name)
        assert image.mode == "RGB" and image.size == (40, 30), name
    assert np.abs(np.asarray(open_rgb(tmp_path / "grey16.png"), np.float32)[..., 0] - grey).max() <= 1
    assert (np.asarray(open_rgb(tmp_path / "transparent.png")) == 255).all()  # fully transparent -> white


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").shape == (3, 40, 20)


def test_unreadable_file_gets_one_line_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"x.png: not a readable image \(empty file\)"):
        open_rgb(tmp_path / "x.png")


def test_small_images_are_resized_up_and_cropped(tmp_path):
    random_photo(20, 12, seed=0).save(tmp_path / "tiny.png")
    dataset = ContentImages([tmp_path / "tiny.png"], image_size=32, resize=None)
    sample = dataset[0]
    assert sample.shape == (3, 32, 32) and sample.dtype == torch.float32
    assert 0.0 <= sample.min() and sample.max() <= 1.0


def test_datamodule_batches_and_fixed_samples(image_folder, tmp_path):
    _modes(image_folder)
    dm = ContentDataModule(root=str(image_folder), image_size=24, resize=32, batch_size=3, num_workers=0,
                           num_samples=3, sample_size=20)
    dm.setup("fit")
    assert len(dm.files) == 10
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (3, 3, 24, 24)
    samples = dm.sample_images()
    assert samples.shape == (3, 3, 20, 20)
    assert torch.equal(samples, dm.sample_images())


def test_a_folder_smaller_than_the_batch_fills_every_batch(tmp_path, caplog):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for i, colour in enumerate(colours):
        Image.new("RGB", (40, 32), colour).save(tmp_path / f"plain{i}.png")
    dm = ContentDataModule(root=str(tmp_path), image_size=24, resize=32, batch_size=8, num_workers=0, index_cache=False)
    with caplog.at_level("WARNING"):
        loader = dm.train_dataloader()
    assert "3 training images for data.batch_size=8" in caplog.text
    batches = list(loader)
    assert len(batches) == 1 and batches[0].shape == (8, 3, 24, 24)
    seen = Counter(tuple(int(v) for v in (image[:, 0, 0] * 255).round()) for image in batches[0])
    assert set(seen) == set(colours)
    assert sorted(seen.values()) == [2, 3, 3]  # whole permutations first, then part of one
