"""Frozen VGG feature taps: the loss network.

Layers of ``torchvision.models.vgg16().features`` (and vgg19) are named by block and
position: ``conv{b}_{i}``, ``relu{b}_{i}``, ``pool{b}``. For VGG-16 the taps used by
Johnson et al. sit at indices relu1_2 = 3, relu2_2 = 8, relu3_3 = 15, relu4_3 = 22.

:class:`VGGFeatures` takes images in [0, 1], normalises them with the ImageNet mean
and std inside, runs the truncated feature stack (nothing past the deepest requested
tap is built) and returns ``{layer_name: tensor}``. It is always in eval mode and its
parameters never require grad; gradients still flow to its *input*.

Weights (``pretrained``):

- ``True``: ImageNet weights through torchvision's weights API (downloaded once into
  the torch hub cache). If they cannot be had, :class:`LossNetworkError` names the two
  ways out (``loss_net.weights=PATH`` or ``loss_net.pretrained=false``).
- ``False``: random init, seeded by ``seed`` (tests, offline benchmarks).
- ``"auto"``: real weights if they can be had, else random with a loud warning
  (the offline demo only).
- ``weights=PATH`` (any ``pretrained``): a local state dict file, either a whole
  VGG (``features.0.weight`` ...) or its ``features`` part (``0.weight`` ...).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterable

import torch
from torch import nn

from fast_style.errors import FastStyleError, first_line

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ARCHS = ("vgg16", "vgg19")


class LossNetworkError(FastStyleError):
    """The loss network's weights could not be loaded."""


def layer_names(features: nn.Sequential) -> list[str]:
    """Names for each module of a VGG ``features`` stack: conv1_1, relu1_1, ..., pool1, ..."""
    names, block, index = [], 1, 0
    for module in features:
        if isinstance(module, nn.Conv2d):
            index += 1
            names.append(f"conv{block}_{index}")
        elif isinstance(module, nn.ReLU):
            names.append(f"relu{block}_{index}")
        elif isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
            names.append(f"pool{block}")
            block, index = block + 1, 0
        else:
            names.append(f"other{len(names)}")
    return names


# Output channels of each 3x3 convolution, "M" for a 2x2 max pool (Simonyan & Zisserman,
# configurations D and E): the same module order as torchvision's ``features``.
VGG_LAYOUTS = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def build_features(arch: str) -> nn.Sequential:
    """An uninitialised-weights VGG ``features`` stack with torchvision's module indices."""
    if arch not in ARCHS:
        raise LossNetworkError(f"unknown loss network arch {arch!r}; choose one of {ARCHS}")
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG_LAYOUTS[arch]:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = int(item)
    return nn.Sequential(*layers)


def tap_indices(arch: str = "vgg16") -> dict[str, int]:
    """``{layer_name: index}`` into ``torchvision.models.<arch>().features``."""
    return {name: i for i, name in enumerate(layer_names(build_features(arch)))}


def _torchvision_features(arch: str, *, weights) -> nn.Sequential:
    import torchvision

    if arch not in ARCHS:
        raise LossNetworkError(f"unknown loss network arch {arch!r}; choose one of {ARCHS}")
    return getattr(torchvision.models, arch)(weights=weights).features


