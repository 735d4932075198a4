"""Turn a photo folder into training-ready shards, once (resumable; see docs/training.md).

    python scripts/prepare_data.py data.root=data/coco/train2014 [data.resize=256]
        [format=raw|jpeg] [output=PATH] [workers=N] [shard_size=1024] [overwrite=true]

Each photo is decoded, its shorter side resized to ``data.resize`` (null: kept, capped
at ``cap``) and stored as uint8 in shards under ``<data.root>/.fast-style-shards/resize-<R>/``,
where ``python train.py`` (``data.shards=auto``) finds and reads them. An interrupted
run resumes where it stopped when started again. Every key and its default:
fast_style.training.options.PrepareDataConfig (``--cfg job`` prints them as composed).
"""

from omegaconf import DictConfig

from fast_style.cli import entry
from fast_style.training.options import PrepareDataConfig


@entry(config_name="prepare_data", schema=PrepareDataConfig)
def main(cfg: DictConfig) -> None:
    import logging

    from fast_style.training.prepare import prepare

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    prepare(cfg)


if __name__ == "__main__":
    main()
