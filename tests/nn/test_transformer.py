import pytest
import torch
from torch import nn

from fast_style.nn.transformer import ConditionalInstanceNorm2d, TransformerNet, build_transformer


@pytest.mark.parametrize("norm,upsample", [("instance", "nearest"), ("batch", "transposed")])
@pytest.mark.parametrize("height,width", [(32, 32), (33, 47), (41, 29), (64, 50)])
def test_output_has_input_size(norm, upsample, height, width):
    net = TransformerNet(width=8, num_residual=1, norm=norm, upsample=upsample).eval()
    assert net(torch.rand(2, 3, height, width)).shape == (2, 3, height, width)


def test_paper_size_parameter_count():
    # c9s1-32, d64, d128, 5 x R128, u64, u32, c9s1-3 with affine norms: 1.68 M parameters
    n = sum(p.numel() for p in TransformerNet().parameters())
    assert 1_670_000 < n < 1_690_000


def test_norm_and_upsample_variants_are_built():
    net = TransformerNet(width=4, num_residual=1, norm="batch", upsample="transposed")
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"BatchNorm2d", "ConvTranspose2d"} <= kinds and "InstanceNorm2d" not in kinds
    net = TransformerNet(width=4, num_residual=1)
    kinds = {type(m).__name__ for m in net.modules()}
    assert "InstanceNorm2d" in kinds and "ConvTranspose2d" not in kinds and "ReflectionPad2d" in kinds


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="unknown norm"):
        TransformerNet(norm="group")
    with pytest.raises(ValueError, match="unknown upsample"):
        TransformerNet(upsample="bilinear")


def test_build_from_config_round_trip():
    net = TransformerNet(width=8, num_residual=2, norm="batch", upsample="nearest")
    assert build_transformer(net.config).config == net.config


def test_gradients_reach_the_input():
    net = TransformerNet(width=4, num_residual=1)
    x = torch.rand(1, 3, 24, 24, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def _perturbed(net: TransformerNet) -> TransformerNet:
    """A trained-looking network: every parameter moved off its initial value."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return net.eval()


@pytest.mark.parametrize("height,width", [(32, 32), (33, 47)])
def test_input_skip_network_starts_as_the_identity(height, width):
    net = TransformerNet(width=8, num_residual=2, input_skip=True)
    x = torch.rand(2, 3, height, width)
    assert torch.equal(net(x), x)
    # and learns away from it: after one Adam step the output changes
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    (net(x) - 0.5).square().mean().backward()
    optimiser.step()
    assert (net(x) - x).abs().max() > 1e-3


def test_input_skip_adds_the_photo_with_its_gain():
    net = _perturbed(TransformerNet(width=8, num_residual=1, input_skip=True))
    plain = TransformerNet(width=8, num_residual=1)
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if k != "input_skip"})
    x = torch.rand(1, 3, 40, 36)
    with torch.no_grad():
        expected = plain.eval()(x) + net.input_skip.view(1, 3, 1, 1) * x
        assert torch.allclose(net(x), expected, atol=1e-6)
    assert "input_skip" in net.state_dict() and "input_skip" not in plain.state_dict()
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in plain.parameters()) + 3


def test_without_input_skip_the_default_initialisation_is_unchanged():
    """Today's networks: same parameters, same initial weights for the same seed."""
    torch.manual_seed(0)
    a = TransformerNet(width=8, num_residual=1)
    torch.manual_seed(0)
    b = TransformerNet(width=8, num_residual=1, input_skip=True)
    assert a.head.conv.weight.abs().sum() > 0 and b.head.conv.weight.abs().sum() == 0
    for key, value in a.state_dict().items():
        if not key.startswith("head."):
            assert torch.equal(value, b.state_dict()[key]), key


# --------------------------------------------------------------- several styles (conditional instance norm)


def _multi(num_styles: int = 3, seed: int = 0) -> TransformerNet:
    torch.manual_seed(seed)
    net = TransformerNet(width=8, num_residual=1, num_styles=num_styles)
    for module in net.modules():
        if isinstance(module, ConditionalInstanceNorm2d):  # distinct styles, not the ones/zeros start
            nn.init.normal_(module.weight, 1.0, 0.3)
            nn.init.normal_(module.bias, 0.0, 0.3)
    return net.eval()


def _one_style(net: TransformerNet, weights: torch.Tensor) -> TransformerNet:
    """A one-style network whose norms hold ``weights @ rows`` of ``net``'s conditional norms."""
    single = TransformerNet(width=8, num_residual=1).eval()
    state = {k: (weights @ v if v.dim() == 2 and ".norm" in k else v) for k, v in net.state_dict().items()}
    single.load_state_dict(state)
    return single


def test_conditional_norm_one_hot_is_that_style_alone_and_mixes_blend_its_parameters():
    net, x = _multi(), torch.rand(2, 3, 37, 45)
    for weights in (torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.7, 0.0, 0.3])):
        expected = _one_style(net, weights)(x)
        assert torch.allclose(net(x, weights), expected, atol=1e-5)
        assert torch.allclose(net(x, weights.expand(2, 3)), expected, atol=1e-5)
    # a mix of parameters is not a mix of outputs
    mixed = net(x, torch.tensor([0.5, 0.5, 0.0]))
    blended = (net(x, torch.tensor([1.0, 0.0, 0.0])) + net(x, torch.tensor([0.0, 1.0, 0.0]))) / 2
    assert (mixed - blended).abs().max() > 1e-3


def test_conditional_norm_style_map_per_pixel():
    net, x = _multi(), torch.rand(1, 3, 40, 48)
    style_map = torch.zeros(1, 3, 40, 48)
    style_map[:, 2] = 1.0
    assert torch.allclose(net(x, style_map), net(x, torch.tensor([0.0, 0.0, 1.0])), atol=1e-5)
    x = torch.rand(1, 3, 40, 160)
    halves = torch.zeros(1, 3, 40, 160)
    halves[:, 0, :, :80], halves[:, 1, :, 80:] = 1.0, 1.0
    out = net(x, halves)
    left, right = net(x, torch.tensor([1.0, 0.0, 0.0])), net(x, torch.tensor([0.0, 1.0, 0.0]))
    # far from the border each half is closer to its own style's whole-image result than to the other's
    # (not equal: the norm statistics are the whole image's, and the other half changes them)
    assert (out[..., :24] - left[..., :24]).abs().mean() < (out[..., :24] - right[..., :24]).abs().mean() * 0.6
    assert (out[..., -24:] - right[..., -24:]).abs().mean() < (out[..., -24:] - left[..., -24:]).abs().mean() * 0.6


def test_one_style_network_keeps_todays_tensors_and_config():
    assert "num_styles" not in TransformerNet(width=8, num_residual=1).config
    single = TransformerNet(width=8, num_residual=1, num_styles=1).state_dict()
    multi = TransformerNet(width=8, num_residual=1, num_styles=4).state_dict()
    assert single.keys() == multi.keys()
    assert tuple(single["conv1.norm.weight"].shape) == (8,)
    assert tuple(multi["conv1.norm.weight"].shape) == (4, 8)
    assert build_transformer({"width": 8, "num_residual": 1, "num_styles": 4}).num_styles == 4


def test_multi_style_network_refuses_missing_or_wrong_style_weights():
    net, x = _multi(), torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="holds 3 styles"):
        net(x)
    with pytest.raises(ValueError, match="2 entries"):
        net(x, torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="norm=instance"):
        TransformerNet(width=8, num_residual=1, norm="batch", num_styles=2)
