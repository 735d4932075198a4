"""A contact sheet of training runs: one row per run, one column per held-out photo plus the painting.

    python scripts/compare.py runs=logs/train/multiruns/<date_time>          # a sweep folder
    python scripts/compare.py runs='[logs/train/runs/a/<time>,logs/train/runs/b/<time>]'
    python scripts/compare.py runs='logs/train/multiruns/*/*' [photos=<folder or list>] [size=256] [sort=reference]

Writes ``compare.html`` (sortable by any metric column: click its header; thumbnails in
``thumbs/``), ``compare.jpg`` (the same grid as one picture) and ``compare.json`` into a
folder of its own (``output=``; default ``<sweep folder>/compare``). Runs still training
are shown from their ``checkpoints/last.ckpt``; failed runs, folders that are not runs and
models that cannot be opened are rows with the reason. Details:
``fast_style/evaluation/contact_sheet.py``; options: ``fast_style.config.CompareConfig``.
"""

from omegaconf import DictConfig, OmegaConf

from fast_style.cli import entry
from fast_style.config import CompareConfig


@entry(config_name="compare", schema=CompareConfig)
def main(cfg: DictConfig) -> None:
    from fast_style.evaluation.contact_sheet import compare_runs

    sheet = compare_runs(OmegaConf.to_object(cfg))
    print(sheet.line())


if __name__ == "__main__":
    main()
