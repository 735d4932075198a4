"""What TensorBoard's HPARAMS tab lists for a run: its hyper-parameters with its final metrics.

Logged once, after training (and after the objective), on global rank 0 through
``TensorBoardLogger.log_hyperparams(params, metrics, step)``: the one hparams summary of the
run (``logger.default_hp_metric: false`` keeps Lightning from writing an empty one at the
start), and each metric as a scalar at the last step. A sweep folder opened in TensorBoard
(``tensorboard --logdir multirun/<date>/<time>``) then lists every run in one table.

``params`` (:func:`run_hparams`): every key of the run's command line (Hydra's task
overrides: a sweep's swept keys among them; a group's choice as its name, a key's value as
composed) and always ``loss.content_weight``, ``loss.style_weight``, ``loss.tv_weight``,
``lr``, ``trainer.max_steps``, ``data.batch_size``, ``data.image_size``, ``style.size``,
``model`` (the preset's name), ``model.width``, ``model.num_residual`` and ``styles`` (the
model's name, styles joined by ``+``).

``metrics`` (:func:`final_metrics`), each present when known: ``final/objective`` (the run's
returned value), ``final/reference_total`` (heldout: the total under the reference weights,
:mod:`.objective`), ``final/train_total``, ``final/train_content``, ``final/train_style``,
``final/train_tv`` (the last step's logged losses on rank 0) and ``final/steps_per_s``
(:class:`~fast_style.training.callbacks.TrainingPace`). They are named apart from the
``train/*`` curves, whose plots the extra point would otherwise join.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

USUAL_KEYS = ("loss.content_weight", "loss.style_weight", "loss.tv_weight", "lr", "trainer.max_steps",
              "data.batch_size", "data.image_size", "style.size", "model.width", "model.num_residual")
FINAL_LOSSES = ("total", "content", "style", "tv")


def _hydra_runtime(cfg: DictConfig) -> tuple[list[str], dict[str, Any]]:
    """(the task overrides, the group choices) of ``cfg``'s Hydra run (``cfg.hydra`` when composed
    with it, else the running app), or ([], {}) outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if "hydra" in cfg:
        node = cfg.hydra
    elif HydraConfig.initialized():
        node = HydraConfig.get()
    else:
        return [], {}
    return list(node.overrides.task), dict(node.runtime.choices)


def _scalar(value: Any) -> Any:
    """A value TensorBoard's hparams take (bool, int, float, str); anything else as text."""
    if isinstance(value, bool | int | float | str):
        return value
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    return "null" if value is None else str(value)


def run_hparams(cfg: DictConfig, *, style_name: str) -> dict[str, Any]:
    """The run's hyper-parameters as flat ``{key: bool | int | float | str}`` (module docstring)."""
    overrides, choices = _hydra_runtime(cfg)
    params: dict[str, Any] = {}
    for override in overrides:
        key, _, text = override.lstrip("+~").partition("=")
        if key in choices or key.startswith("hydra"):
            params[key] = str(choices.get(key, text))
            continue
        value = OmegaConf.select(cfg, key, default=text)
        params[key] = _scalar(text if OmegaConf.is_config(value) else value)
    for key in USUAL_KEYS:
        params.setdefault(key, _scalar(OmegaConf.select(cfg, key, default=None)))
    params.setdefault("model", str(choices.get("model", "custom")))
    params["styles"] = style_name
    return params


def final_metrics(callback_metrics: Mapping[str, Any], *, objective: Mapping[str, Any] | None,
                  steps_per_s: float | None) -> dict[str, float]:
    """The run's final numbers (module docstring), each a float, those not known left out."""
    metrics: dict[str, float] = {}
    if objective is not None:
        metrics["final/objective"] = float(objective["value"])
        if "reference" in objective:
            metrics["final/reference_total"] = float(objective["reference"]["total"])
    for name in FINAL_LOSSES:
        value = callback_metrics.get(f"train/{name}")
        if value is not None:
            metrics[f"final/train_{name}"] = float(value)
    if steps_per_s is not None:
        metrics["final/steps_per_s"] = float(steps_per_s)
    return metrics


def log_final_hparams(loggers: list[Any], params: Mapping[str, Any], metrics: Mapping[str, float], *, step: int) -> None:
    """Give every logger ``params`` with ``metrics`` (at ``step``), and flush it: a TensorBoard
    logger writes its hparams summary; another logger the params, then the metrics."""
    from pytorch_lightning.loggers import TensorBoardLogger

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(dict(params), metrics=dict(metrics), step=step)
        else:
            logger.log_hyperparams(dict(params))
            if metrics:
                logger.log_metrics(dict(metrics), step=step)
        logger.finalize("success")  # trainer.fit closed it already: write what came after
