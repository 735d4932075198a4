"""Float images to and from Pillow, and the output checks, band by band: the same values as
whole-image arithmetic, without full-size temporaries (what keeps an 8K photo under 2 GB)."""

import numpy as np
import pytest
import torch

from fast_style.inference.finishing import ModelOutputError, check_output, finish
from fast_style.inference.options import StylizeOptions
from fast_style.io import images
from fast_style.io.images import pil_to_tensor, tensor_to_pil


@pytest.mark.parametrize("size", [(1, 1), (37, 53), (300, 7)])
def test_banded_conversion_equals_whole_image_rounding(monkeypatch, size):
    monkeypatch.setattr(images, "PIL_CHUNK_PIXELS", 100)  # many bands, the last one short
    image = torch.rand(3, *size, generator=torch.Generator().manual_seed(0)) * 1.4 - 0.2  # beyond [0, 1]
    expected = image.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0)
    pil = tensor_to_pil(image)
    assert pil.size == (size[1], size[0]) and torch.equal(torch.from_numpy(np.array(pil)), expected)
    assert torch.equal(pil_to_tensor(pil), expected.permute(2, 0, 1).float() / 255)


@pytest.mark.parametrize("where", [(0, 0, 0), (1, 2, 4095), (0, 1, 2048)])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_value_in_any_band_is_caught(where, bad):
    outputs = torch.rand(2, 3, 4096, 300)
    check_output(outputs, outputs)
    outputs[where[0], where[1], where[2], 7] = bad
    with pytest.raises(ModelOutputError, match="NaN or infinite"):
        check_output(outputs, outputs)


def test_finish_clamps_the_runner_output_in_place_and_never_touches_the_photo():
    with torch.inference_mode():  # as the runners return them
        stylized = torch.rand(3, 8, 8) * 2 - 0.5
    photo = torch.rand(3, 8, 8)
    kept = photo.clone()
    out = finish(stylized, photo, StylizeOptions())
    assert out.min() >= 0 and out.max() <= 1 and out.data_ptr() == stylized.data_ptr()
    assert torch.equal(finish(stylized, photo, StylizeOptions(strength=0.0)), kept) and torch.equal(photo, kept)
