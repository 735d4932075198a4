import pytest
import torch
import torch.nn.functional as F

from fast_style.nn.losses import (
    PerceptualLoss,
    content_loss,
    gram_matrix,
    style_loss,
    total_variation,
)
from fast_style.nn.vgg import VGGFeatures, build_features


def test_gram_matrix_by_hand():
    # one image, C=2, H=1, W=2: F = [[1, 2], [3, 4]] -> F F^T = [[5, 11], [11, 25]], / (C H W = 4)
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4
    torch.testing.assert_close(gram_matrix(features), expected)


def test_gram_matrix_is_batched_and_symmetric():
    g = gram_matrix(torch.randn(3, 5, 4, 6))
    assert g.shape == (3, 5, 5)
    torch.testing.assert_close(g, g.transpose(1, 2))


def test_content_loss_is_weighted_mse_per_layer():
    out = {"a": torch.zeros(1, 1, 2, 2), "b": torch.ones(1, 2, 1, 1)}
    target = {"a": torch.full((1, 1, 2, 2), 2.0), "b": torch.zeros(1, 2, 1, 1)}
    # layer a: mean((0-2)^2) = 4; layer b: mean(1) = 1 -> 0.5 * 4 + 3 * 1
    assert content_loss(out, target, {"a": 0.5, "b": 3.0}).item() == pytest.approx(5.0)


def test_style_loss_by_hand_with_broadcast_target():
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2).repeat(2, 1, 1, 1)
    target = torch.zeros(1, 2, 2)
    # Gram entries 5/4, 11/4, 11/4, 25/4 -> mean of squares = (25 + 121 + 121 + 625) / 16 / 4
    expected = (25 + 121 + 121 + 625) / 16 / 4
    assert style_loss({"x": features}, {"x": target}, {"x": 2.0}).item() == pytest.approx(2 * expected)


def test_total_variation_by_hand():
    image = torch.tensor([[0.0, 1.0], [0.0, 3.0]]).view(1, 1, 2, 2)
    # vertical differences: 0, 2 -> mean of squares 2; horizontal: 1, 3 -> 5
    assert total_variation(image).item() == pytest.approx(7.0)
    assert total_variation(torch.full((1, 3, 5, 5), 0.3)).item() == 0.0


@pytest.fixture(scope="module")
def perceptual():
    vgg = VGGFeatures(layers=["relu1_2", "relu2_2", "relu3_3"], pretrained=False)
    torch.manual_seed(0)
    return PerceptualLoss(
        loss_net=vgg,
        style_image=torch.rand(1, 3, 40, 48),
        content_layers={"relu2_2": 1.0},
        style_layers={"relu1_2": 1.0, "relu3_3": 0.5},
        content_weight=2.0,
        style_weight=1e3,
        tv_weight=0.1,
    )


def test_style_grams_are_cached_buffers(perceptual):
    names = {name for name, _ in perceptual.named_buffers()}
    assert {"style_grams.relu1_2", "style_grams.relu3_3"} <= names
    assert perceptual.style_grams.relu1_2.shape == (1, 64, 64)


def test_perceptual_loss_combines_weighted_terms(perceptual):
    x = torch.rand(2, 3, 32, 32)
    y = torch.rand(2, 3, 32, 32, requires_grad=True)
    losses = perceptual(y, x)
    feats_y, feats_x = perceptual.loss_net(y), perceptual.loss_net(x)
    expected_content = 2.0 * torch.mean((feats_y["relu2_2"] - feats_x["relu2_2"]) ** 2)
    torch.testing.assert_close(losses["content"], expected_content)
    expected_style = 1e3 * style_loss(feats_y, perceptual.grams(), {"relu1_2": 1.0, "relu3_3": 0.5})
    torch.testing.assert_close(losses["style"], expected_style)
    torch.testing.assert_close(losses["tv"], 0.1 * total_variation(y))
    torch.testing.assert_close(losses["total"], losses["content"] + losses["style"] + losses["tv"])
    losses["total"].backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


def test_identical_output_and_content_have_no_content_loss(perceptual):
    x = torch.rand(1, 3, 32, 32)
    assert perceptual(x, x)["content"].item() == 0.0


def test_batched_pass_equals_separate_passes(perceptual):
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    separate = perceptual(y, x)
    perceptual.batched = True
    try:
        batched = perceptual(y, x)
    finally:
        perceptual.batched = False
    for key in separate:
        torch.testing.assert_close(batched[key], separate[key], rtol=1e-4, atol=1e-6)



# pytorch/examples' fast_neural_style, written from its description (not its code), for
# test_values_equal_pytorch_examples_fast_neural_style. Its Vgg16 returns the taps
# relu1_2, relu2_2, relu3_3, relu4_3 as slices [0:4], [4:9], [9:16], [16:23] of
# torchvision's vgg16().features, applied to normalize_batch(x) of 0-255 pixels x.
EXAMPLES_TAPS = {"relu1_2": (0, 4), "relu2_2": (4, 9), "relu3_3": (9, 16), "relu4_3": (16, 23)}


