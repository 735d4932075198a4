"""Every key of every script's schema can be set on the command line.

Hydra reads ``key=value`` as a config-group choice when ``configs/<key>/`` exists, so a
script key named like one of train.py's groups (model, data, experiment, ...) could not
be set at all ("Could not override 'model'. No match in the defaults list"). Each key is
set here to its own default through Hydra's compose API (the parser of the command line)
and must come back as that value.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
from helpers import REPO
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

# (script, its config folder, its config name, its schema class (a name the script imports or
# defines)), as each script registers them
SCRIPTS = [
    ("scripts/benchmark.py", "benchmarks/configs", "benchmark", "benchmarks.options.BenchmarkConfig"),
    ("scripts/prepare_data.py", "configs", "prepare_data", "fast_style.training.options.PrepareDataConfig"),
    ("scripts/multistyle_study.py", "studies/configs", "multistyle_study", "MultistyleStudyConfig"),
    ("scripts/flicker_study.py", "studies/configs", "flicker_study", "FlickerStudyConfig"),
    ("scripts/loss_curve.py", "configs", "loss_curve", "fast_style.config.LossCurveConfig"),
]


def load_script(path: str):
    """Import a script as a module (its ConfigStore schema is registered on import)."""
    spec = importlib.util.spec_from_file_location(f"script_{Path(path).stem}", REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def override_value(value) -> str:
    """``value`` in Hydra's override grammar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    return "'" + str(value).replace("'", "\\'") + "'"


def scalar_or_list_fields(schema) -> list[tuple[str, object]]:
    """(name, default) of the schema's keys that hold a value (not a nested config group)."""
    fields = []
    for f in dataclasses.fields(schema):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if default is dataclasses.MISSING or OmegaConf.is_missing(OmegaConf.structured(schema), f.name):
            continue
        if dataclasses.is_dataclass(default):  # a typed group (prepare_data's data), set by its keys
            continue
        fields.append((f.name, default))
    return fields


def schema_of(module, name: str):
    """``name`` in the script's namespace, or a dotted ``module.Class``."""
    if "." not in name:
        return getattr(module, name)
    where, _, cls = name.rpartition(".")
    return getattr(importlib.import_module(where), cls)


@pytest.mark.parametrize(("script", "config_dir", "config_name", "schema_name"), SCRIPTS, ids=[s[2] for s in SCRIPTS])
def test_every_key_can_be_set_on_the_command_line(script, config_dir, config_name, schema_name):
    module = load_script(script)
    # scripts on cli.entry find configs/ beside them; the benchmark and study entries name theirs
    from fast_style.cli import config_dir_beside

    found = getattr(module, "CONFIG_DIR", None) or config_dir_beside(REPO / script)
    assert Path(found) == REPO / config_dir
    schema = schema_of(module, schema_name)
    fields = scalar_or_list_fields(schema)
    assert fields
    failures = []
    with initialize_config_dir(config_dir=str(REPO / config_dir), version_base="1.3"):
        for name, default in fields:
            override = f"{name}={override_value(default)}"
            try:
                cfg = compose(config_name=config_name, overrides=[override])
            except Exception as exc:  # noqa: BLE001 - collected, reported together
                failures.append(f"{override}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                continue
            got = OmegaConf.to_container(cfg)[name]
            if got != (list(default) if isinstance(default, tuple) else default):
                failures.append(f"{override}: came back as {got!r}")
    assert not failures, f"{script}: keys that cannot be set:\n" + "\n".join(failures)
