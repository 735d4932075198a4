"""One network for several styles against one network per style: the multi-style study.

    python scripts/multistyle_study.py [steps=400] [size=96] [train_model=tiny] [styles=[...]] [new_style=...]

Every model is trained by ``train.py`` itself, in a subprocess, with the same settings
(model, crop size, batch, steps, random VGG-16 loss network), once for each of
``seeds`` (one seed's L_s can differ from another's by a third: a ratio of single runs
says little); then, on held-out
photos (centre squares of ``eval_size`` px, never trained on), with the loss network
and style targets of training (:class:`StyleScorer`):

1. **Four styles in one network.** One one-style model per style (``style=A``) and one
   model of all of them (``style=[A,B,C,D]``), all ``steps`` steps. The multi model's
   batch is ``multi_batch_size`` (default: ``batch_size``, so each of K styles gets 1/K
   of the images a one-style model gets; ``batch_size * K`` gives each as many). Per
   style: the mean weighted style loss ``L_s`` of each model's output, averaged over the
   seeds (with its range); ratio = multi / single of those means (goal: at most 1.15),
   and the parameter counts.
2. **Mixing** (this and 4, 5 on the first seed's multi model). The multi model with weights (1-a, a) of the first two styles for
   a = 0, 1/4, 1/2, 3/4, 1: ``L_s`` against each of the two (goal: monotone in a), and
   the largest pixel difference (in 1/255) between a = 0 and the first style alone.
3. **Adding a style.** A one-style model of ``new_style`` (``steps`` steps) against
   ``finetune_from=<multi> style=[new_style]`` for each seed, whose checkpoints every
   ``steps / finetune_checkpoints`` steps are scored: the first step at which the new
   style's ``L_s`` reaches the one-style model's of that seed (goal: at most steps / 4), and the
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
from typing import TYPE_CHECKING, Any

import torch

from fast_style.io.images import images_below, square_image
from fast_style.io.model_files import open_model
from fast_style.nn.losses import gram_matrix, style_loss
from fast_style.nn.transformer import TransformerNet
from fast_style.nn.vgg import VGGFeatures
from studies.training_runs import StudyError, style_tensor, train_in_folder, write_report

if TYPE_CHECKING:
    from studies.schemas import MultistyleStudyConfig

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
    """What every run of the study shares (the keys: :class:`studies.schemas.MultistyleStudyConfig`);
    ``project``: the checkout whose train.py and configs/ the study uses."""

    output_dir: Path
    project: Path
    photos: Path
    style_dir: Path
    steps: int
    size: int
    batch_size: int
    model: str
    seeds: tuple[int, ...] = (42,)
    extra: tuple[str, ...] = ()
    multi_batch_size: int | None = None  # None: batch_size, as the one-style models


def multi_batch(settings: StudySettings) -> int:
    """The multi-style model's batch (``multi_batch_size``, else the one-style models')."""
    return settings.batch_size if settings.multi_batch_size is None else settings.multi_batch_size


def train_run(settings: StudySettings, name: str, overrides: Sequence[str], *, seed: int,
              batch_size: int | None = None) -> dict[str, Any]:
    """Run ``train.py`` with the study's settings, ``seed`` and ``overrides`` in
    ``<output_dir>/runs/<name>-s<seed>``, with ``batch_size`` (default: the settings');
    returns its finished.json (a finished run is not trained again)."""
    return train_in_folder(settings.output_dir / "runs" / f"{name}-s{seed}", [
        *overrides,
        f"model={settings.model}", "loss_net.pretrained=false", f"seed={seed}",
        f"data.root={settings.photos}", f"data.image_size={settings.size}", f"data.resize={settings.size}",
        f"data.batch_size={settings.batch_size if batch_size is None else batch_size}", "data.num_workers=0", "data.hflip=true",
        f"paths.style_dir={settings.style_dir}", *settings.extra,
    ], project=settings.project, label=f"{name} (seed {seed})", steps=settings.steps)


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


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Mean, smallest and largest of one figure over the seeds, and the values themselves."""
    return {"mean": sum(values) / len(values), "min": min(values), "max": max(values), "runs": list(values)}


def run_study(settings: StudySettings, *, styles: Sequence[str], new_style: str, held_out: Sequence[Path],
              eval_size: int, finetune_checkpoints: int, finetune_lr: float | None = None) -> dict[str, Any]:
    """Train the study's models, once per seed, and measure them (see the module docstring);
    returns the report."""
    if len(styles) < 2 or len(set(styles)) != len(styles) or new_style in styles:
        raise StudyError(f"styles={list(styles)} and new_style={new_style}: give at least two distinct styles "
                         "and a new style that is not among them")
    if not settings.seeds or len(set(settings.seeds)) != len(settings.seeds):
        raise StudyError(f"seeds={list(settings.seeds)}: give one seed or more, each once")
    loss = style_config_loss(settings.project)
    loss_net = {"arch": "vgg16", "pretrained": False, "seed": 0, "pool": "max"}
    names = [*styles, new_style]
    scorer = StyleScorer(style_images={n: style_tensor(n, settings.style_dir, project=settings.project) for n in names}, loss=loss, loss_net=loss_net)
    photos = held_out_photos(held_out, eval_size)
    seeds = settings.seeds

    singles = {name: [open_model(train_run(settings, f"single-{name}", [f"style={name}"], seed=seed)["style_model"]).network
                      for seed in seeds] for name in names}
    batch = multi_batch(settings)
    multi_runs = [train_run(settings, f"multi-b{batch}", [f"style=[{','.join(styles)}]"], seed=seed, batch_size=batch)
                  for seed in seeds]
    multis = [open_model(run["style_model"]).network for run in multi_runs]

    report: dict[str, Any] = {"settings": {k: str(v) for k, v in settings.__dict__.items() if k != "project"},
                              "styles": list(styles), "new_style": new_style, "seeds": list(seeds),
                              "held_out": [p.name for p in held_out], "eval_size": eval_size}
    per_style = []
    for index, name in enumerate(styles):
        single = summary([scorer.score(stylize(net, photos), name) for net in singles[name]])
        multi = summary([scorer.score(stylize(net, photos, one_hot(index, len(styles))), name) for net in multis])
        per_style.append({"style": name, "single": single, "multi": multi, "ratio": multi["mean"] / single["mean"],
                          "ratio_per_seed": [m / o for m, o in zip(multi["runs"], single["runs"], strict=True)]})
    report["four_styles"] = {
        "per_style": per_style,
        "parameters_multi": parameter_count(multis[0]),
        "parameters_singles": sum(parameter_count(singles[n][0]) for n in styles),
        "batch_single": settings.batch_size,
        "batch_multi": batch,
    }
    multi = multis[0]

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

    report["finetune"] = {"lr": finetune_lr, "steps": settings.steps,
                          "runs": [finetune_run(settings, scorer, photos, styles=styles, new_style=new_style, seed=seed,
                                                base=run, base_network=network, single=singles[new_style][i],
                                                checkpoints=finetune_checkpoints, lr=finetune_lr, batch=batch)
                                   for i, (seed, run, network) in enumerate(zip(seeds, multi_runs, multis, strict=True))]}
    report["mask"] = mask_halves(multi, photos, first, second)
    report["onnx_max_diff"] = onnx_difference(multi, photos)
    return report


def finetune_run(settings: StudySettings, scorer: StyleScorer, photos: torch.Tensor, *, styles: Sequence[str],
                 new_style: str, seed: int, base: dict[str, Any], base_network: TransformerNet, single: TransformerNet,
                 checkpoints: int, lr: float | None, batch: int) -> dict[str, Any]:
    """``finetune_from=<base> style=[new_style]`` with ``seed``, scored every ``steps /
    checkpoints`` steps against the one-style model ``single`` of the same seed: the first
    step that reaches its L_s, and the old styles' largest pixel change."""
    every = max(1, settings.steps // checkpoints)
    lr_override = [] if lr is None else [f"lr={lr}"]
    tune = train_run(settings, f"finetune-{new_style}-from-b{batch}" + (f"-lr{lr:g}" if lr_override else ""), [
        f"finetune_from={base['style_model']}", f"style=[{new_style}]", *lr_override,
        f"callbacks.model_checkpoint.every_n_train_steps={every}", "callbacks.model_checkpoint.save_top_k=-1"],
        seed=seed)
    count = len(styles)
    target = scorer.score(stylize(single, photos), new_style)
    curve = [{"step": step, "loss": scorer.score(stylize(open_model(path).network, photos, one_hot(count, count + 1)), new_style)}
             for step, path in periodic_checkpoints(tune)]
    tuned = open_model(tune["style_model"])
    old_diff = max(max_pixel_difference(stylize(tuned.network, photos, one_hot(i, count + 1)),
                                        stylize(base_network, photos, one_hot(i, count))) for i in range(count))
    return {"seed": seed, "single_loss": target, "curve": curve,
            "reached_at": next((point["step"] for point in curve if point["loss"] <= target), None),
            "old_styles_max_diff": old_diff, "styles_after": tuned.metadata.styles}


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


def style_config_loss(project: Path) -> dict[str, Any]:
    """The ``loss=perceptual`` config the study trains with (``project``'s configs/loss/perceptual.yaml)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(project / "configs" / "loss" / "perceptual.yaml"), resolve=True)


def monotone(values: Sequence[float], *, rising: bool) -> bool:
    pairs = list(zip(values, values[1:], strict=False))
    return all(b >= a for a, b in pairs) if rising else all(b <= a for a, b in pairs)


def tables(report: dict[str, Any]) -> str:
    """The report as markdown tables."""
    four = report["four_styles"]
    count = len(four["per_style"])
    seeds = report["seeds"]

    def spread(figure: dict[str, Any]) -> str:
        return f"{figure['mean']:.4g}" + (f" ({figure['min']:.4g}-{figure['max']:.4g})" if len(figure["runs"]) > 1 else "")

    lines = [f"seeds: {', '.join(map(str, seeds))} (each model trained once per seed: L_s is the mean over the "
             "seeds, their range in brackets)",
             f"batch: one-style models {four['batch_single']}, the {count}-style model {four['batch_multi']} "
             f"({four['batch_multi'] / count:g} images of each style a step)", "",
             "| style | one-style model L_s | four-style model L_s | ratio of the means | ratio per seed |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['style']} | {spread(r['single'])} | {spread(r['multi'])} | {r['ratio']:.2f} | "
              f"{' / '.join(f'{x:.2f}' for x in r['ratio_per_seed'])} |" for r in four["per_style"]]
    lines += ["", f"parameters: four-style {four['parameters_multi']:,}, four one-style models "
              f"{four['parameters_singles']:,} ({four['parameters_multi'] / four['parameters_singles']:.2f}x)", ""]
    mix = report["mixing"]
    lines += [f"mixing (the model of seed {seeds[0]}):", "",
              f"| weight of {mix['second']} | L_s vs {mix['first']} | L_s vs {mix['second']} | max diff to {mix['first']} alone (1/255) |",
              "|---:|---:|---:|---:|"]
    lines += [f"| {m['a']:.2f} | {m['loss_first']:.4g} | {m['loss_second']:.4g} | {m['max_diff_to_first_alone']:.0f} |"
              for m in mix["weights"]]
    lines += ["", f"monotone: {mix['monotone']}", ""]
    tune = report["finetune"]
    for run in tune["runs"]:
        reached = "never" if run["reached_at"] is None else f"{run['reached_at'] / tune['steps']:.2f} of the steps"
        lines += [f"fine-tuning {report['new_style']} (seed {run['seed']}, lr {tune.get('lr') or 'as trained'}): one-style "
                  f"model L_s {run['single_loss']:.4g} after {tune['steps']} steps; reached at step {run['reached_at']} "
                  f"({reached}); old styles' max pixel change {run['old_styles_max_diff']:.0f}/255; styles {run['styles_after']}"]
    runs = tune["runs"]
    lines += ["", "| step | " + " | ".join(f"L_s, seed {r['seed']}" for r in runs) + " |",
              "|---:|" + "---:|" * len(runs)]
    steps = sorted({p["step"] for r in runs for p in r["curve"]})
    for step in steps:
        cells = [next((f"{p['loss']:.4g}" for p in r["curve"] if p["step"] == step), "") for r in runs]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    m = report["mask"]
    lines += ["", f"mask halves (mean |diff| on the outer thirds): left own {m['left_own']:.4f} / other {m['left_other']:.4f}; "
              f"right own {m['right_own']:.4f} / other {m['right_other']:.4f}",
              "", f"ONNX with a style_weights input vs PyTorch: max |diff| {report['onnx_max_diff']:.2g}"]
    return "\n".join(lines)


def main(config: MultistyleStudyConfig, *, project: Path) -> None:
    """scripts/multistyle_study.py: the training folder without the held-out photos, the
    study on it with ``project``'s train.py, its tables printed and written to ``output_dir``."""
    output_dir = Path(config.output_dir).resolve()
    photos, held_out = training_folder(Path(config.photos), config.held_out, output_dir / "photos")
    settings = StudySettings(output_dir=output_dir, project=project, photos=photos,
                             style_dir=Path(config.style_dir).resolve(), steps=config.steps, size=config.size,
                             batch_size=config.batch_size, model=config.train_model, seeds=tuple(config.seeds),
                             extra=tuple(config.extra), multi_batch_size=config.multi_batch_size)
    report = run_study(settings, styles=config.styles, new_style=config.new_style, held_out=held_out,
                       eval_size=config.eval_size, finetune_checkpoints=config.finetune_checkpoints,
                       finetune_lr=config.finetune_lr)
    print(write_report(report, tables(report), output_dir))
    print(f"\nwritten: {output_dir / 'study.json'}, {output_dir / 'table.md'}")
