"""Runners: what maps an image batch to its stylized batch, one file per kind of runner.

:mod:`.base` (the :class:`Runner` protocol and what the runners share), :mod:`.pytorch`
(eager or compiled PyTorch), :mod:`.onnxrt` (a network exported in memory, run by
onnxruntime), :mod:`.deployed` (an exported file), :mod:`.calibrated` (``precision=auto``);
:mod:`.settings` checks the options once and :mod:`.rules` picks the runner
(:func:`make_runner`).
"""

from fast_style.inference.runners.base import Runner
from fast_style.inference.runners.rules import make_runner

__all__ = ["Runner", "make_runner"]
