"""Studies behind scripts/multistyle_study.py and scripts/flicker_study.py: each trains models
with ``python train.py`` in subprocesses (:mod:`studies.training_runs`) and scores them with
the package's documented modules. Not part of the ``fast_style`` package."""
