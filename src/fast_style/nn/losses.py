"""Perceptual losses: feature (content), Gram (style), total variation and colour moments.

Every formula of the project lives here. For a batch of N images and a VGG tap
``l`` with features ``F_l`` of shape (N, C, H, W):

- Gram matrix:      ``G(F) = F F^T / (C H W)``, with F reshaped to (N, C, H W),
  shape (N, C, C).
- Content loss:     ``L_c = w_c * sum_l a_l * mean((F_l(y) - F_l(x))^2)``
  (``mean`` over N C H W elements; ``y`` the output, ``x`` the content photo).
- Style loss:       ``L_s = w_s * sum_l b_l * mean((G(F_l(y)) - G(F_l(s)))^2)``
  (``mean`` over N C C elements; ``s`` the style image, its Grams broadcast over N).
  With several styles s_1 .. s_S image n has its own style k_n: per image
  ``L_s[n] = w_s * sum_l b_l * mean_cc((G(F_l(y_n)) - G(F_l(s_{k_n})))^2)`` and
  ``L_s = mean_n L_s[n]`` (the same value as above when every k_n is the one style).
- Total variation:  ``L_tv = w_tv * (mean((y[..., i+1, j] - y[..., i, j])^2)
  + mean((y[..., i, j+1] - y[..., i, j])^2))`` on the output in [0, 1].
- Colour moments:   ``L_col = w_col * mean_n (mean_c (mu(y_n) - mu(s_k))^2 + mean_ij (R(y_n) - R(s_k))^2)``
  with, over the H W pixels of an image in [0, 1], ``mu`` its RGB mean (3,), ``Sigma`` its
  RGB covariance (3, 3) and ``R = chol(Sigma + 1e-4 I)`` the lower Cholesky factor (the
  "standard deviation" of the palette, so both parts are on the scale of pixel values;
  ``s_k`` image n's style, as for the Grams). Optional (``colour_weight``, default 0: off):
  it asks for the painting's palette in pixel space, whatever the loss network knows.
- Total:            ``L = L_c + L_s + L_tv + L_col``.

With this normalisation the content and style values equal those of
pytorch/examples' fast_neural_style for the same VGG weights, so its weights
(content 1e5, style 1e10 .. 1e11) are a known-good starting point.

Precision: under mixed precision (``torch.autocast``, bf16 or fp16) only the loss
network's convolutions run in low precision; every Gram matrix and every loss term
above is computed in at least fp32 with autocast switched off (``fast_style.nn.precision``:
fp32 for bf16/fp16/fp32 features, fp64 when the module was moved to float64).

The terms are data as well: :data:`LOSS_TERMS` lists each weighted term, the key of its
weight in the ``loss`` config and, if it has them, of its per-layer weights. The range
checks of training, the logged names and the evaluation's description of a loss read it,
so a new term is its formula here, its entry there, a field of the ``loss`` schema
(``fast_style.config.LossSchema``, which a test keeps in step with this table) and its
value in the ``configs/loss/`` presets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.nn.precision import at_least_fp32, full_dtype, full_precision
from fast_style.nn.vgg import VGGFeatures


@dataclass(frozen=True)
class LossTerm:
    """One weighted term of the training loss, logged as ``train/<name>``: its weight is
    ``loss.<weight_key>`` (>= 0; 0 switches it off), its per-layer weights ``loss.<layers_key>``
    (None: no layers); ``optional``: a loss config may leave it out (then 0, off);
    ``one_view``: :class:`PerceptualLoss` computes it from one stylized batch (False: the
    temporal term, which needs a second view and is added by the training module)."""

    name: str
    weight_key: str
    layers_key: str | None = None
    optional: bool = False
    one_view: bool = True


# Every weighted term, in the order reports list them (the temporal term: fast_style.nn.temporal).
LOSS_TERMS: tuple[LossTerm, ...] = (
    LossTerm("content", "content_weight", "content_layers"),
    LossTerm("style", "style_weight", "style_layers"),
    LossTerm("tv", "tv_weight"),
    LossTerm("colour", "colour_weight", optional=True),
    LossTerm("temporal", "temporal_weight", optional=True, one_view=False),
)
WEIGHT_KEYS: tuple[str, ...] = tuple(term.weight_key for term in LOSS_TERMS)
# What PerceptualLoss returns besides style_per_image: its terms and their sum
PERCEPTUAL_KEYS: tuple[str, ...] = (*(term.name for term in LOSS_TERMS if term.one_view), "total")


def term_weights(loss: Mapping) -> dict[str, float]:
    """``{weight_key: value}`` of every term of :data:`LOSS_TERMS` in a ``loss`` config
    (an optional term left out is 0.0; a required one left out is None)."""
    return {t.weight_key: loss.get(t.weight_key, 0.0 if t.optional else None) for t in LOSS_TERMS}


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C): ``F F^T / (C H W)``, computed in at least fp32 (also under autocast)."""
    n, c, h, w = features.shape
    with full_precision(features.device):
        flat = at_least_fp32(features.reshape(n, c, h * w))
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def content_loss(
    output: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], layer_weights: Mapping[str, float]
) -> torch.Tensor:
    """``sum_l a_l * mean((F_l(y) - F_l(x))^2)`` over the layers in ``layer_weights``."""
    total = 0.0
    for layer, a in layer_weights.items():
        dtype = full_dtype(output[layer], target[layer])
        total = total + a * F.mse_loss(output[layer].to(dtype), target[layer].to(dtype))
    return total


