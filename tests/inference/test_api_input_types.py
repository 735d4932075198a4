"""The Python API given the wrong kind of thing: a TypeError or ValueError that says what to
pass, never a traceback from deep inside torch; the obviously right conversions are made
(issue 33 item 6: "the Python API with wrong types")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import random_photo
from PIL import Image

import fast_style
from fast_style.errors import FastStyleError
from fast_style.io.images import pil_to_tensor, to_rgb
from fast_style.io.model_files import open_model

FAST = {"runtime": "torch", "precision": "fp32"}  # no ONNX export, no calibration: milliseconds a call


@pytest.fixture(scope="module")
def model(model_file):
    return open_model(model_file)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return random_photo(40, 30, seed=1)


def _run(model, image, **options) -> torch.Tensor:
    (out,) = fast_style.stylize_images(model, [image], **{**FAST, **options})
    return out


def _refused(kind: type[Exception], model, image, *needles: str, **options) -> str:
    with pytest.raises(kind) as info:
        _run(model, image, **options)
    message = str(info.value)
    assert isinstance(info.value, FastStyleError) and "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.mark.parametrize("mode", ["P", "LA", "L", "I;16", "CMYK", "RGBA", "F", "1", "YCbCr"])
def test_a_pil_image_of_any_mode_is_stylized_as_its_file_would_be(model, photo, mode):
    image = photo.convert(mode) if mode != "I;16" else Image.fromarray(np.asarray(photo.convert("L"), np.uint16) * 257)
    expected = _run(model, pil_to_tensor(to_rgb(image)))
    assert torch.equal(_run(model, image), expected)
    assert tuple(expected.shape) == (3, 30, 40)


def test_rgba_composites_over_white_like_a_file(model, photo, tmp_path):
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    rgba.save(tmp_path / "a.png")
    assert torch.equal(_run(model, rgba), _run(model, tmp_path / "a.png"))


def test_arrays_and_tensors_of_the_usual_kinds_are_converted(model, photo):
    expected = _run(model, pil_to_tensor(photo))
    hwc = np.array(photo)
    for image in (hwc, hwc.astype(np.float32) / 255, torch.from_numpy(hwc).permute(2, 0, 1),
                  pil_to_tensor(photo).unsqueeze(0), pil_to_tensor(photo).double(),
                  pil_to_tensor(photo).requires_grad_()):
        assert (_run(model, image) - expected).abs().max() <= 1e-5
    grey = np.asarray(photo.convert("L"))
    assert torch.equal(_run(model, grey), _run(model, photo.convert("L")))
    grey_tensor = pil_to_tensor(photo.convert("RGB").convert("L").convert("RGB"))[:1]
    assert torch.equal(_run(model, grey_tensor), _run(model, grey_tensor.expand(3, -1, -1)))


@pytest.mark.parametrize("value, needle", [
    (5, "images[0] is of type int"),
    (1.5, "images[0] is of type float"),
    (None, "images[0] is of type NoneType"),
    (b"photo.jpg", "images[0] is of type bytes"),
    (torch.zeros(3, 30, 40, dtype=torch.int64), "torch.int64"),
    (torch.zeros(3, 30, 40, dtype=torch.bool), "torch.bool"),
    (torch.zeros(3, 30, 40, dtype=torch.complex64), "torch.complex64"),
    (np.zeros((30, 40, 3), bool), "bool"),
    (np.zeros((30, 40, 3), np.int64), "int64"),
    (np.array([None, None]), "object"),
])
def test_the_wrong_type_is_a_type_error_that_says_what_to_pass(model, value, needle):
    message = _refused(TypeError, model, value, needle)
    assert "(3, H, W)" in message, message


@pytest.mark.parametrize("value, needle", [
    (torch.zeros(30, 40), "shape (30, 40)"),
    (torch.zeros(30, 40, 3), "shape (30, 40, 3)"),
    (torch.zeros(4, 30, 40), "shape (4, 30, 40)"),
    (torch.zeros(2, 3, 30, 40), "a batch of 2"),
    (torch.zeros(3, 0, 40), "no pixels"),
    (torch.tensor(1.0), "shape ()"),
    (torch.full((3, 30, 40), 200.0), "values up to 200"),
    (torch.full((3, 30, 40), -0.5), "values down to -0.5"),
    (torch.full((3, 30, 40), float("nan")), "NaN or infinite"),
    (np.zeros((3, 30, 40), np.uint8), "channels first"),
    (np.zeros((30, 40, 5), np.uint8), "shape (30, 40, 5)"),
    (np.zeros((2, 30, 40, 3), np.float32), "shape (2, 30, 40, 3)"),
    (np.full((30, 40, 3), 2.0), "values up to 2"),
])
def test_the_wrong_shape_or_range_is_a_value_error_that_names_it(model, value, needle):
    _refused(ValueError, model, value, "images[0]", needle)


def test_a_huge_in_memory_image_is_refused_by_max_pixels_before_any_copy(model, monkeypatch):
    import fast_style.io.in_memory as in_memory

    for name in ("to_rgb", "pil_to_tensor", "_from_tensor", "_from_array"):  # the size is checked first
        monkeypatch.setattr(in_memory, name, lambda *a, name=name, **k: pytest.fail(f"{name} ran on a huge image"))
    for image in (torch.zeros(3, 300, 400), np.zeros((300, 400, 3), np.uint8), Image.new("RGB", (400, 300))):
        _refused(ValueError, model, image, "400x300 px", "max_pixels=10000", max_pixels=10_000)


@pytest.mark.parametrize("images, needle", [
    (torch.zeros(3, 30, 40), "a list of images"),
    ("photo.jpg", "a list of images"),
    (np.zeros((30, 40, 3), np.uint8), "a list of images"),
    (5, "a list of images"),
])
def test_one_image_where_a_list_is_expected_is_a_type_error(model, images, needle):
    with pytest.raises(TypeError, match=needle) as info:
        fast_style.stylize_images(model, images, **FAST)
    assert "[image]" in str(info.value)


@pytest.mark.parametrize("value", [5, None, 1.5, ["a.safetensors"]])
def test_a_model_that_is_not_a_path_or_a_model_is_a_type_error(photo, value):
    for call in (lambda: fast_style.stylize_images(value, [photo]), lambda: fast_style.stylize(value, "a.png"),
                 lambda: fast_style.open_model(value)):
        with pytest.raises(TypeError, match="model file") as info:
            call()
        assert isinstance(info.value, FastStyleError)


@pytest.mark.parametrize("value", [5, ["a.png", "b.png"], b"a.png"])
def test_an_input_that_is_not_a_path_is_a_type_error(model, value):
    with pytest.raises(TypeError, match="input=") as info:
        fast_style.stylize(model, value)
    assert "folder" in str(info.value) and isinstance(info.value, FastStyleError)


@pytest.mark.parametrize("option, value, kind, needle", [
    ("strength", "", ValueError, "strength='': must be a number"),
    ("strength", "abc", ValueError, "strength='abc': must be a number"),
    ("strength", None, TypeError, "strength=None: must be a number"),
    ("strength", [1], TypeError, "strength=[1]: must be a number"),
    ("strength", float("nan"), ValueError, "strength=nan: must be in [0, 1]"),
    ("strength", float("inf"), ValueError, "strength=inf: must be in [0, 1]"),
    ("strength", -0.5, ValueError, "strength=-0.5: must be in [0, 1]"),
    ("size", "abc", ValueError, "size='abc': must be a whole number"),
    ("size", 1.5, ValueError, "size=1.5: must be a whole number"),
    ("size", float("nan"), ValueError, "size=nan: must be a whole number"),
    ("scale", float("nan"), ValueError, "scale=nan: must be a finite number"),
    ("scale", float("inf"), ValueError, "scale=inf: must be a finite number"),
    ("batch_size", "x", ValueError, "batch_size='x': must be a whole number"),
    ("batch_size", True, TypeError, "batch_size=True: must be a whole number"),
    ("tile_size", 2.5, ValueError, "tile_size=2.5: must be a whole number"),
    ("overwrite", "no", TypeError, "overwrite='no': must be true or false"),
    ("progress", 2, TypeError, "progress=2: must be true or false"),
    ("startup_cache", "off", TypeError, "startup_cache='off': must be true or false"),
])
def test_option_values_of_the_wrong_type_are_one_line(model, photo, option, value, kind, needle):
    with pytest.raises(kind) as info:
        _run(model, photo, **{option: value})
    assert isinstance(info.value, FastStyleError) and str(info.value).startswith(needle), str(info.value)


def test_numbers_given_as_text_are_read_as_numbers(model, photo):
    assert torch.equal(_run(model, photo, strength="0.5", overwrite="false"), _run(model, photo, strength=0.5))
