"""Print the logged losses of a training run as a markdown table.

    python scripts/loss_curve.py run_dir=logs/train/runs/<style>/<time> [every=20]

Reads the run's TensorBoard event files (``train/content``, ``train/style``,
``train/tv``, ``train/total``) and prints one row per logged step (or every N steps),
plus the first and last totals and their ratio. Lightning logs step k as k - 1.
"""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fast_style.cli import entry
from fast_style.config import LossCurveConfig
from fast_style.errors import FastStyleError

TAGS = ("train/content", "train/style", "train/tv", "train/total")


def read_scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, dict[int, float]] = {tag: {} for tag in TAGS}
    for events in sorted(run_dir.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in TAGS:
            if tag in accumulator.Tags().get("scalars", []):
                for event in accumulator.Scalars(tag):
                    series[tag][event.step] = event.value
    return series


def print_curve(config: LossCurveConfig) -> None:
    series = read_scalars(Path(config.run_dir))
    steps = sorted(series["train/total"])
    if not steps:
        raise FastStyleError(f"no train/total scalars under {config.run_dir}")
    print("| step | " + " | ".join(t.split("/")[1] for t in TAGS) + " |")
    print("|---:|" + "---:|" * len(TAGS))
    for row, step in enumerate(steps):
        if step != steps[-1] and row % max(config.every, 1):
            continue
        print(f"| {step} | " + " | ".join(f"{series[t].get(step, float('nan')):.4g}" for t in TAGS) + " |")
    first, last = series["train/total"][steps[0]], series["train/total"][steps[-1]]
    print(f"\ntotal: {first:.4g} at step {steps[0]} -> {last:.4g} at step {steps[-1]} ({last / first:.2f}x)")


@entry(config_name="loss_curve", schema=LossCurveConfig)
def main(cfg: DictConfig) -> None:
    print_curve(OmegaConf.to_object(cfg))


if __name__ == "__main__":
    main()
