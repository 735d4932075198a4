"""The LightningModule: one TransformerNet trained against one style image.

Each training step stylizes a content batch x (N, 3, S, S) in [0, 1], y = T(x), and
minimises ``PerceptualLoss(y, x)`` (content + style + TV, see ``fast_style.nn.losses``)
with Adam over the transform net's parameters only. Logged every step:
``train/content``, ``train/style``, ``train/tv``, ``train/total``.

With ``loss.temporal_weight`` w_t > 0 (default 0: off, and then nothing below runs)
each step also makes a second view x2 of the batch by a known random motion W plus
camera noise (``fast_style.nn.temporal``), stylizes it, and adds
``L_t = w_t * mean over valid pixels of (T(x2) - W(T(x)))^2`` to the total, logged as
``train/temporal``. Content, style and TV stay on the first view. With instance norm
(per sample) both views go through the transform net as one batch of 2N; with batch
norm, whose statistics would mix the views, in two passes.

The frozen loss network is rebuilt from config on every start and left out of the
``.ckpt`` files (it is tens of MB and never changes); the style Grams are kept in
them, so a resumed run continues against exactly the same targets.

Speed switches (off in the signature; the trainer configs turn on the ones that are
faster, measured in docs/results.md "Training speed"): ``channels_last`` (``true``: both
networks and the batch; ``"loss_net"``: VGG only, faster on CPUs), ``compile``
(torch.compile of the transform net and the loss, in place: checkpoint keys unchanged),
the Trainer's ``precision=bf16-mixed`` (losses stay fp32, see ``fast_style.nn.losses``)
and ``loss.batched``.

No step reads a value back to the host: losses are logged as tensors, and on an
accelerator the total is kept off the progress bar, because Lightning converts
progress-bar values with ``.item()`` after every batch (a host-device sync).
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch

from fast_style.devices import native_bf16
from fast_style.errors import FastStyleError
from fast_style.nn.losses import PerceptualLoss
from fast_style.nn.temporal import second_view, temporal_loss
from fast_style.nn.transformer import TransformerNet, build_transformer

LOSS_NET_PREFIX = "loss.loss_net."
LR_SCHEDULES = ("constant", "cosine")
log = logging.getLogger(__name__)


class StyleTransferModule(pl.LightningModule):
    """Keyword arguments are the plain-dict config groups (all saved as hyper-parameters):

    - ``model``: TransformerNet kwargs (width, num_residual, norm, upsample).
    - ``loss``: content_layers / style_layers ({tap: weight}), content_weight,
      style_weight, tv_weight, batched (one VGG pass for output and content),
      temporal_weight (optional, default 0: the temporal stability term, off).
    - ``loss_net``: VGGFeatures kwargs (arch, pretrained, weights, seed, pool).
    - ``style``: name, sha256, ... (kept for the exported model's metadata).
    - ``lr``: Adam learning rate; ``lr_schedule``: ``constant`` (the paper) or ``cosine``
      (decays to 0 at the run's last step, stepped every step); ``channels_last``: NHWC
      memory format for both nets (``true``) or for the loss network only (``"loss_net"``);
      ``compile``: torch.compile the transform net and the loss.
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
        lr_schedule: str = "constant",
        channels_last: bool | str = False,
        compile: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["style_image"])
        self.temporal_weight = float(loss.get("temporal_weight") or 0.0)
        if self.temporal_weight < 0:
            raise FastStyleError(f"loss.temporal_weight={self.temporal_weight}: must be 0 (term off) or more")
        self.transformer: TransformerNet = build_transformer(model)
        self.loss = PerceptualLoss.from_config(loss=loss, loss_net=loss_net, style_image=style_image)
        self.hparams["loss_net_source"] = self.loss.loss_net.source
        self.lr = lr
        if lr_schedule not in LR_SCHEDULES:
            raise FastStyleError(f"lr_schedule={lr_schedule!r}: use one of {', '.join(LR_SCHEDULES)}")
        self.lr_schedule = lr_schedule
        if channels_last not in (True, False, "loss_net"):
            raise ValueError(f"channels_last={channels_last!r}: use true, false or loss_net")
        self.channels_last = channels_last is True
        if channels_last:
            (self if self.channels_last else self.loss).to(memory_format=torch.channels_last)
        if compile:
            self.transformer.compile()
            self.loss.compile()

    def _layout(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.transformer(self._layout(images))

    def step_losses(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss terms (scalar tensors) of one step on a content batch (N, 3, S, S) in [0, 1]:
        content, style, tv, (temporal when ``loss.temporal_weight`` > 0) and their total."""
        batch = self._layout(batch)
        if not self.temporal_weight:
            return self.loss(self.transformer(batch), batch)
        view = second_view(batch)
        first, second = self._stylize_views(batch, view.images)
        losses = self.loss(first, batch)
        temporal = self.temporal_weight * temporal_loss(second, first, view.theta, view.mask)
        return {**{k: v for k, v in losses.items() if k != "total"}, "temporal": temporal,
                "total": losses["total"] + temporal}

    def _stylize_views(self, first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(T(first), T(second)), both (N, 3, S, S): one pass over the 2N images when the
        norm is per sample (instance norm: the same as two separate passes), else two."""
        if self.transformer.config["norm"] != "instance":
            return self.transformer(first), self.transformer(self._layout(second))
        both = self.transformer(self._layout(torch.cat([first, second.to(first.dtype)])))
        return both[: first.shape[0]], both[first.shape[0]:]

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        losses = self.step_losses(batch)
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "total"}, on_step=True)
        on_cpu = losses["total"].device.type == "cpu"
        self.log("train/total", losses["total"], on_step=True, prog_bar=on_cpu)
        return losses["total"]

    def on_train_start(self) -> None:
        # a resumed run says where it resumed (requeued SLURM jobs are checked by it)
        log.info("training from step %d to %d", self.global_step, self.trainer.max_steps)

    def on_fit_start(self) -> None:
        if self.trainer.precision == "bf16-mixed" and not native_bf16(self.device):
            log.warning("trainer.precision=bf16-mixed on a %s without native bf16: emulated bf16 is "
                        "usually slower than trainer.precision=32-true here", self.device.type.upper())

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.transformer.parameters(), lr=self.lr)
        if self.lr_schedule == "constant":
            return optimizer
        # cosine: lr(t) = lr * (1 + cos(pi * t / T)) / 2, from lr at step 0 to 0 at the run's
        # last step T (Lightning's estimate from max_steps, or from max_epochs when that ends first)
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(LOSS_NET_PREFIX)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key, value in self.loss.loss_net.state_dict().items():
            state.setdefault(LOSS_NET_PREFIX + key, value)