def style_loss_per_image(
    output: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor], layer_weights: Mapping[str, float]
) -> torch.Tensor:
    """``sum_l b_l * mean_cc((G(F_l(y_n)) - G_l[n])^2)`` for each image n, shape (N,);
    ``target_grams[l]`` is (1, C, C) (one target for every image) or (N, C, C) (one each)."""
    total = 0.0
    for layer, b in layer_weights.items():
        gram = gram_matrix(output[layer])
        target = target_grams[layer]
        dtype = full_dtype(gram, target)
        total = total + b * (gram.to(dtype) - target.to(dtype)).pow(2).mean(dim=(1, 2))
    return total


def style_loss(
    output: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor], layer_weights: Mapping[str, float]
) -> torch.Tensor:
    """``sum_l b_l * mean((G(F_l(y)) - G_l)^2)``; ``target_grams[l]`` is (1 or N, C, C).
    The mean over N C C elements is the mean over images of :func:`style_loss_per_image`."""
    return style_loss_per_image(output, target_grams, layer_weights).mean()


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of vertical plus horizontal neighbours, (N, C, H, W) -> scalar."""
    images = at_least_fp32(images)
    dy = images[..., 1:, :] - images[..., :-1, :]
    dx = images[..., :, 1:] - images[..., :, :-1]
    return dy.pow(2).mean() + dx.pow(2).mean()


COLOUR_EPS = 1e-4  # added to the covariance's diagonal: its Cholesky factor exists for a one-colour image too


def colour_moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) -> (mean (N, 3), R (N, 3, 3)): each image's RGB mean over its pixels and
    the lower Cholesky factor of its RGB covariance plus ``COLOUR_EPS`` I, in at least fp32."""
    with full_precision(images.device):
        pixels = at_least_fp32(images).flatten(2)  # (N, 3, H W)
        mean = pixels.mean(dim=2)
        centred = pixels - mean[..., None]
        covariance = centred @ centred.transpose(1, 2) / pixels.shape[2]
        eye = torch.eye(3, dtype=covariance.dtype, device=covariance.device)
        return mean, torch.linalg.cholesky(covariance + COLOUR_EPS * eye)


def colour_loss_per_image(images: torch.Tensor, target_mean: torch.Tensor, target_root: torch.Tensor) -> torch.Tensor:
    """``mean_c (mu(y_n) - mu_t)^2 + mean_ij (R(y_n) - R_t)^2`` for each image n, shape (N,);
    the targets are (1 or N, 3) and (1 or N, 3, 3) (:func:`colour_moments` of the paintings)."""
    mean, root = colour_moments(images)
    return (mean - target_mean.to(mean.dtype)).pow(2).mean(dim=1) + \
        (root - target_root.to(root.dtype)).pow(2).mean(dim=(1, 2))


