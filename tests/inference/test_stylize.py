"""stylize: planning, folders, overwrite rules, colour, strength, odd sizes, image modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import compose, random_photo
from PIL import Image

from fast_style.errors import FastStyleError
from fast_style.inference.api import stylize
from fast_style.inference.colour import rgb_to_ycbcr
from fast_style.io.images import load_image
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import save_style_model
from fast_style.nn.transformer import TransformerNet


@pytest.fixture
def model_path(tmp_path):
    torch.manual_seed(0)
    return save_style_model(TransformerNet(width=8, num_residual=1), tmp_path / "m.safetensors",
                            metadata=StyleModelMetadata(style_name="wave"))


def cfg(**overrides):
    return {"progress": False, "device": "cpu", "precision": "fp32", **overrides}


def run(config):
    config = dict(config)
    return stylize(config.pop("ckpt"), config.pop("input"), **config)


@pytest.mark.parametrize("size", [(33, 47), (64, 50), (41, 41)])
def test_output_keeps_odd_sizes(tmp_path, model_path, size):
    random_photo(*size, seed=1).save(tmp_path / "p.png")
    summary = run(cfg(ckpt=str(model_path), input=str(tmp_path / "p.png")))
    assert len(summary.done) == 1
    assert Image.open(tmp_path / "p_wave.png").size == size


def test_folder_with_corrupt_file(tmp_path, image_folder, model_path):
    (image_folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    summary = run(cfg(ckpt=str(model_path), input=str(image_folder), output=str(out)))
    assert len(summary.done) == 5 and [p.name for p, _ in summary.failed] == ["broken.jpg"]
    assert (out / "sub" / "nested.jpg").is_file() and (out / "photo_3.png").is_file()
    assert not (out / "broken.jpg").exists()


def test_glob_input_and_size(tmp_path, image_folder, model_path):
    out = tmp_path / "g"
    summary = run(cfg(ckpt=str(model_path), input=str(image_folder / "**" / "*.jpg"), output=str(out), size=32))
    assert len(summary.done) == 1
    assert max(Image.open(out / "sub" / "nested.jpg").size) == 32


def test_no_overwrite_without_flag(tmp_path, image_folder, model_path):
    target = image_folder / "photo_0_wave.png"
    target.write_bytes(b"keep me")
    summary = run(cfg(ckpt=str(model_path), input=str(image_folder)))
    assert target.read_bytes() == b"keep me"
    assert [p.name for p, _ in summary.skipped] == ["photo_0.png"] and len(summary.done) == 4
    single = cfg(ckpt=str(model_path), input=str(image_folder / "photo_0.png"))
    with pytest.raises(FastStyleError, match="overwrite=true"):
        run(single)
    # the command line's spellings of no (overwrite=no, =false, =0) are the same refusal
    for word in ("no", "false", "0"):
        line = compose("stylize", [f"ckpt={model_path}", f"input={single['input']}", f"overwrite={word}"])
        with pytest.raises(FastStyleError, match="photo_0_wave.png exists.*overwrite=true"):
            run(cfg(ckpt=line.ckpt, input=line.input, overwrite=line.overwrite))
    assert target.read_bytes() == b"keep me"
    single["overwrite"] = True
    run(single)
    assert Image.open(target).size == (48, 40)


def test_never_writes_over_input(tmp_path, model_path):
    photo = tmp_path / "p.png"
    random_photo(40, 40, seed=2).save(photo)
    before = photo.read_bytes()
    with pytest.raises(FastStyleError, match="refusing to write over"):
        run(cfg(ckpt=str(model_path), input=str(photo), output=str(photo), overwrite=True))
    assert photo.read_bytes() == before


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"input": "missing.png"}, "no such file or folder"),
        ({"input": "empty_dir"}, "contains no images"),
        ({"output": "nowhere/out.png"}, "does not exist"),
        ({"ckpt": "none.safetensors"}, "no such checkpoint"),
        ({"size": 10, "scale": 0.5}, "choose one"),
    ],
)
def test_user_errors(tmp_path, model_path, monkeypatch, overrides, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty_dir").mkdir()
    random_photo(32, 32, seed=0).save(tmp_path / "p.png")
    with pytest.raises(FastStyleError, match=message):
        run(cfg(**{"ckpt": str(model_path), "input": "p.png", **overrides}))


def test_preserve_color_keeps_chroma(tmp_path, model_path):
    random_photo(64, 48, seed=4).save(tmp_path / "p.png")
    run(cfg(ckpt=str(model_path), input=str(tmp_path / "p.png"), output=str(tmp_path / "c.png"), preserve_color=True))
    run(cfg(ckpt=str(model_path), input=str(tmp_path / "p.png"), output=str(tmp_path / "s.png")))
    rgb = load_image(tmp_path / "c.png")
    inside = ((rgb > 3 / 255) & (rgb < 252 / 255)).all(dim=0)  # where clamping did not bite
    assert inside.float().mean() > 0.1
    photo, kept, plain = (rgb_to_ycbcr(load_image(tmp_path / n))[:, inside] for n in ("p.png", "c.png", "s.png"))
    assert (kept[1:] - photo[1:]).abs().max() < 4 / 255  # chroma from the photo
    assert (plain[1:] - photo[1:]).abs().mean() > 0.05  # ... which plain stylizing changes
    assert (kept[0] - plain[0]).abs().max() < 4 / 255  # luma from the stylized image


def test_strength_zero_returns_photo(tmp_path, model_path):
    random_photo(50, 38, seed=5).save(tmp_path / "p.png")
    run(cfg(ckpt=str(model_path), input=str(tmp_path / "p.png"), strength=0.0))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p_wave.png")), np.asarray(Image.open(tmp_path / "p.png")))
    run(cfg(ckpt=str(model_path), input=str(tmp_path / "p.png"), strength=0.5, output=str(tmp_path / "h.png")))
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "h.png")), np.asarray(Image.open(tmp_path / "p.png")))


def test_batched_equals_single(tmp_path, model_path):
    for i in range(3):
        random_photo(40, 32, seed=i).save(tmp_path / f"{i}.png")
    run(cfg(ckpt=str(model_path), input=str(tmp_path), output=str(tmp_path / "a"), batch_size=1))
    run(cfg(ckpt=str(model_path), input=str(tmp_path / "*.png"), output=str(tmp_path / "b"), batch_size=2))
    for i in range(3):
        a, b = (np.asarray(Image.open(tmp_path / d / f"{i}.png"), dtype=int) for d in "ab")
        assert np.abs(a - b).max() <= 1


def test_tiled_run_matches_untiled(tmp_path, model_path):
    random_photo(90, 70, seed=6).save(tmp_path / "p.png")
    run(cfg(ckpt=str(model_path), input=str(tmp_path / "p.png"), output=str(tmp_path / "u.png")))
    run(cfg(ckpt=str(model_path), input=str(tmp_path / "p.png"), output=str(tmp_path / "t.png"), pixel_budget=1000, tile_size=40))
    u, t = (np.asarray(Image.open(tmp_path / n), dtype=int) for n in ("u.png", "t.png"))
    assert np.abs(u - t).max() <= 1


def _modes(folder):
    rgb = random_photo(40, 30, seed=7)
    rgb.convert("L").save(folder / "grey.png")
    rgb.convert("P").save(folder / "palette.png")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    grey16 = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(grey16).save(folder / "deep.png")
    rgba = rgb.copy()
    rgba.putalpha(Image.linear_gradient("L").resize((40, 30)))
    rgba.save(folder / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    rgb.save(folder / "rotated.jpg", exif=exif)


def test_image_modes(tmp_path, model_path):
    src = tmp_path / "modes"
    src.mkdir()
    _modes(src)
    out = tmp_path / "out"
    summary = run(cfg(ckpt=str(model_path), input=str(src), output=str(out)))
    assert not summary.failed and len(summary.done) == 6
    for name in ("grey.png", "palette.png", "cmyk.jpg", "deep.png"):
        image = Image.open(out / name)
        assert image.mode == "RGB" and image.size == (40, 30)
    assert Image.open(out / "rotated.jpg").size == (30, 40)
    alpha = Image.open(out / "alpha.png")
    assert alpha.mode == "RGBA"
    assert np.array_equal(np.asarray(alpha.getchannel("A")), np.asarray(Image.open(src / "alpha.png").getchannel("A")))
    run(cfg(ckpt=str(model_path), input=str(src / "alpha.png"), output=str(tmp_path / "flat.jpg")))
    assert Image.open(tmp_path / "flat.jpg").mode == "RGB"  # JPEG has no alpha: dropped


def test_png_compression_changes_the_file_size_and_never_the_pixels(tmp_path, model_path):
    from fast_style.inference.options import StylizeOptions
    from fast_style.io.images import PNG_COMPRESSION

    assert StylizeOptions().png_compression == PNG_COMPRESSION == 1
    random_photo(96, 80, seed=5).save(tmp_path / "a.png")
    written = {level: stylize(model_path, tmp_path / "a.png", output=str(tmp_path / f"out_{level}.png"),
                              png_compression=level, **cfg()).done[0] for level in (0, 1, 9)}
    pixels = {level: np.asarray(Image.open(path)) for level, path in written.items()}
    assert np.array_equal(pixels[0], pixels[1]) and np.array_equal(pixels[1], pixels[9])
    sizes = {level: path.stat().st_size for level, path in written.items()}
    assert sizes[0] > sizes[1] > sizes[9], sizes  # level 0 stores, 9 packs hardest
