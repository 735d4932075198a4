"""Which runner a run gets: :func:`make_runner`, the first of :data:`RULES` that applies.

The options are settled and checked first (:func:`~fast_style.inference.runners.settings.settle`);
then, in order:

1. an exported ONNX / TorchScript file: a :class:`~.deployed.DeployedRunner`;
2. ``runtime=onnx``: an :class:`~.onnxrt.OnnxStylizer` (the network exported in memory),
   or a one-line error when the export fails;
3. ``runtime=auto`` on a CPU in fp32 without torch-only options: the same, falling back to
   PyTorch with a notice when the export fails;
4. ``precision=auto`` on a device with faster formats, without ``compile``: a
   :class:`~.calibrated.CalibratedStylizer` (its fp32 fallback onnxruntime's where rule 3 would apply);
5. otherwise a :class:`~.pytorch.Stylizer` as the options say.

The in-memory export (rules 2-4) and the calibration (rule 4) are kept in the start-up
cache per network (:mod:`~.startup_cache`; ``startup_cache=false``: neither read nor
written). Every runner applies the run's :class:`~fast_style.inference.mixing.StyleChoice`. A new
runtime is one file with its runner and one rule here (and its name in
:data:`~fast_style.inference.options.RUNTIMES`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from fast_style.inference.mixing import StyleChoice
from fast_style.inference.options import StylizeOptions
from fast_style.inference.runners.base import Runner
from fast_style.inference.runners.calibrated import CalibratedStylizer
from fast_style.inference.runners.deployed import DeployedRunner
from fast_style.inference.runners.onnxrt import onnx_or_torch
from fast_style.inference.runners.settings import Setting, settle
from fast_style.io.kinds import ONNX
from fast_style.io.model_files import StyleModel


@dataclass(frozen=True)
class Rule:
    """When a runner applies (``applies(setting)``) and how it is built (``build(setting)``)."""

    name: str
    applies: Callable[[Setting], bool]
    build: Callable[[Setting], Runner]


def _deployed(setting: Setting) -> DeployedRunner:
    model = setting.model
    return DeployedRunner(model.runtime, model.label, setting.pixel_budget, setting.styles.weights)


def _onnx(*, required: bool) -> Callable[[Setting], Runner]:
    return lambda setting: onnx_or_torch(setting.model.network, setting.stylizer(torch.float32), required=required,
                                         cache=setting.startup_cache())


def _calibrated(setting: Setting) -> CalibratedStylizer:
    network, cache = setting.model.network, setting.startup_cache()
    fp32_runner = (lambda fp32: onnx_or_torch(network, fp32, required=False, cache=cache)) if setting.onnx_fits else None
    return CalibratedStylizer(setting.stylizer, list(setting.candidates), setting.pixel_budget, fp32_runner, cache)


RULES = (
    Rule("an exported file", lambda s: s.model.deployed, _deployed),
    Rule("runtime=onnx", lambda s: s.runtime == ONNX.name, _onnx(required=True)),
    Rule("runtime=auto, fp32 on a CPU", lambda s: s.onnx_fits and s.candidates == (torch.float32,), _onnx(required=False)),
    Rule("precision=auto, several candidates", lambda s: len(s.candidates) > 1 and not s.options.compile, _calibrated),
    Rule("PyTorch as the options say", lambda s: True, lambda s: s.stylizer(s.candidates[0])),
)


def make_runner(model: StyleModel, options: StylizeOptions, styles: StyleChoice | None = None) -> Runner:
    """The runner for ``model`` with ``options`` (see the module docstring). ``styles``: the
    run's style choice (None: read from ``options.styles``/``mask``). Exported models accept
    only ``precision`` auto/fp32, no ``compile`` and no mask."""
    setting = settle(model, options, styles)
    return next(rule.build(setting) for rule in RULES if rule.applies(setting))
