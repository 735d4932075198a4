"""One network for several styles against one network per style: the multi-style study.

    python scripts/multistyle_study.py [steps=400] [size=96] [train_model=tiny] [styles=[...]] [new_style=...]

Every model is trained by ``train.py`` itself, in a subprocess, with the same settings
(model, crop size, batch, steps, seed, random VGG-16 loss network); then, on held-out
photos (centre squares of ``eval_size`` px, never trained on), with the loss network
and style targets of training (:class:`StyleScorer`):

1. **Four styles in one network.** One one-style model per style (``style=A``) and one
   model of all of them (``style=[A,B,C,D]``), all ``steps`` steps. The multi model's
   batch is ``multi_batch_size`` (default: ``batch_size`` times the number of styles, so
   that each style gets as many images a step as its one-style model does; the
   ``batch_size`` of the one-style models gives each style 1/K of them). Per style: the
   mean weighted style loss ``L_s`` of each model's output; ratio = multi / single (goal:
   at most 1.15), and the parameter counts.
2. **Mixing.** The multi model with weights (1-a, a) of the first two styles for
   a = 0, 1/4, 1/2, 3/4, 1: ``L_s`` against each of the two (goal: monotone in a), and
   the largest pixel difference (in 1/255) between a = 0 and the first style alone.
3. **Adding a style.** A one-style model of ``new_style`` (``steps`` steps) against
   ``finetune_from=<multi> style=[new_style]``, whose checkpoints every
   ``steps / finetune_checkpoints`` steps are scored: the first step at which the new
   style's ``L_s`` reaches the one-style model's (goal: at most steps / 4), and the
   largest pixel difference of the old styles' images before and after (goal: 0).
   ``finetune_lr`` sets the fine-tune's learning rate (default: train.py's).
4. **Deploy.** The multi-style model exported to ONNX in memory (``style_weights`` input),
   run by onnxruntime on the held-out photos for each style alone and a mix: largest
   |ONNX - PyTorch| of the unclamped outputs (goal: at most 1e-4).
5. **Masks.** A mask whose left half is the first style and right half the second: on
   the outer thirds, the mean |difference| to each style's whole-image result; each side
   must be closer to its own.

Writes ``study.json`` and ``table.md`` into ``output_dir`` and prints the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fast_style.evaluation.training_runs import PROJECT, StudyError, style_tensor, train_in_folder
from fast_style.io.images import images_below, square_image
from fast_style.io.model_files import open_model
from fast_style.nn.losses import gram_matrix, style_loss
from fast_style.nn.transformer import TransformerNet
from fast_style.nn.vgg import VGGFeatures

# ---------------------------------------------------------------------------- scoring


class StyleScorer:
    """Weighted style loss of images against each style, under one loss network.

    ``score(images, k) = style_weight * sum_l b_l * mean((G(F_l(y)) - G_l(s_k))^2)``
    averaged over the images (the training loss' style term, :mod:`fast_style.nn.losses`).
    """

    def __init__(self, *, style_images: dict[str, torch.Tensor], loss: dict[str, Any], loss_net: dict[str, Any]):
        self.layers = dict(loss["style_layers"])
        self.weight = float(loss["style_weight"])
        self.net = VGGFeatures(layers=list(self.layers), **loss_net)
        with torch.no_grad():
            self.grams = {name: {layer: gram_matrix(f) for layer, f in self.net(image[None]).items()}
                          for name, image in style_images.items()}

    @torch.no_grad()
    def score(self, images: torch.Tensor, style: str) -> float:
        """Mean over ``images`` (N, 3, H, W) of the weighted style loss against ``style``."""
        features = self.net(images)
        per_image = [self.weight * float(style_loss({k: v[i:i + 1] for k, v in features.items()},
                                                    self.grams[style], self.layers))
                     for i in range(images.shape[0])]
        return sum(per_image) / len(per_image)


def stylize(network: TransformerNet, photos: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The network's clamped output for ``photos`` (N, 3, H, W) with style ``weights``."""
    with torch.inference_mode():
        return network(photos, weights).clamp(0, 1)


def one_hot(index: int, count: int) -> torch.Tensor:
    weights = torch.zeros(count)
    weights[index] = 1.0
    return weights


def parameter_count(network: torch.nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def max_pixel_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest |a - b| over all pixels, in 1/255 units, after rounding both to 8 bits."""
    return float(((a * 255).round() - (b * 255).round()).abs().max())


def mask_halves(network: TransformerNet, photos: torch.Tensor, first: int, second: int) -> dict[str, float]:
    """Left half ``first``, right half ``second``: mean |difference| of each outer third to
    both styles' whole-image results (``left_own``, ``left_other``, ``right_own``, ``right_other``)."""
    n, _, h, w = photos.shape
    count = network.num_styles
    style_map = torch.zeros(n, count, h, w)
    style_map[:, first, :, : w // 2] = 1.0
    style_map[:, second, :, w // 2:] = 1.0
    mixed = stylize(network, photos, style_map)
    whole = {first: stylize(network, photos, one_hot(first, count)),
             second: stylize(network, photos, one_hot(second, count))}
    third = w // 3

    def gap(side: slice, style: int) -> float:
        return float((mixed[..., side] - whole[style][..., side]).abs().mean())

    left, right = slice(0, third), slice(w - third, w)
    return {"left_own": gap(left, first), "left_other": gap(left, second),
            "right_own": gap(right, second), "right_other": gap(right, first)}


# ---------------------------------------------------------------------------- training runs


@dataclass(frozen=True)
class StudySettings:
    """What every run of the study shares (see scripts/multistyle_study.py for the keys)."""

    output_dir: Path
    photos: Path
    style_dir: Path
    steps: int
    size: int
    batch_size: int
    model: str
    seed: int
    extra: tuple[str, ...] = ()
    multi_batch_size: int | None = None  # None: batch_size x the number of styles


def multi_batch(settings: StudySettings, styles: int) -> int:
    """The multi-style model's batch (``multi_batch_size``, or ``batch_size`` per style)."""
    return settings.multi_batch_size or settings.batch_size * styles


def train_run(settings: StudySettings, name: str, overrides: Sequence[str], *,
              batch_size: int | None = None) -> dict[str, Any]:
    """Run ``train.py`` with the study's settings plus ``overrides`` in ``<output_dir>/runs/<name>``,
    with ``batch_size`` (default: the settings'); returns its finished.json (a finished run
    is not trained again)."""
    return train_in_folder(settings.output_dir / "runs" / name, [
        *overrides,
        f"model={settings.model}", "loss_net.pretrained=false", f"seed={settings.seed}",
        f"data.root={settings.photos}", f"data.image_size={settings.size}", f"data.resize={settings.size}",
        f"data.batch_size={batch_size or settings.batch_size}", "data.num_workers=0", "data.hflip=true",
        f"paths.style_dir={settings.style_dir}", *settings.extra,
    ], label=name, steps=settings.steps)


def held_out_photos(paths: Sequence[Path], size: int) -> torch.Tensor:
    """Centre squares of ``size`` px of ``paths`` as (N, 3, size, size)."""
    return torch.stack([square_image(p, size) for p in paths])


def training_folder(source: Path, held_out: Sequence[str], target: Path) -> tuple[Path, list[Path]]:
    """Link every photo of ``source`` except ``held_out`` (file stems) into ``target``;
    returns (target, the held-out photo paths)."""
    photos = images_below(source)
    kept = [p for p in photos if p.stem in held_out]
    if len(kept) != len(set(held_out)):
        missing = sorted(set(held_out) - {p.stem for p in kept})
        raise StudyError(f"held_out photos {missing} are not in {source}; name photos (file stems) that are there")
    target.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        link = target / photo.name
        if photo.stem not in held_out and not link.exists():
            link.symlink_to(photo.resolve())
    return target, kept


# ---------------------------------------------------------------------------- the study


def periodic_checkpoints(run: dict[str, Any]) -> list[tuple[int, Path]]:
    """(step, path) of a run's ``step_*.ckpt`` files, by step."""
    folder = Path(run["output_dir"]) / "checkpoints"
    found = []
    for path in folder.glob("step_*.ckpt"):
        step = int(path.stem.split("_")[1])
        found.append((step, path))
    return sorted(found)


def run_study(settings: StudySettings, *, styles: Sequence[str], new_style: str, held_out: Sequence[Path],
              eval_size: int, finetune_checkpoints: int, finetune_lr: float | None = None) -> dict[str, Any]:
    """Train the study's models and measure them (see the module docstring); returns the report."""
    if len(styles) < 2 or len(set(styles)) != len(styles) or new_style in styles:
        raise StudyError(f"styles={list(styles)} and new_style={new_style}: give at least two distinct styles "
                         "and a new style that is not among them")
    loss = style_config_loss()
    loss_net = {"arch": "vgg16", "pretrained": False, "seed": 0, "pool": "max"}
    names = [*styles, new_style]
    scorer = StyleScorer(style_images={n: style_tensor(n, settings.style_dir) for n in names}, loss=loss, loss_net=loss_net)
    photos = held_out_photos(held_out, eval_size)

    singles = {name: train_run(settings, f"single-{name}", [f"style={name}"]) for name in names}
    batch = multi_batch(settings, len(styles))
    multi_run = train_run(settings, f"multi-b{batch}", [f"style=[{','.join(styles)}]"], batch_size=batch)
    multi = open_model(multi_run["style_model"]).network
    single_nets = {name: open_model(run["style_model"]).network for name, run in singles.items()}

    report: dict[str, Any] = {"settings": {k: str(v) for k, v in settings.__dict__.items()},
                              "styles": list(styles), "new_style": new_style,
                              "held_out": [p.name for p in held_out], "eval_size": eval_size}
    per_style = []
    for index, name in enumerate(styles):
        single = scorer.score(stylize(single_nets[name], photos), name)
        mixed = scorer.score(stylize(multi, photos, one_hot(index, len(styles))), name)
        per_style.append({"style": name, "single": single, "multi": mixed, "ratio": mixed / single})
    report["four_styles"] = {
        "per_style": per_style,
        "parameters_multi": parameter_count(multi),
        "parameters_singles": sum(parameter_count(single_nets[n]) for n in styles),
        "batch_single": settings.batch_size,
        "batch_multi": batch,
    }

    first, second = 0, 1
    alone = stylize(multi, photos, one_hot(first, len(styles)))
    mixes = []
    for a in (0.0, 0.25, 0.5, 0.75, 1.0):
        weights = torch.zeros(len(styles))
        weights[first], weights[second] = 1.0 - a, a
        out = stylize(multi, photos, weights)
        mixes.append({"a": a, "loss_first": scorer.score(out, styles[first]), "loss_second": scorer.score(out, styles[second]),
                      "max_diff_to_first_alone": max_pixel_difference(out, alone)})
    report["mixing"] = {"first": styles[first], "second": styles[second], "weights": mixes,
                        "monotone": monotone([m["loss_first"] for m in mixes], rising=True)
                        and monotone([m["loss_second"] for m in mixes], rising=False)}

    every = max(1, settings.steps // finetune_checkpoints)
    lr = [] if finetune_lr is None else [f"lr={finetune_lr}"]
    tune = train_run(settings, f"finetune-{new_style}" + (f"-lr{finetune_lr:g}" if lr else ""), [
        f"finetune_from={multi_run['style_model']}", f"style=[{new_style}]", *lr,
        f"callbacks.model_checkpoint.every_n_train_steps={every}", "callbacks.model_checkpoint.save_top_k=-1"])
    target = scorer.score(stylize(single_nets[new_style], photos), new_style)
    curve = []
    for step, path in periodic_checkpoints(tune):
        network = open_model(path).network
        curve.append({"step": step, "loss": scorer.score(stylize(network, photos, one_hot(len(styles), len(styles) + 1)), new_style)})
    tuned = open_model(tune["style_model"]).network
    reached = next((point["step"] for point in curve if point["loss"] <= target), None)
    old_diff = max(max_pixel_difference(stylize(tuned, photos, one_hot(i, len(styles) + 1)),
                                        stylize(multi, photos, one_hot(i, len(styles)))) for i in range(len(styles)))
    report["finetune"] = {"lr": finetune_lr, "single_loss": target, "curve": curve, "reached_at": reached, "steps": settings.steps,
                          "old_styles_max_diff": old_diff, "styles_after": open_model(tune["style_model"]).metadata.styles}
    report["mask"] = mask_halves(multi, photos, first, second)
    report["onnx_max_diff"] = onnx_difference(multi, photos)
    return report


def onnx_difference(network: TransformerNet, photos: torch.Tensor) -> float:
    """Largest |ONNX - PyTorch| of the unclamped outputs over each style alone and an even mix."""
    from fast_style.io.export import onnx_bytes
    from fast_style.io.runtimes import cpu_runtime

    runtime = cpu_runtime(onnx_bytes(network))
    count = network.num_styles
    worst = 0.0
    for weights in [one_hot(i, count) for i in range(count)] + [torch.full((count,), 1.0 / count)]:
        with torch.inference_mode():
            expected = network(photos, weights)
        worst = max(worst, float((runtime(photos, weights) - expected).abs().max()))
    return worst


def style_config_loss() -> dict[str, Any]:
    """The ``loss=perceptual`` config the study trains with."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(PROJECT / "configs" / "loss" / "perceptual.yaml"), resolve=True)


def monotone(values: Sequence[float], *, rising: bool) -> bool:
    pairs = list(zip(values, values[1:], strict=False))
    return all(b >= a for a, b in pairs) if rising else all(b <= a for a, b in pairs)


def tables(report: dict[str, Any]) -> str:
    """The report as markdown tables."""
    four = report["four_styles"]
    count = len(four["per_style"])
    lines = [f"batch: one-style models {four['batch_single']}, the {count}-style model {four['batch_multi']} "
             f"({four['batch_multi'] / count:g} images of each style a step)", "",
             "| style | one-style model L_s | four-style model L_s | ratio |", "|---|---:|---:|---:|"]
    lines += [f"| {r['style']} | {r['single']:.4g} | {r['multi']:.4g} | {r['ratio']:.2f} |" for r in four["per_style"]]
    lines += ["", f"parameters: four-style {four['parameters_multi']:,}, four one-style models "
              f"{four['parameters_singles']:,} ({four['parameters_multi'] / four['parameters_singles']:.2f}x)", ""]
    mix = report["mixing"]
    lines += [f"| weight of {mix['second']} | L_s vs {mix['first']} | L_s vs {mix['second']} | max diff to {mix['first']} alone (1/255) |",
              "|---:|---:|---:|---:|"]
    lines += [f"| {m['a']:.2f} | {m['loss_first']:.4g} | {m['loss_second']:.4g} | {m['max_diff_to_first_alone']:.0f} |"
              for m in mix["weights"]]
    lines += ["", f"monotone: {mix['monotone']}", ""]
    tune = report["finetune"]
    reached = "never" if tune["reached_at"] is None else f"{tune['reached_at'] / tune['steps']:.2f} of the steps"
    lines += [f"fine-tuning {report['new_style']} (lr {tune.get('lr') or 'as trained'}): one-style model L_s {tune['single_loss']:.4g} after {tune['steps']} steps; "
              f"reached at step {tune['reached_at']} ({reached}); "
              f"old styles' max pixel change {tune['old_styles_max_diff']:.0f}/255; styles {tune['styles_after']}", ""]
    lines += ["| step | L_s |", "|---:|---:|"] + [f"| {p['step']} | {p['loss']:.4g} |" for p in tune["curve"]]
    m = report["mask"]
    lines += ["", f"mask halves (mean |diff| on the outer thirds): left own {m['left_own']:.4f} / other {m['left_other']:.4f}; "
              f"right own {m['right_own']:.4f} / other {m['right_other']:.4f}",
              "", f"ONNX with a style_weights input vs PyTorch: max |diff| {report['onnx_max_diff']:.2g}"]
    return "\n".join(lines)