def _examples_normalize_batch(batch: torch.Tensor) -> torch.Tensor:
    """0-255 pixels -> batch / 255, then ImageNet mean and std."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (batch / 255.0 - mean) / std


def _examples_features(features: torch.nn.Sequential, batch: torch.Tensor) -> dict[str, torch.Tensor]:
    out, h = {}, batch
    for name, (start, stop) in EXAMPLES_TAPS.items():
        h = features[start:stop](h)
        out[name] = h
    return out


def _examples_gram(y: torch.Tensor, *, divisor: str = "ch*h*w") -> torch.Tensor:
    """F.view(b, ch, h w) @ its transpose / (ch h w); ``divisor="h*w"`` is a wrong variant."""
    b, ch, h, w = y.shape
    flat = y.view(b, ch, h * w)
    return flat @ flat.transpose(1, 2) / (ch * h * w if divisor == "ch*h*w" else h * w)


def test_values_equal_pytorch_examples_fast_neural_style():
    """The claim in fast_style.nn.losses: with G = F F^T / (C H W) and mean squared errors,
    our content and style values equal pytorch/examples' fast_neural_style's for the same
    VGG weights and its weights (content 1e5, style 1e10, per-layer 1.0).

    Theirs: content = content_weight * mse_loss(relu2_2(y), relu2_2(x)); style =
    style_weight * sum over the four taps of mse_loss(gram(F(y)), gram_style[:n_batch]),
    gram_style from the style image repeated batch_size times; x, y, style in 0-255.
    """
    content_weight, style_weight = 1e5, 1e10
    vgg = VGGFeatures(layers=list(EXAMPLES_TAPS), pretrained=False, seed=0)
    theirs_vgg = torch.nn.Sequential(*build_features("vgg16")[:23])
    theirs_vgg.load_state_dict(vgg.features.state_dict(), strict=True)  # the same VGG weights

    generator = torch.Generator().manual_seed(0)
    style_255 = torch.randint(0, 256, (1, 3, 48, 40), generator=generator).float()
    x_255 = torch.randint(0, 256, (2, 3, 32, 40), generator=generator).float()  # content photos
    y_255 = torch.rand(2, 3, 32, 40, generator=generator) * 300 - 20  # transform output, unclamped

    ours = PerceptualLoss(
        loss_net=vgg,
        style_image=style_255 / 255,
        content_layers={"relu2_2": 1.0},
        style_layers=dict.fromkeys(EXAMPLES_TAPS, 1.0),
        content_weight=content_weight,
        style_weight=style_weight,
        tv_weight=0.0,
    )
    with torch.no_grad():
        got = ours(y_255 / 255, x_255 / 255)

        batch_size, n_batch = 4, len(x_255)  # a last, short batch: gram_style[:n_batch]
        style_feats = _examples_features(theirs_vgg, _examples_normalize_batch(style_255.repeat(batch_size, 1, 1, 1)))
        features_y = _examples_features(theirs_vgg, _examples_normalize_batch(y_255))
        features_x = _examples_features(theirs_vgg, _examples_normalize_batch(x_255))

        def their_losses(*, divisor="ch*h*w", feats_y=features_y, feats_x=features_x, feats_s=style_feats):
            gram_style = {k: _examples_gram(v, divisor=divisor) for k, v in feats_s.items()}
            content = content_weight * F.mse_loss(feats_y["relu2_2"], feats_x["relu2_2"])
            style = style_weight * sum(
                F.mse_loss(_examples_gram(feats_y[k], divisor=divisor), gram_style[k][:n_batch]) for k in EXAMPLES_TAPS
            )
            return content, style

        content, style = their_losses()
        assert content > 0 and style > 0
        torch.testing.assert_close(got["content"], content, rtol=1e-5, atol=0)
        torch.testing.assert_close(got["style"], style, rtol=1e-5, atol=0)

        # The comparison can fail: another Gram normalisation, or images in [0, 1] fed to
        # the VGG without the ImageNet mean and std, give other values.
        _, style_per_pixel = their_losses(divisor="h*w")
        assert not torch.allclose(got["style"], style_per_pixel, rtol=1e-3)
        raw = {name: _examples_features(theirs_vgg, batch / 255)
               for name, batch in {"y": y_255, "x": x_255, "s": style_255.repeat(batch_size, 1, 1, 1)}.items()}
        content_raw, style_raw = their_losses(feats_y=raw["y"], feats_x=raw["x"], feats_s=raw["s"])
        assert not torch.allclose(got["content"], content_raw, rtol=1e-3)
        assert not torch.allclose(got["style"], style_raw, rtol=1e-3)
