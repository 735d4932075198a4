"""The optimisation baseline (Gatys et al. 2016): stylize one photo by optimising its pixels.

Given a content photo x and a style image s, both (1, 3, H, W) in [0, 1], find

    y* = argmin_y  L(y, x) = L_c(y, x) + L_s(y, s) + L_tv(y)

with the very loss modules training uses (:class:`fast_style.nn.losses.PerceptualLoss`
on a :class:`fast_style.nn.vgg.VGGFeatures`; formulas in ``fast_style.nn.losses``).
Only the pixels of y are free; the loss network is frozen.

- Start (``init``): ``content`` (y_0 = x) or ``noise`` (y_0 ~ U[0, 1], seeded).
- Optimiser: ``lbfgs`` (Gatys; history 100, strong-Wolfe line search; the loss at the
  accepted point is reused, never recomputed) or ``adam`` (one evaluation per step).
- Constraint: y = sigmoid(z), optimised in z; z_0 = logit(clamp(y_0, e, 1 - e)) with
  e = 0.5 / 255, so every image is inside (0, 1) and every reported loss is that of
  the saved image (clamping after each step breaks L-BFGS' curvature pairs).

:func:`optimize_pixels` records the loss after every iteration k = 0 .. N (k = 0 is
the start) and the optimiser's cumulative wall time, so one run of N iterations also
gives the loss and time at every smaller count (what ``scripts/evaluate.py`` needs).
:func:`optimize` is ``python optimize.py``: the composed ``configs/optimize.yaml`` (schema: ``fast_style.config.OptimizeConfig``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from fast_style.devices import resolve_device
from fast_style.errors import FastStyleError
from fast_style.io.images import load_image, save_image
from fast_style.nn.losses import PERCEPTUAL_KEYS, PerceptualLoss
from fast_style.training.styles import resolve_style_image

log = logging.getLogger(__name__)

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.1}
EPS = 0.5 / 255
LOSS_KEYS = PERCEPTUAL_KEYS  # content, style, tv, colour (nn.losses.LOSS_TERMS) and total


class OptimizeOptionError(FastStyleError):
    """An unusable option of the pixel optimisation."""


class PhotoLoss(PerceptualLoss):
    """:class:`PerceptualLoss` against one fixed photo: its content targets are computed once.

    After :meth:`fix_content` (x of shape (1, 3, H, W)), a call ``loss(y, x)`` with that
    same tensor x runs the loss network on y only; any other content tensor takes the
    ordinary path. The values are those of ``PerceptualLoss`` either way.
    """

    _fixed: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = None

    def fix_content(self, content: torch.Tensor) -> None:
        with torch.no_grad():
            features = self.loss_net(content)
        self._fixed = (content, {name: features[name] for name in self.content_layers})

    def features(self, output: torch.Tensor, content: torch.Tensor) -> tuple[dict, dict]:
        if self._fixed is not None and content is self._fixed[0]:
            return self.loss_net(output), self._fixed[1]
        return super().features(output, content)


def build_loss(
    *, loss: Mapping[str, Any], loss_net: Mapping[str, Any], style_image: torch.Tensor, device: torch.device
) -> PhotoLoss:
    """The loss of a ``loss`` config group against ``style_image`` (1, 3, H, W), on ``device``.

    ``loss_net`` holds :class:`VGGFeatures` keyword arguments (arch, pretrained, weights,
    seed, pool); pretrained weights that cannot be had raise its one-line error.
    """
    return PhotoLoss.from_config(loss=loss, loss_net=loss_net, style_image=style_image).to(device)


def initial_image(content: torch.Tensor, *, init: str = "content", seed: int = 0) -> torch.Tensor:
    """y_0 for the optimisation: a copy of ``content`` or seeded U[0, 1] noise of its shape."""
    if init == "content":
        return content.detach().clone(memory_format=torch.contiguous_format)
    if init == "noise":
        generator = torch.Generator().manual_seed(seed)
        return torch.rand(content.shape, generator=generator).to(content.device, content.dtype)
    raise OptimizeOptionError(f"init={init}: use one of {', '.join(INITS)}")


def to_logits(image: torch.Tensor) -> torch.Tensor:
    """z = logit(clamp(y, e, 1 - e)), e = 0.5 / 255: the inverse of ``torch.sigmoid`` on images."""
    return torch.logit(image.clamp(EPS, 1 - EPS))


def make_optimizer(params: torch.Tensor, *, name: str, lr: float | None) -> torch.optim.Optimizer:
    """L-BFGS (one iteration per ``step``, history 100, strong-Wolfe line search) or Adam over ``params``.

    Default ``lr``: 1 for L-BFGS, 0.1 for Adam (a step of 0.1 in z moves a mid-grey
    pixel by 0.025)."""
    if name not in OPTIMIZERS:
        raise OptimizeOptionError(f"optimizer={name}: use one of {', '.join(OPTIMIZERS)}")
    lr = DEFAULT_LR[name] if lr is None else float(lr)
    if lr <= 0:
        raise OptimizeOptionError(f"lr={lr}: must be positive")
    if name == "lbfgs":
        return torch.optim.LBFGS(
            [params], lr=lr, max_iter=1, history_size=100, tolerance_grad=0.0, tolerance_change=0.0,
            # max_eval bounds the line search per step; its default (1.25 max_iter) would forbid it
            max_eval=26, line_search_fn="strong_wolfe",
        )
    return torch.optim.Adam([params], lr=lr)


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so wall times measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class OptimizationResult:
    """``image`` (1, 3, H, W) in (0, 1) after ``iterations`` steps; ``losses[k]`` and
    ``seconds[k]`` are the loss terms of the image after k steps and the optimiser's
    cumulative wall time up to then (k = 0 .. iterations; ``seconds[0] = 0``);
    ``evaluations`` counts loss + gradient evaluations."""

    image: torch.Tensor
    iterations: int
    losses: list[dict[str, float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    evaluations: int = 0


def optimize_pixels(
    *,
    loss: PerceptualLoss,
    content: torch.Tensor,
    iterations: int,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    init: str = "content",
    seed: int = 0,
    on_step: Callable[[int, torch.Tensor, dict[str, float]], None] | None = None,
) -> OptimizationResult:
    """Minimise ``loss(y, content)`` over y = sigmoid(z) for ``iterations`` steps.

    ``content`` is (1, 3, H, W) in [0, 1] on the loss's device. After step k
    (1 .. iterations) ``on_step(k, y, terms)`` is called with the image and the loss
    terms of the latest evaluation (at the image after k - 1 steps: the loss after k
    steps is known only at the next evaluation). The time spent in ``on_step`` and in
    the final loss evaluation is not counted in ``seconds``.
    """
    if iterations < 0:
        raise OptimizeOptionError(f"iterations={iterations}: must be 0 or more")
    if isinstance(loss, PhotoLoss):
        loss.fix_content(content)
    logits = to_logits(initial_image(content, init=init, seed=seed)).requires_grad_(True)
    opt = make_optimizer(logits, name=optimizer, lr=lr)
    result = OptimizationResult(image=content, iterations=iterations, seconds=[0.0])
    record: list[dict[str, float]] = []
    last: dict[str, Any] = {}

    def closure() -> torch.Tensor:
        # L-BFGS starts each step by evaluating the point its last line search accepted:
        # answer from the cache instead of a second forward and backward pass
        if last and torch.equal(last["at"], logits.detach()):
            logits.grad = last["grad"].clone()
            terms, total = last["terms"], last["total"]
        else:
            opt.zero_grad(set_to_none=True)
            losses = loss(torch.sigmoid(logits), content)
            losses["total"].backward()
            result.evaluations += 1
            terms, total = {k: float(losses[k].detach()) for k in LOSS_KEYS}, losses["total"].detach()
            if optimizer == "lbfgs":
                last.update(at=logits.detach().clone(), grad=logits.grad.detach().clone(), terms=terms, total=total)
        if not record:  # the first evaluation of a step is at the current image
            record.append(terms)
        return total

    elapsed = 0.0
    for k in range(1, iterations + 1):
        record.clear()
        sync(content.device)
        start = time.perf_counter()
        if optimizer == "lbfgs":
            opt.step(closure)
        else:
            closure()
            opt.step()
        sync(content.device)
        elapsed += time.perf_counter() - start
        result.losses.append(record[0])  # the loss after k - 1 steps
        result.seconds.append(elapsed)
        if on_step is not None:
            with torch.no_grad():
                on_step(k, torch.sigmoid(logits), record[0])
    with torch.no_grad():
        result.image = torch.sigmoid(logits)
        final = loss(result.image, content)
    result.losses.append({k: float(final[k]) for k in LOSS_KEYS})
    return result


# ---------------------------------------------------------------------------- python optimize.py


def default_output(content: Path, style_name: str) -> Path:
    """``<photo folder>/<photo stem>_<style>_optimized.png``."""
    return content.with_name(f"{content.stem}_{style_name}_optimized.png")


def intermediate_path(output: Path, iteration: int) -> Path:
    """``<output stem>_iter<k, 5 digits><suffix>`` beside ``output``."""
    return output.with_name(f"{output.stem}_iter{iteration:05d}{output.suffix}")


def _check_targets(cfg: DictConfig, output: Path) -> list[Path]:
    """All files this run will write; an existing one is an error unless ``overwrite``."""
    every = int(cfg.get("save_every") or 0)
    if every < 0:
        raise OptimizeOptionError(f"save_every={every}: must be 0 (off) or a positive number of iterations")
    targets = [intermediate_path(output, k) for k in range(every, int(cfg.iterations), every)] if every else []
    targets.append(output)
    if not output.parent.is_dir():
        raise OptimizeOptionError(f"output={output}: folder {output.parent} does not exist; create it or choose another output")
    if not cfg.get("overwrite"):
        existing = [path for path in targets if path.exists()]
        if existing:
            raise OptimizeOptionError(f"{existing[0]} exists; pass overwrite=true to replace it, or choose another output")
    return targets


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, disable=not enabled)


def _format_losses(terms: Mapping[str, float]) -> str:
    return f"{terms['total']:.4g} (content {terms['content']:.3g}, style {terms['style']:.3g}, tv {terms['tv']:.3g})"


def optimize(cfg: DictConfig) -> Path:
    """``python optimize.py``: stylize ``cfg.content`` by pixel optimisation; returns the output path."""
    content_path = Path(str(cfg.content)).expanduser()
    style = OmegaConf.to_container(cfg.style, resolve=True)
    output = Path(str(cfg.output)).expanduser() if cfg.get("output") else default_output(content_path, style["name"])
    if cfg.optimizer not in OPTIMIZERS:
        raise OptimizeOptionError(f"optimizer={cfg.optimizer}: use one of {', '.join(OPTIMIZERS)}")
    if cfg.init not in INITS:
        raise OptimizeOptionError(f"init={cfg.init}: use one of {', '.join(INITS)}")
    every = int(cfg.get("save_every") or 0)
    _check_targets(cfg, output)

    device = resolve_device(str(cfg.device))
    photo = load_image(content_path, max_size=cfg.get("size")).unsqueeze(0).to(device)
    style_path = resolve_style_image(style_dir=cfg.paths.style_dir, **style)
    style_image = load_image(style_path, max_size=style.get("size")).unsqueeze(0)
    loss = build_loss(
        loss=OmegaConf.to_container(cfg.loss, resolve=True),
        loss_net=OmegaConf.to_container(cfg.loss_net, resolve=True),
        style_image=style_image,
        device=device,
    )
    log.info("loss network: %s %s", cfg.loss_net.arch, loss.loss_net.source)
    print(
        f"{content_path} ({photo.shape[-1]}x{photo.shape[-2]}) in the style of {style['name']}: "
        f"{cfg.optimizer} x {cfg.iterations}, from the {cfg.init}, "
        f"loss network {cfg.loss_net.arch} {loss.loss_net.source}"
    )

    with _progress(bool(cfg.get("progress", True))) as progress:
        task = progress.add_task("optimizing", total=int(cfg.iterations), loss="-")

        def on_step(k: int, image: torch.Tensor, terms: dict[str, float]) -> None:
            progress.update(task, advance=1, loss=f"{terms['total']:.4g}")
            if every and k % every == 0 and k < int(cfg.iterations):
                save_image(image[0].cpu(), intermediate_path(output, k))

        result = optimize_pixels(
            loss=loss,
            content=photo,
            iterations=int(cfg.iterations),
            optimizer=str(cfg.optimizer),
            lr=cfg.get("lr"),
            init=str(cfg.init),
            seed=int(cfg.get("seed") or 0),
            on_step=on_step,
        )
    save_image(result.image[0].cpu(), output)
    start, end = result.losses[0], result.losses[-1]
    print(
        f"loss {_format_losses(start)} -> {_format_losses(end)} "
        f"in {result.seconds[-1]:.1f} s ({result.evaluations} loss evaluations)"
    )
    print(f"written: {output}")
    return output
