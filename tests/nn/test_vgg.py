import logging

import pytest
import torch
import torchvision

from fast_style.nn import vgg as vgg_module
from fast_style.nn.vgg import (
    LossNetworkError,
    VGGFeatures,
    _random_state,
    build_features,
    tap_indices,
)

# Reference weights come from ``_random_state(arch, seed)``: torchvision's random init,
# built once per process (the whole torchvision VGG, classifier included, takes seconds).
# Only ``test_random_state_and_layout_equal_torchvision_vgg16`` builds torchvision's
# VGG-16 itself, to prove that this cached state and our layout are torchvision's.


def _seeded_features(arch: str, seed: int = 0) -> torch.nn.Sequential:
    """A full ``features`` stack with the cached random weights, independent of VGGFeatures."""
    features = build_features(arch)
    features.load_state_dict(_random_state(arch, seed))
    return features


def _distinct_vgg16_features() -> torch.nn.Sequential:
    """Real-shaped VGG-16 features whose weights are neither ImageNet's nor any seed's init.

    The cached seed-0 state plus seeded noise, so that biases (zero in torchvision's init)
    are not zero and a loader that fell back to random weights could not pass.
    """
    features = _seeded_features("vgg16", 0)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for tensor in features.state_dict().values():
            tensor.add_(0.01 * torch.randn(tensor.shape, generator=generator))
    return features


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
    net = VGGFeatures(layers=["relu1_2", "relu3_3"], pretrained=False, seed=0)
    reference = _seeded_features("vgg16", 0)  # torchvision's module indices, same seed
    x = torch.rand(1, 3, 32, 32)
    normalised = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected_relu1_2 = reference[:4](normalised)
        expected_relu3_3 = reference[4:16](expected_relu1_2.clone())
        got = net(x)
    torch.testing.assert_close(got["relu1_2"], expected_relu1_2)
    torch.testing.assert_close(got["relu3_3"], expected_relu3_3)


def test_conv_tap_is_not_overwritten_by_relu():
    net = VGGFeatures(layers=["conv1_2", "relu1_2"], pretrained=False)
    out = net(torch.rand(1, 3, 16, 16))
    assert (out["conv1_2"] < 0).any() and torch.equal(out["relu1_2"], out["conv1_2"].clamp_min(0))


def test_random_init_is_seeded():
    a = VGGFeatures(layers=["relu1_2"], pretrained=False, seed=0)
    b = VGGFeatures(layers=["relu1_2"], pretrained=False, seed=0)
    c = VGGFeatures(layers=["relu1_2"], pretrained=False, seed=1)
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)
    assert (a.source, c.source) == ("random(seed=0)", "random(seed=1)")
    # Each network gets its own copy: changing one leaves the per-process cache intact.
    with torch.no_grad():
        a.features[0].weight.zero_()
    assert torch.equal(b.features[0].weight, _random_state("vgg16", 0)["0.weight"])
    assert torch.equal(VGGFeatures(layers=["relu1_2"], pretrained=False, seed=0).features[0].weight,
                       b.features[0].weight)


@pytest.mark.parametrize("whole_model", [True, False])
def test_weights_file_loads_identical_weights(tmp_path, whole_model):
    features = _distinct_vgg16_features().state_dict()
    if whole_model:  # torchvision.models.vgg16().state_dict(): features.* and classifier.*
        state = {f"features.{k}": v for k, v in features.items()} | {"classifier.0.weight": torch.zeros(4, 8)}
    else:
        state = features
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    net = VGGFeatures(layers=["relu4_3"], weights=str(path), pretrained=True)
    assert net.source == f"file:{path}"
    loaded = net.features.state_dict()
    assert len(loaded) == 20  # conv1_1 .. conv4_3: 10 convolutions, weight and bias
    for key, value in loaded.items():
        assert torch.equal(value, features[key]), key
    assert not torch.equal(loaded["0.bias"], _random_state("vgg16", 0)["0.bias"])


def test_bad_weights_files_give_clear_errors(tmp_path):
    with pytest.raises(LossNetworkError, match="no such file"):
        VGGFeatures(layers=["relu1_2"], weights=str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(LossNetworkError, match="not a readable PyTorch state dict"):
        VGGFeatures(layers=["relu1_2"], weights=str(junk))
    wrong = tmp_path / "vgg19.pth"
    torch.save(_random_state("vgg19", 0), wrong)  # torchvision's vgg19().features layout
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


def test_random_state_and_layout_equal_torchvision_vgg16():
    """The one test that builds torchvision's VGG-16 (seconds): everything else trusts
    ``build_features`` and ``_random_state``, and this proves both are torchvision's."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        theirs = torchvision.models.vgg16().features
    ours = build_features("vgg16")
    assert [type(m) for m in ours] == [type(m) for m in theirs]
    expected = theirs.state_dict()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in expected.items()}
    cached = _random_state("vgg16", 0)
    assert cached.keys() == expected.keys()
    assert all(torch.equal(cached[k], v) for k, v in expected.items())
    net = VGGFeatures(layers=["relu5_3"], pretrained=False, seed=0)
    got = net.features.state_dict()
    assert got.keys() == expected.keys()  # pool5 has no parameters
    assert all(torch.equal(got[k], v) for k, v in expected.items())


def test_vgg19_layout_matches_torchvision_state():
    ours = build_features("vgg19")
    theirs = _random_state("vgg19", 0)  # torchvision.models.vgg19().features.state_dict()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.items()}
    assert len(ours) == 37  # 16 convolutions + 16 ReLUs + 5 pools, as torchvision's
    ours.load_state_dict(theirs, strict=True)


def test_loss_network_description_round_trips(tmp_path):
    """What a model records about its loss network (``source``) loads the same weights again."""
    from fast_style.nn.vgg import _random_state, build_features, weights_of_source

    random = VGGFeatures(layers=["relu1_2"], pretrained=False, seed=4)
    again = VGGFeatures(layers=["relu1_2"], **weights_of_source(random.source))
    assert again.source == random.source == "random(seed=4)"
    assert torch.equal(again.features[0].weight, random.features[0].weight)
    features = build_features("vgg16")
    features.load_state_dict(_random_state("vgg16", 0))
    torch.save(features.state_dict(), tmp_path / "vgg.pth")
    from_file = VGGFeatures(layers=["relu1_2"], weights=str(tmp_path / "vgg.pth"))
    assert weights_of_source(from_file.source) == {"weights": str(tmp_path / "vgg.pth")}
    assert weights_of_source("imagenet") == {"pretrained": True, "weights": None}
    assert weights_of_source("something else") is None
