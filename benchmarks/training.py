"""Training throughput: the reference step against the fast step, side by side.

    python scripts/benchmark.py part=training [steps=20] [sizes=[256x4,128x8]] [quick=true]

Reference step: eager fp32 NCHW, ``y = T(x)``, the full relu4_3 VGG stack for y and
again for x under no_grad, the losses, backward, Adam. Fast step:
``StyleTransferModule.step_losses`` under the autocast context of Lightning's
``precision=bf16-mixed`` (where the device has native bf16) with the module's switches,
then the same backward and Adam step. Both start from the same seeded weights and
batches; their steps alternate (and which goes first), the first ``warmup`` are not
timed, and the speed-up is the median of per-step time ratios. After the last step the
total losses must agree within ``TOLERANCE``. Prints a markdown table, writes JSON.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import statistics
from collections.abc import Callable
from typing import Any

import torch

from benchmarks.options import BenchmarkConfig, BenchOptionError
from benchmarks.timing import time_once
from fast_style.devices import device_name, native_bf16, resolve_device
from fast_style.nn.losses import content_loss, gram_matrix, style_loss, total_variation
from fast_style.nn.transformer import TransformerNet
from fast_style.nn.vgg import VGGFeatures
from fast_style.training.module import StyleTransferModule

# Relative tolerance on the total loss after the compared steps. bf16 keeps 8
# mantissa bits (relative rounding 2^-9 ~ 0.2 % per value); Adam's early, nearly
# sign-like updates then let the two weight trajectories drift apart, so after 20
# steps the totals differ by a few per cent (the small TV term by more: the
# per-term differences are reported, not judged). fp32 paths differ by summation order.
TOLERANCE = {"bf16-mixed": 5e-2, "32-true": 1e-3}
LOSS = {
    "content_layers": {"relu2_2": 1.0},
    "style_layers": {"relu1_2": 1.0, "relu2_2": 1.0, "relu3_3": 1.0, "relu4_3": 1.0},
    "content_weight": 1e5,
    "style_weight": 1e10,
    "tv_weight": 1e4,
}
PAPER_MODEL = {"width": 32, "num_residual": 5, "norm": "instance", "upsample": "nearest"}
QUICK_MODEL = {"width": 8, "num_residual": 1, "norm": "instance", "upsample": "nearest"}


def autocast_context(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """The context Lightning's precision plugin wraps around ``training_step``."""
    if precision == "bf16-mixed":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext


class ReferenceStep:
    """Eager fp32 NCHW step with two full VGG passes; ``__call__(x)`` returns the loss terms."""

    def __init__(self, *, transformer: TransformerNet, vgg: VGGFeatures, style_image: torch.Tensor, lr: float):
        self.transformer, self.vgg = transformer, vgg
        with torch.no_grad():
            style = vgg(style_image)
        self.grams = {layer: gram_matrix(style[layer]) for layer in LOSS["style_layers"]}
        self.optimizer = torch.optim.Adam(transformer.parameters(), lr=lr)

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.transformer(x)
        out = self.vgg(y)
        with torch.no_grad():
            target = self.vgg(x)
        losses = {
            "content": LOSS["content_weight"] * content_loss(out, target, LOSS["content_layers"]),
            "style": LOSS["style_weight"] * style_loss(out, self.grams, LOSS["style_layers"]),
            "tv": LOSS["tv_weight"] * total_variation(y),
        }
        losses["total"] = losses["content"] + losses["style"] + losses["tv"]
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        self.optimizer.step()
        return {k: v.detach() for k, v in losses.items()}


class FastStep:
    """The module's training computation with the fast switches, plus backward and Adam."""

    def __init__(self, *, module: StyleTransferModule, precision: str, device: torch.device, lr: float):
        self.module = module
        self.autocast = autocast_context(precision, device)
        self.optimizer = torch.optim.Adam(module.transformer.parameters(), lr=lr)

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.autocast():
            losses = self.module.step_losses(x)
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        self.optimizer.step()
        return {k: v.detach() for k, v in losses.items()}


def build_pair(
    *, size: int, model: dict, loss_net: dict, settings: dict, device: torch.device, seed: int
) -> tuple[ReferenceStep, FastStep]:
    """Reference and fast steps with identical initial weights and style targets."""
    gen = torch.Generator().manual_seed(seed)
    style_image = torch.rand(1, 3, size, size, generator=gen).to(device)
    loss = {**LOSS, "batched": settings["batched"]}
    module = StyleTransferModule(
        model=model, loss=loss, loss_net=loss_net, style={"name": "bench"}, style_image=style_image.cpu(),
        lr=settings["lr"], channels_last=settings["channels_last"], compile=settings["compile"],
    ).to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = TransformerNet(**model)
    module.transformer.load_state_dict(transformer.state_dict())
    # the same frozen weights, back in NCHW (building a second VGG-16 costs seconds)
    vgg = copy.deepcopy(module.loss.loss_net).to(memory_format=torch.contiguous_format)
    reference = ReferenceStep(transformer=transformer.to(device), vgg=vgg.to(device), style_image=style_image,
                              lr=settings["lr"])
    fast = FastStep(module=module, precision=settings["precision"], device=device, lr=settings["lr"])
    return reference, fast