@functools.lru_cache(maxsize=4)
def _random_state(arch: str, seed: int) -> dict[str, torch.Tensor]:
    """torchvision's random init of ``<arch>().features`` under ``manual_seed(seed)``.

    Built once per process: the whole model (with its 120M-parameter classifier,
    whose init consumes the random stream) takes seconds, and tests build many.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _torchvision_features(arch, weights=None).state_dict()


def _imagenet_features(arch: str) -> nn.Sequential:
    import torchvision

    weights = {"vgg16": torchvision.models.VGG16_Weights, "vgg19": torchvision.models.VGG19_Weights}[arch]
    return _torchvision_features(arch, weights=weights.IMAGENET1K_V1)


def _features_state_dict(path: str) -> dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise LossNetworkError(f"loss_net.weights={path}: no such file; give the path of a VGG state dict (.pth)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line message
        raise LossNetworkError(
            f"loss_net.weights={path}: not a readable PyTorch state dict ({type(exc).__name__}); "
            "save one with torch.save(torchvision.models.vgg16(weights=...).state_dict(), PATH)"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise LossNetworkError(f"loss_net.weights={path}: expected a state dict, found {type(state).__name__}")
    features = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
    return features


def load_vgg_features(
    *, arch: str = "vgg16", pretrained: bool | str = True, weights: str | None = None, seed: int = 0
) -> tuple[nn.Sequential, str]:
    """The full ``features`` stack with the requested weights, and a short description.

    The description ("imagenet", "file:<path>" or "random(seed=0)") is stored in logs
    and checkpoints so that every result says which loss network made it.
    """
    if weights:
        features = build_features(arch)
        state = _features_state_dict(str(weights))
        try:
            features.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise LossNetworkError(
                f"loss_net.weights={weights}: does not match torchvision's {arch} ({first_line(exc)}); "
                f"give a state dict of torchvision.models.{arch}"
            ) from exc
        return features, f"file:{weights}"

    mode = str(pretrained).lower()
    if mode in {"true", "auto"}:
        try:
            return _imagenet_features(arch), "imagenet"
        except Exception as exc:  # noqa: BLE001 - download or cache failures all end here
            if mode == "true":
                raise LossNetworkError(
                    f"could not load ImageNet {arch} weights ({type(exc).__name__}: {first_line(exc)}). "
                    f"Download them once where there is internet (torchvision caches them in {torch.hub.get_dir()}), "
                    "or pass loss_net.weights=/path/to/vgg.pth, "
                    "or loss_net.pretrained=false for a random loss network (tests only)"
                ) from exc
            log.warning(
                "\n%s\n!! ImageNet %s weights are not available (%s).\n"
                "!! Using a RANDOMLY INITIALISED loss network: results show the code path, not real style transfer.\n"
                "!! Give loss_net.weights=/path/to/vgg.pth or connect to the internet for real results.\n%s",
                "!" * 78, arch, type(exc).__name__, "!" * 78,
            )
    elif mode != "false":
        raise LossNetworkError(f"loss_net.pretrained={pretrained!r}: use true, false or auto")

    features = build_features(arch)
    features.load_state_dict({k: v.clone() for k, v in _random_state(arch, int(seed)).items()})
    return features, f"random(seed={seed})"


def weights_of_source(source: str) -> dict[str, object] | None:
    """The inverse of :func:`load_vgg_features`' description: the weight keyword arguments
    that load the same weights again, or None for a description it does not know.

    ``"imagenet"`` -> pretrained=True; ``"file:P"`` -> weights=P; ``"random(seed=N)"`` ->
    pretrained=False, seed=N.
    """
    if source == "imagenet":
        return {"pretrained": True, "weights": None}
    if source.startswith("file:"):
        return {"weights": source[len("file:"):]}
    match = re.fullmatch(r"random\(seed=(-?\d+)\)", source)
    return {"pretrained": False, "weights": None, "seed": int(match.group(1))} if match else None


class VGGFeatures(nn.Module):
    """Frozen VGG taps: (N, 3, H, W) in [0, 1] -> ``{layer: (N, C_l, H_l, W_l)}``.

    ``layers`` lists the tap names (e.g. ``["relu1_2", "relu2_2"]``); the stack stops at
    the deepest one. ``pool="avg"`` replaces max pooling by average pooling (Gatys).
    """

    def __init__(
        self,
        *,
        layers: Iterable[str],
        arch: str = "vgg16",
        pretrained: bool | str = True,
        weights: str | None = None,
        seed: int = 0,
        pool: str = "max",
    ):
        super().__init__()
        features, self.source = load_vgg_features(arch=arch, pretrained=pretrained, weights=weights, seed=seed)
        names = layer_names(features)
        self.layers = list(dict.fromkeys(layers))
        unknown = [name for name in self.layers if name not in names]
        if unknown:
            relus = [n for n in names if n.startswith("relu")]
            raise LossNetworkError(f"unknown {arch} layer(s) {unknown}; available taps: {', '.join(relus)}")
        last = max(names.index(name) for name in self.layers)
        stack = list(features[: last + 1])
        if pool not in ("max", "avg"):
            raise LossNetworkError(f"unknown pool {pool!r}; use max or avg")
        if pool == "avg":
            stack = [nn.AvgPool2d(2, 2) if isinstance(m, nn.MaxPool2d) else m for m in stack]
        # In-place ReLUs would overwrite a tapped convolution output (e.g. conv4_2).
        stack = [nn.ReLU() if isinstance(m, nn.ReLU) else m for m in stack]
        self.features = nn.Sequential(*stack)
        self.names = names[: last + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:
        """Always stays in eval mode (the loss network is frozen)."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.taps(images, self.layers)

    def taps(self, x: torch.Tensor, layers: Iterable[str], *, after: str | None = None) -> dict[str, torch.Tensor]:
        """Run only the part of the stack that ``layers`` need: ``{tap: features}``.

        ``after=None``: ``x`` is an image batch (N, 3, H, W) in [0, 1], normalised and
        run from the first layer. ``after="relu2_2"`` (say): ``x`` is that tap's output
        and the stack resumes at the next layer. Either way it stops at the deepest of
        ``layers`` (the content targets need relu2_2 only, a third of the relu4_3 stack).
        """
        wanted = set(layers)
        first = 0 if after is None else self.names.index(after) + 1
        last = max(self.names.index(name) for name in wanted)
        if after is None:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = {}
        for index in range(first, last + 1):
            x = self.features[index](x)
            if self.names[index] in wanted:
                out[self.names[index]] = x
        return out
