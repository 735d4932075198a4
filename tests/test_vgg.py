import logging

import pytest
import torch
import torchvision

from fast_style.nn import vgg as vgg_module
from fast_style.nn.vgg import LossNetworkError, VGGFeatures, tap_indices


def test_vgg16_tap_indices_match_the_design():
    taps = tap_indices("vgg16")
    assert (taps["relu1_2"], taps["relu2_2"], taps["relu3_3"], taps["relu4_3"]) == (3, 8, 15, 22)
    assert taps["conv4_2"] == 19 and taps["relu5_3"] == 29


def test_vgg19_has_gatys_layers():
    taps = tap_indices("vgg19")
    assert taps["conv4_2"] == 21 and taps["relu5_1"] == 29


def test_stack_stops_at_the_deepest_tap_and_is_frozen():
    net = VGGFeatures(layers=["relu2_2", "relu1_2"], pretrained=False)
    assert len(net.features) == 9
    assert all(not p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training
    out = net(torch.rand(2, 3, 32, 36))
    assert set(out) == {"relu1_2", "relu2_2"}
    assert out["relu1_2"].shape == (2, 64, 32, 36) and out["relu2_2"].shape == (2, 128, 16, 18)


def test_taps_equal_torchvision_slices_with_imagenet_normalisation():
    net = VGGFeatures(layers=["relu1_2", "relu3_3"], pretrained=False, seed=3)
    reference = torchvision.models.vgg16().features
    reference.load_state_dict(net.features.state_dict(), strict=False)
    x = torch.rand(1, 3, 32, 32)
    normalised = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference[:16](normalised)
        got = net(x)["relu3_3"]
    torch.testing.assert_close(got, expected)


def test_conv_tap_is_not_overwritten_by_relu():
    net = VGGFeatures(layers=["conv1_2", "relu1_2"], pretrained=False)
    out = net(torch.rand(1, 3, 16, 16))
    assert (out["conv1_2"] < 0).any() and torch.equal(out["relu1_2"], out["conv1_2"].clamp_min(0))


def test_random_init_is_seeded():
    a = VGGFeatures(layers=["relu1_2"], pretrained=False, seed=1)
    b = VGGFeatures(layers=["relu1_2"], pretrained=False, seed=1)
    c = VGGFeatures(layers=["relu1_2"], pretrained=False, seed=2)
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)
    assert a.source == "random(seed=1)"


@pytest.mark.parametrize("whole_model", [True, False])
def test_weights_file_loads_identical_weights(tmp_path, whole_model):
    torch.manual_seed(7)
    model = torchvision.models.vgg16()
    path = tmp_path / "vgg16.pth"
    torch.save(model.state_dict() if whole_model else model.features.state_dict(), path)
    net = VGGFeatures(layers=["relu4_3"], weights=str(path), pretrained=True)
    assert net.source == f"file:{path}"
    for key, value in net.features.state_dict().items():
        assert torch.equal(value, model.features.state_dict()[key])


def test_bad_weights_files_give_clear_errors(tmp_path):
    with pytest.raises(LossNetworkError, match="no such file"):
        VGGFeatures(layers=["relu1_2"], weights=str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(LossNetworkError, match="not a readable PyTorch state dict"):
        VGGFeatures(layers=["relu1_2"], weights=str(junk))
    wrong = tmp_path / "vgg19.pth"
    torch.save(torchvision.models.vgg19().features.state_dict(), wrong)
    with pytest.raises(LossNetworkError, match="does not match torchvision's vgg16"):
        VGGFeatures(layers=["relu1_2"], weights=str(wrong))


def _offline(*args, **kwargs):
    raise OSError("network is unreachable")


def test_pretrained_without_weights_names_both_ways_out(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", _offline)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(LossNetworkError) as info:
        VGGFeatures(layers=["relu1_2"], pretrained=True)
    message = str(info.value)
    assert "loss_net.weights=" in message and "loss_net.pretrained=false" in message and "\n" not in message


def test_auto_falls_back_to_random_loudly(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", _offline)
    with caplog.at_level(logging.WARNING, logger=vgg_module.__name__):
        net = VGGFeatures(layers=["relu1_2"], pretrained="auto")
    assert net.source.startswith("random")
    assert "RANDOMLY INITIALISED" in caplog.text


def test_unknown_layer_is_rejected():
    with pytest.raises(LossNetworkError, match="unknown vgg16 layer"):
        VGGFeatures(layers=["relu9_9"], pretrained=False)


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_own_layout_matches_torchvision(arch):
    from fast_style.nn.vgg import build_features

    ours, theirs = build_features(arch), getattr(torchvision.models, arch)().features
    assert [type(m) for m in ours] == [type(m) for m in theirs]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


def test_random_weights_equal_torchvision_init_under_the_seed():
    torch.manual_seed(5)
    expected = torchvision.models.vgg16().features.state_dict()
    net = VGGFeatures(layers=["relu5_3"], pretrained=False, seed=5)
    assert all(torch.equal(net.features.state_dict()[k], v) for k, v in expected.items())
