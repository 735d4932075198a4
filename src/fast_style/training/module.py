"""The LightningModule: one TransformerNet trained against one style image, or several.

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

Several styles (``styles``, a network with conditional instance norm): every image of
a batch is stylized with one style and compared with that style's Grams. Which one is a
fixed, balanced schedule (:func:`style_schedule`): image i of step t on DDP rank r of W,
with a batch of N per rank, takes ``order[(t*N*W + r*N + i) % K]`` of the K styles being
trained, ``order`` a permutation of them drawn once from ``schedule_seed``. Why: with
N >= K every step covers every style, so the shared convolutions are never pulled
towards one style for a whole step and every style's norm rows get a gradient every step
(4 random draws for 4 styles leave one out of the step 91% of the time: 1 - 4!/4^4);
the ranks of a DDP step continue the sequence, so together they cover different styles;
and the schedule depends on the step alone, so a resumed run draws what the uninterrupted
run would have. The transform net gets one-hot style weights (N, S). Logged besides
``train/style``: ``train/style/<name>``, the mean style loss of that style's images in
the step. ``frozen_styles`` = F > 0 (``finetune_from``, :mod:`.finetune`): styles 0 .. F-1
are the file's and are not trained (not drawn, no Grams); the optimizer gets only the
norms' scale and shift, and their old rows get a zero gradient (bit for bit unchanged).

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
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from fast_style.devices import native_bf16
from fast_style.errors import FastStyleError
from fast_style.nn.losses import PerceptualLoss
from fast_style.nn.temporal import second_view, temporal_loss
from fast_style.nn.transformer import ConditionalInstanceNorm2d, TransformerNet, build_transformer
from fast_style.training.finetune import freeze_old_styles

LOSS_NET_PREFIX = "loss.loss_net."
LR_SCHEDULES = ("constant", "cosine")
log = logging.getLogger(__name__)


def style_order(count: int, seed: int) -> list[int]:
    """A permutation of ``range(count)`` fixed by ``seed``: the order the schedule cycles through."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(int(seed))).tolist()


def style_schedule(step: int, batch: int, *, rank: int = 0, world_size: int = 1, order: Sequence[int]) -> list[int]:
    """The style of each image of a batch: image i of ``step`` t on ``rank`` r of ``world_size`` W,
    ``batch`` N images per rank, gets ``order[(t*N*W + r*N + i) % len(order)]`` (module docstring)."""
    start = (step * world_size + rank) * batch
    return [order[(start + i) % len(order)] for i in range(batch)]


