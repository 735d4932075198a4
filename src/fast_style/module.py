"""The LightningModule: one TransformerNet trained against one style image.

Each training step stylizes a content batch x (N, 3, S, S) in [0, 1], y = T(x), and
minimises ``PerceptualLoss(y, x)`` (content + style + TV, see ``fast_style.losses``)
with Adam over the transform net's parameters only. Logged every step:
``train/content``, ``train/style``, ``train/tv``, ``train/total``.

The frozen loss network is rebuilt from config on every start and left out of the
``.ckpt`` files (it is tens of MB and never changes); the style Grams are kept in
them, so a resumed run continues against exactly the same targets.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from fast_style.losses import PerceptualLoss
from fast_style.models.transformer import TransformerNet, build_transformer
from fast_style.models.vgg import VGGFeatures

LOSS_NET_PREFIX = "loss.loss_net."


class StyleTransferModule(pl.LightningModule):
    """Keyword arguments are the plain-dict config groups (all saved as hyper-parameters):

    - ``model``: TransformerNet kwargs (width, num_residual, norm, upsample).
    - ``loss``: content_layers / style_layers ({tap: weight}), content_weight,
      style_weight, tv_weight, batched (one VGG pass for output and content).
    - ``loss_net``: VGGFeatures kwargs (arch, pretrained, weights, seed, pool).
    - ``style``: name, sha256, ... (kept for the exported model's metadata).
    - ``lr``: Adam learning rate; ``channels_last``: NHWC memory format for both nets.
    - ``style_image``: (1, 3, H, W) in [0, 1], used once to compute the style Grams
      (not saved as a hyper-parameter).
    """

    def __init__(
        self,
        *,
        model: dict[str, Any],
        loss: dict[str, Any],
        loss_net: dict[str, Any],
        style: dict[str, Any],
        style_image: torch.Tensor,
        lr: float = 1e-3,
        channels_last: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["style_image"])
        self.transformer: TransformerNet = build_transformer(model)
        layers = list(loss["content_layers"]) + list(loss["style_layers"])
        vgg = VGGFeatures(layers=layers, **loss_net)
        self.hparams["loss_net_source"] = vgg.source
        self.loss = PerceptualLoss(
            loss_net=vgg,
            style_image=style_image,
            content_layers=loss["content_layers"],
            style_layers=loss["style_layers"],
            content_weight=loss["content_weight"],
            style_weight=loss["style_weight"],
            tv_weight=loss["tv_weight"],
            batched=bool(loss.get("batched", False)),
        )
        self.lr = lr
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.transformer(images)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        losses = self.loss(self(batch), batch)
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "total"}, on_step=True)
        self.log("train/total", losses["total"], on_step=True, prog_bar=True)
        return losses["total"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.transformer.parameters(), lr=self.lr)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(LOSS_NET_PREFIX)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key, value in self.loss.loss_net.state_dict().items():
            state.setdefault(LOSS_NET_PREFIX + key, value)
