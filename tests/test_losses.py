import pytest
import torch

from fast_style.nn.losses import PerceptualLoss, content_loss, gram_matrix, style_loss, total_variation
from fast_style.nn.vgg import VGGFeatures


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