class StyleTransferModule(pl.LightningModule):
    """Keyword arguments are the plain-dict config groups (all saved as hyper-parameters):

    - ``model``: TransformerNet kwargs (width, num_residual, norm, upsample).
    - ``loss``: content_layers / style_layers ({tap: weight}), content_weight,
      style_weight, tv_weight, batched (one VGG pass for output and content),
      temporal_weight (optional, default 0: the temporal stability term, off), colour_weight
      (optional, default 0: the painting's pixel mean and covariance, off).
    - ``loss_net``: VGGFeatures kwargs (arch, pretrained, weights, seed, pool).
    - ``style``: name, sha256, ... (kept for the exported model's metadata).
    - ``styles``: the names of the network's S styles in order (None: one style); the
      model config then has ``num_styles`` = S. ``frozen_styles``: how many of them (the
      first) come from ``finetune_from`` and are not trained; ``schedule_seed``: draws the
      schedule's order (module docstring).
    - ``lr``: Adam learning rate; ``style_lr``: the learning rate of the conditional norms'
      per-style scale and shift (None: ``lr``; a one-style network has none); ``lr_schedule``: ``constant`` (the paper) or ``cosine``
      (decays to 0 at the run's last step, stepped every step); ``channels_last``: NHWC
      memory format for both nets (``true``) or for the loss network only (``"loss_net"``);
      ``compile``: torch.compile the transform net and the loss.
    - ``style_image``: (1, 3, H, W) in [0, 1], or one such image per trained style (each
      its own size), used once to compute the style Grams (not saved as a hyper-parameter).
    """

    def __init__(
        self,
        *,
        model: dict[str, Any],
        loss: dict[str, Any],
        loss_net: dict[str, Any],
        style: dict[str, Any],
        style_image: torch.Tensor | Sequence[torch.Tensor],
        styles: Sequence[str] | None = None,
        frozen_styles: int = 0,
        schedule_seed: int = 0,
        lr: float = 1e-3,
        lr_schedule: str = "constant",
        style_lr: float | None = None,
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
        count = self.transformer.num_styles
        self.style_names = list(styles) if styles else [str(style.get("name") or "")]
        self.frozen_styles = int(frozen_styles)
        if len(self.style_names) != count or self.loss.num_styles != count - self.frozen_styles:
            raise ValueError(f"{len(self.style_names)} style names and {self.loss.num_styles} style images for a "
                             f"network of {count} styles of which {self.frozen_styles} are frozen")
        self.order = style_order(self.loss.num_styles, schedule_seed)
        if self.frozen_styles:
            freeze_old_styles(self.transformer, self.frozen_styles)
        self.hparams["loss_net_source"] = self.loss.loss_net.source
        self.lr = lr
        if lr_schedule not in LR_SCHEDULES:
            raise FastStyleError(f"lr_schedule={lr_schedule!r}: use one of {', '.join(LR_SCHEDULES)}")
        self.lr_schedule = lr_schedule
        self.style_lr = style_lr
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

    def forward(self, images: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        return self.transformer(self._layout(images), style)

    def batch_styles(self, batch: int, batch_idx: int) -> list[int] | None:
        """The trained style (index into the loss' targets) of each image of this step's batch
        (:func:`style_schedule`), or None for a one-style network."""
        if self.transformer.num_styles == 1:
            return None
        trainer = self._trainer
        accumulate = trainer.accumulate_grad_batches if trainer is not None else 1
        world_size = trainer.world_size if trainer is not None else 1
        step = self.global_step * accumulate + batch_idx % accumulate  # one schedule step per batch
        return style_schedule(step, batch, rank=self.global_rank, world_size=world_size, order=self.order)

    def style_weights(self, style_index: torch.Tensor | None) -> torch.Tensor | None:
        """One-hot weights (N, S) over the network's styles for loss targets ``style_index`` (N,)."""
        if style_index is None:
            return None
        return F.one_hot(style_index + self.frozen_styles, self.transformer.num_styles).float()

    def step_losses(self, batch: torch.Tensor, style_index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Loss terms of one step on a content batch (N, 3, S, S) in [0, 1], image n stylized
        with (and compared with) trained style ``style_index[n]`` (None: the one style):
        scalar content, style, tv, colour (0 when off), (temporal when ``loss.temporal_weight`` > 0) and their
        total, and ``style_per_image`` (N,)."""
        batch = self._layout(batch)
        weights = self.style_weights(style_index)
        if not self.temporal_weight:
            return self.loss(self.transformer(batch, weights), batch, style_index)
        view = second_view(batch)
        first, second = self._stylize_views(batch, view.images, weights)
        losses = self.loss(first, batch, style_index)
        temporal = self.temporal_weight * temporal_loss(second, first, view.theta, view.mask)
        return {**{k: v for k, v in losses.items() if k != "total"}, "temporal": temporal,
                "total": losses["total"] + temporal}

    def _stylize_views(self, first: torch.Tensor, second: torch.Tensor,
                       weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(T(first), T(second)), both (N, 3, S, S), both views with the same style ``weights``:
        one pass over the 2N images when the norm is per sample (instance norm: the same as
        two separate passes), else two."""
        if self.transformer.config["norm"] != "instance":
            return self.transformer(first, weights), self.transformer(self._layout(second), weights)
        both_weights = None if weights is None else torch.cat([weights, weights])
        both = self.transformer(self._layout(torch.cat([first, second.to(first.dtype)])), both_weights)
        return both[: first.shape[0]], both[first.shape[0]:]

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        styles = self.batch_styles(batch.shape[0], batch_idx)
        index = None if styles is None else torch.tensor(styles).to(batch.device, non_blocking=True)
        losses = self.step_losses(batch, index)
        unlogged = ("total", "style_per_image") if self.loss.colour_weight else ("total", "style_per_image", "colour")
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k not in unlogged}, on_step=True)
        if styles is not None:
            self._log_per_style(losses["style_per_image"].detach(), index, Counter(styles))
        on_cpu = losses["total"].device.type == "cpu"
        self.log("train/total", losses["total"], on_step=True, prog_bar=on_cpu)
        return losses["total"]

    def _log_per_style(self, per_image: torch.Tensor, index: torch.Tensor, counts: Counter) -> None:
        """``train/style/<name>``: the mean style loss of the images of each style in the step
        (counted on the host from the schedule, summed on the device: no host sync)."""
        sums = torch.zeros(self.loss.num_styles, device=per_image.device, dtype=per_image.dtype)
        sums = sums.index_add(0, index, per_image)
        for k, count in sorted(counts.items()):
            self.log(f"train/style/{self.style_names[self.frozen_styles + k]}", sums[k] / count, on_step=True)

    def on_train_start(self) -> None:
        # a resumed run says where it resumed (requeued SLURM jobs are checked by it)
        log.info("training from step %d to %d", self.global_step, self.trainer.max_steps)

    def on_fit_start(self) -> None:
        if self.trainer.precision == "bf16-mixed" and not native_bf16(self.device):
            log.warning("trainer.precision=bf16-mixed on a %s without native bf16: emulated bf16 is "
                        "usually slower than trainer.precision=32-true here", self.device.type.upper())

    def configure_optimizers(self) -> Any:
        # every parameter, or with frozen styles the conditional norms' weight and bias only
        # (no weight decay: the frozen rows' zero gradients then leave them exactly as they are)
        optimizer = torch.optim.Adam(self.parameter_groups(), lr=self.lr)
        if self.lr_schedule == "constant":
            return optimizer
        # cosine: lr(t) = lr * (1 + cos(pi * t / T)) / 2, from lr at step 0 to 0 at the run's
        # last step T (Lightning's estimate from max_steps, or from max_epochs when that ends first)
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The optimizer's groups: the trainable parameters at ``lr``, and with ``style_lr``
        the conditional norms' scale and shift (the per-style rows) at ``style_lr``."""
        rows = {id(p) for m in self.transformer.modules() if isinstance(m, ConditionalInstanceNorm2d)
                for p in (m.weight, m.bias)} if self.style_lr is not None else set()
        trainable = [p for p in self.transformer.parameters() if p.requires_grad]
        groups = [{"params": [p for p in trainable if id(p) not in rows], "lr": self.lr},
                  {"params": [p for p in trainable if id(p) in rows], "lr": self.style_lr}]
        return [group for group in groups if group["params"]]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(LOSS_NET_PREFIX)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key, value in self.loss.loss_net.state_dict().items():
            state.setdefault(LOSS_NET_PREFIX + key, value)
