"""Adding styles to a trained network (``finetune_from=``): only the new styles' norm
parameters learn; every other tensor stays exactly as the file has it.

In a network with conditional instance norm (``fast_style.nn.transformer``) a style is
its rows of the norms' scale and shift; the convolutions are shared by all styles.
Dumoulin, Shlens and Kudlur (2017) add a style to a trained network by learning its
rows alone, with everything else frozen. Here, for a file with S styles and K new ones:

- :func:`open_base` opens the file (any PyTorch kind, through
  :func:`fast_style.io.model_files.open_model`) and names its styles (metadata
  ``styles``, or ``style_name`` for a one-style model);
- :func:`grown_arch` is the file's architecture with S + K styles (the file's, whatever
  ``model=`` says);
- :func:`copy_base` copies every tensor of the file into the grown network: the old norm
  rows into rows 0 .. S-1 (a one-style model's (C,) norms become row 0) and each new
  row starts as the mean of the old rows, ``gamma_new = mean_s gamma_s`` (likewise beta);
- :func:`freeze_old_styles` switches ``requires_grad`` off for every parameter but the
  conditional norms' ``weight`` and ``bias`` (the optimizer gets only those), and
  zeroes the gradient of their rows 0 .. S-1 with a hook. Adam without weight decay
  then never moves those rows: their moments stay m = v = 0 and the update
  ``lr * m_hat / (sqrt(v_hat) + eps)`` is exactly 0, so the old styles' tensors, and
  their images, stay bit for bit the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from fast_style.errors import FastStyleError
from fast_style.io.model_files import open_model
from fast_style.nn.transformer import ConditionalInstanceNorm2d, TransformerNet

log = logging.getLogger(__name__)


class FinetuneError(FastStyleError):
    """The model given by ``finetune_from`` cannot take new styles."""


@dataclass(frozen=True)
class Base:
    """The network a fine-tuning run starts from, and the names of its S styles in order."""

    path: Path
    network: TransformerNet
    names: list[str]


def open_base(path: str | Path, *, new_names: list[str]) -> Base:
    """The network in ``path`` and its style names; one line if it cannot take ``new_names``
    (not a PyTorch model, batch norm, or a name it already holds)."""
    try:
        model = open_model(path)
        network = model.require_network("adding a style (finetune_from=)")
    except FastStyleError as exc:
        raise FinetuneError(f"finetune_from={exc}") from exc
    if network.config["norm"] != "instance":
        raise FinetuneError(f"finetune_from={path}: a batch-norm network (model=transformer_original); styles are "
                            "added to instance-norm networks only (their scale and shift hold the styles)")
    count = network.num_styles
    names = list(model.metadata.styles)
    if len(names) != count:
        names = [model.style_name] if count == 1 else [f"style_{i}" for i in range(count)]
        if count > 1:
            log.warning("finetune_from=%s does not name its %d styles; calling them %s", path, count, ", ".join(names))
    taken = [name for name in new_names if name in names]
    if taken:
        raise FinetuneError(f"finetune_from={path} already holds style {taken[0]!r} (its styles: {', '.join(names)}); "
                            "add styles it does not hold")
    return Base(path=Path(path), network=network, names=names)


def grown_name(base: Base, *, style_name: str, new_names: list[str]) -> str:
    """The fine-tuned model's name: every style's, the file's first (``a+b+new``), unless
    ``style_name`` was set by hand (it differs from the new styles' own ``+``-joined name)."""
    if style_name == "+".join(new_names):
        return "+".join([*base.names, *new_names])
    return style_name


def grown_arch(base: Base, new_styles: int) -> dict[str, object]:
    """The TransformerNet config of ``base``'s network with ``new_styles`` more styles."""
    return {**base.network.config, "num_styles": len(base.names) + new_styles}


def log_arch_choice(base: Base, model: dict[str, object]) -> None:
    """One line when the configured ``model`` differs from the file's architecture (which is used)."""
    differs = {k: v for k, v in base.network.config.items() if k != "num_styles" and model.get(k, v) != v}
    if differs:
        shown = ", ".join(f"{k}={v}" for k, v in base.network.config.items() if k != "num_styles")
        log.info("finetune_from=%s: using the file's architecture (%s), not model=... (%s)", base.path, shown,
                 ", ".join(f"{k}={model.get(k)}" for k in differs))


@torch.no_grad()
def copy_base(network: TransformerNet, base: TransformerNet) -> None:
    """Copy ``base``'s tensors into ``network`` (the same architecture with more styles), in
    place: norm rows 0 .. S-1 from ``base``, every further row the mean of those."""
    old = base.num_styles
    source = base.state_dict()
    for key, target in network.state_dict().items():
        value = source[key].to(target.dtype)
        if value.shape == target.shape:
            target.copy_(value)
            continue
        rows = value.reshape(old, -1)  # a conditional norm's (S, C), or a one-style norm's (C,) as (1, C)
        target[:old].copy_(rows)
        target[old:].copy_(rows.mean(dim=0, keepdim=True).expand_as(target[old:]))


def _zero_rows(grad: torch.Tensor, *, rows: int) -> torch.Tensor:
    grad = grad.clone()
    grad[:rows] = 0
    return grad


def freeze_old_styles(network: TransformerNet, frozen: int) -> list[nn.Parameter]:
    """Freeze everything of ``network`` but the conditional norms' weight and bias, whose rows
    ``0 .. frozen-1`` get a zero gradient (module docstring); the parameters that still learn."""
    trainable = [p for m in network.modules() if isinstance(m, ConditionalInstanceNorm2d) for p in (m.weight, m.bias)]
    learning = {id(p) for p in trainable}
    for parameter in network.parameters():
        parameter.requires_grad_(id(parameter) in learning)
    for parameter in trainable:
        parameter.register_hook(partial(_zero_rows, rows=frozen))
    return trainable
