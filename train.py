"""Train a style model: ``python train.py style=starry_night [overrides...]``; several
styles in one network: ``python train.py style=[starry_night,the_scream]``.

A thin Hydra entry point; the work is in ``fast_style.training.train.train``, and the
optional ``check`` on held-out photos in ``fast_style.evaluation.resemblance_check``.

Returns the run's objective (``objective=heldout``, the default, or ``train_total``: a float
that Hydra's optimising sweepers minimise; ``objective=none``: None) on global rank 0, None
on the other ranks of a DDP run (fast_style.training.objective; docs/training.md "The objective").
"""

from omegaconf import DictConfig

from fast_style.cli import entry, style_list_overrides
from fast_style.config import TrainConfig


# style=[a,b] -> style=multi styles=[a,b]; Lightning checkpoints on SIGTERM (sigterm=False)
@entry(config_name="train", schema=TrainConfig, sigterm=False, argv=style_list_overrides)
def main(cfg: DictConfig) -> float | None:
    from pytorch_lightning.utilities import rank_zero_only

    from fast_style.training.train import train

    result = train(cfg)
    if cfg.get("check") and rank_zero_only.rank == 0:
        from fast_style.evaluation.resemblance_check import check_after_training

        check_after_training(cfg, result)
    return result.get("objective")


if __name__ == "__main__":
    main()