def measure(
    *, size: int, batch: int, steps: int, warmup: int, model: dict, settings: dict, device: torch.device, seed: int
) -> dict[str, Any]:
    """Alternate ``steps`` reference and fast steps on the same batches; times and final losses."""
    loss_net = {"arch": "vgg16", "pretrained": False, "seed": seed}
    reference, fast = build_pair(size=size, model=model, loss_net=loss_net, settings=settings, device=device, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    times: dict[str, list[float]] = {"reference": [], "fast": []}
    last: dict[str, dict[str, torch.Tensor]] = {}
    for step in range(steps):
        x = torch.rand(batch, 3, size, size, generator=gen).to(device)
        order = [("reference", reference), ("fast", fast)]
        for name, run in order if step % 2 == 0 else order[::-1]:
            seconds, last[name] = time_once(lambda run=run, x=x: run(x), device=device)
            if step >= warmup:
                times[name].append(seconds)
    ref_s, fast_s = statistics.median(times["reference"]), statistics.median(times["fast"])
    ratios = [r / f for r, f in zip(times["reference"], times["fast"], strict=True)]
    losses = {name: {k: float(v) for k, v in terms.items() if v.dim() == 0} for name, terms in last.items()}  # scalar terms
    rel = {k: abs(losses["fast"][k] - losses["reference"][k]) / max(abs(losses["reference"][k]), 1e-12)
           for k in losses["reference"]}
    tolerance = TOLERANCE.get(settings["precision"], TOLERANCE["bf16-mixed"])
    megapixels = size * size * batch / 1e6
    return {
        "size": size, "batch": batch, "steps": steps, "timed_steps": len(times["fast"]),
        "reference_s": times["reference"], "fast_s": times["fast"],
        "reference_steps_per_s": 1 / ref_s, "fast_steps_per_s": 1 / fast_s,
        "speedup": statistics.median(ratios), "speedup_of_medians": ref_s / fast_s,
        "reference_mp_per_s": megapixels / ref_s, "fast_mp_per_s": megapixels / fast_s,
        "losses": losses, "relative_difference": rel, "tolerance": tolerance,
        "losses_agree": rel["total"] <= tolerance,
    }


def markdown(results: list[dict], settings: dict) -> str:
    """The results as a markdown table plus one line of settings."""
    lines = [
        "| size | batch | reference steps/s | fast steps/s | speed-up | reference MP/s | fast MP/s "
        f"| total loss after {results[0]['steps']} steps (ref / fast) | rel. diff total (tolerance) "
        "| rel. diff content / style / tv |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rel = r["relative_difference"]
        ok = "ok" if r["losses_agree"] else "**exceeded**"
        lines.append(
            f"| {r['size']} px | {r['batch']} | {r['reference_steps_per_s']:.3f} | {r['fast_steps_per_s']:.3f} "
            f"| **{r['speedup']:.2f}x** | {r['reference_mp_per_s']:.3f} | {r['fast_mp_per_s']:.3f} "
            f"| {r['losses']['reference']['total']:.6g} / {r['losses']['fast']['total']:.6g} "
            f"| {rel['total']:.1e} (< {r['tolerance']:.0e}: {ok}) "
            f"| {rel['content']:.1e} / {rel['style']:.1e} / {rel['tv']:.1e} |"
        )
    fast = ", ".join(f"{k}={settings[k]}" for k in ("precision", "channels_last", "batched", "compile"))
    lines.append("")
    lines.append(f"Fast path: {fast}. Reference: eager fp32 NCHW, two full VGG-16 passes. "
                 f"Steps/s = 1 / median step time; speed-up = median of per-step time ratios, "
                 f"reference and fast steps interleaved in one process ({results[0]['timed_steps']} timed each).")
    return "\n".join(lines)


def size_batches(sizes: list) -> list[tuple[int, int]]:
    """``["256x4", "128x8"]`` -> [(256, 4), (128, 8)] (image size x batch)."""
    pairs = [str(item).lower().partition("x")[::2] for item in sizes]
    if not pairs or not all(s.isdigit() and b.isdigit() for s, b in pairs):
        raise BenchOptionError(f"sizes={list(sizes)}: give SIZExBATCH items, e.g. sizes=[256x4,128x8]")
    return [(int(s), int(b)) for s, b in pairs]


def main(options: BenchmarkConfig) -> int:
    """Run the benchmark, print the table, write ``options.json``; 0, or 1 when a size's
    losses disagree beyond the tolerance."""
    if options.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = resolve_device(options.device)
    precision = {"bf16": "bf16-mixed", "fp32": "32-true"}.get(options.precision, options.precision)
    if precision == "auto":
        precision = "bf16-mixed" if native_bf16(device) else "32-true"
    model, sizes, steps, warmup = PAPER_MODEL, size_batches(options.sizes), options.steps, options.warmup
    if options.quick:
        model, sizes, steps, warmup = QUICK_MODEL, [(32, 2)], min(steps, 3), min(warmup, 1)
    channels_last = {"auto": device.type == "cuda" or "loss_net", "true": True, "on": True}.get(
        str(options.channels_last).lower(), str(options.channels_last).lower() == "loss_net" and "loss_net")
    settings = {"precision": precision, "channels_last": channels_last, "batched": options.batched,
                "compile": bool(options.compile), "lr": 1e-3}
    results = []
    for size, batch in sizes:
        print(f"training steps at {size} px, batch {batch}: {steps} reference + {steps} fast ...", flush=True)
        results.append(measure(size=size, batch=batch, steps=steps, warmup=min(warmup, steps - 1), model=model,
                               settings=settings, device=device, seed=options.seed))
    table = markdown(results, settings)
    print(table)
    report = {
        "benchmark": "training", "settings": settings, "model": model, "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "native_bf16": native_bf16(device), "results": results, "table": table,
    }
    with open(options.json, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {options.json}")
    return 0 if all(r["losses_agree"] for r in results) else 1
