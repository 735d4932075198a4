import pytest
import torch

from fast_style.nn.transformer import TransformerNet, build_transformer


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