class PerceptualLoss(nn.Module):
    """Content + style + TV (+ colour) loss against one or several style images, with their Grams cached.

    ``content_layers`` / ``style_layers`` map tap names to per-layer weights.
    ``style_image`` is one image (1, 3, H, W), or a sequence of S of them (each its own
    size) for S styles. Their Gram matrices are computed once in ``__init__`` and kept
    as buffers ``style_grams.<layer>`` of shape (S, C, C), row s for style s ((1, C, C)
    for one style; they travel with ``.to(device)`` and DDP ranks), and their colour
    moments as ``colour_mean`` (S, 3) and ``colour_root`` (S, 3, 3).

    ``forward(output, content, style_index=None)`` takes the transform net's output and
    the content batch, both (N, 3, H, W) in [0, 1], and for several styles
    ``style_index`` (N,) (long): the row of the style image n is compared with. It
    returns a dict of tensors ``content``, ``style``, ``tv``, ``colour`` (scalars, each
    already multiplied by its weight; ``colour`` is 0, not computed, while its weight is
    0), ``total`` and ``style_per_image`` (N,): the weighted style
    loss of each image, whose mean is ``style``.

    The content targets need only the content taps: by default they come from a
    separate no-grad pass that stops at the deepest content layer (relu2_2: about a
    third of the relu4_3 stack), while the output runs the whole stack with a graph.
    With ``batched=True`` output and content go through the shared prefix (up to the
    deepest content layer) as one concatenated batch of 2N, and the output half
    alone continues to the deeper style taps; fewer, larger kernels, but the
    backward through that prefix then also runs over the content half (slower on
    a CPU, see docs/results.md "Training speed").
    """

    def __init__(
        self,
        *,
        loss_net: VGGFeatures,
        style_image: torch.Tensor | Sequence[torch.Tensor],
        content_layers: Mapping[str, float],
        style_layers: Mapping[str, float],
        content_weight: float,
        style_weight: float,
        tv_weight: float,
        colour_weight: float = 0.0,
        batched: bool = False,
    ):
        super().__init__()
        self.loss_net = loss_net
        self.content_layers = dict(content_layers)
        self.style_layers = dict(style_layers)
        self.content_weight = float(content_weight)
        self.style_weight = float(style_weight)
        self.tv_weight = float(tv_weight)
        self.colour_weight = float(colour_weight)
        self.batched = batched
        missing = (set(self.content_layers) | set(self.style_layers)) - set(loss_net.layers)
        if missing:
            raise ValueError(f"loss network does not tap {sorted(missing)}")
        images = [style_image] if isinstance(style_image, torch.Tensor) else list(style_image)
        if not images:
            raise ValueError("no style image: give one (1, 3, H, W) tensor or a list of them")
        grams: dict[str, list[torch.Tensor]] = {layer: [] for layer in self.style_layers}
        with torch.no_grad():
            for image in images:  # one at a time: the images may differ in size, and memory stays that of one
                features = loss_net(image)
                for layer in self.style_layers:
                    grams[layer].append(gram_matrix(features[layer]))
        self.style_grams = nn.Module()
        for layer in self.style_layers:
            self.style_grams.register_buffer(layer, torch.cat(grams[layer]))
        # not in the state dict: recomputed from the paintings, so checkpoints from before the term still load
        moments = [colour_moments(image) for image in images]
        self.register_buffer("colour_mean", torch.cat([mean for mean, _ in moments]), persistent=False)
        self.register_buffer("colour_root", torch.cat([root for _, root in moments]), persistent=False)

    @classmethod
    def from_config(cls, *, loss: Mapping, loss_net: Mapping,
                    style_image: torch.Tensor | Sequence[torch.Tensor]) -> PerceptualLoss:
        """From the ``loss`` and ``loss_net`` config groups as plain dicts (the VGGFeatures too)."""
        vgg = VGGFeatures(layers=[*loss["content_layers"], *loss["style_layers"]], **dict(loss_net))
        return cls(loss_net=vgg, style_image=style_image, content_layers=loss["content_layers"],
                   style_layers=loss["style_layers"], content_weight=loss["content_weight"],
                   style_weight=loss["style_weight"], tv_weight=loss["tv_weight"],
                   colour_weight=float(loss.get("colour_weight") or 0.0), batched=bool(loss.get("batched")))

    def grams(self) -> dict[str, torch.Tensor]:
        """The style targets, {layer: (S, C, C)}."""
        return {layer: getattr(self.style_grams, layer) for layer in self.style_layers}

    @property
    def num_styles(self) -> int:
        """S, the number of style images the targets were computed from."""
        return int(next(iter(self.grams().values())).shape[0])

    def features(self, output: torch.Tensor, content: torch.Tensor) -> tuple[dict, dict]:
        """(output features at every tap, content features at the content taps)."""
        net, content_taps = self.loss_net, list(self.content_layers)
        if not self.batched:
            with torch.no_grad():
                content_feats = net.taps(content, content_taps)
            return net.taps(output, net.layers), content_feats
        n = output.shape[0]
        split = max(content_taps, key=net.names.index)
        prefix = [name for name in net.layers if net.names.index(name) <= net.names.index(split)]
        both = net.taps(torch.cat([output, content.to(output.dtype)]), prefix)
        out_feats = {name: value[:n] for name, value in both.items()}
        content_feats = {name: both[name][n:].detach() for name in content_taps}
        deeper = [name for name in net.layers if name not in prefix]
        if deeper:
            out_feats.update(net.taps(out_feats[split], deeper, after=split))
        return out_feats, content_feats

    def forward(self, output: torch.Tensor, content: torch.Tensor,
                style_index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The loss terms (class docstring); ``style_index`` (N,) picks each image's style
        target, needed when there are several styles (one style: every image's)."""
        grams, colour_mean, colour_root = self.grams(), self.colour_mean, self.colour_root
        if style_index is not None:
            grams = {layer: gram[style_index] for layer, gram in grams.items()}  # (N, C, C)
            colour_mean, colour_root = colour_mean[style_index], colour_root[style_index]
        elif self.num_styles > 1:
            raise ValueError(f"the loss holds {self.num_styles} style targets: pass style_index (N,)")
        out_feats, content_feats = self.features(output, content)
        with full_precision(output.device):
            style_per_image = self.style_weight * style_loss_per_image(out_feats, grams, self.style_layers)
            losses = {
                "content": self.content_weight * content_loss(out_feats, content_feats, self.content_layers),
                "style": style_per_image.mean(),
                "tv": self.tv_weight * total_variation(output),
                "colour": (self.colour_weight * colour_loss_per_image(output, colour_mean, colour_root).mean()
                           if self.colour_weight else output.new_zeros((), dtype=style_per_image.dtype)),
            }
            losses["total"] = losses["content"] + losses["style"] + losses["tv"] + losses["colour"]
        losses["style_per_image"] = style_per_image
        return losses
