"""The package's shape: layers import only downwards, no cycles, one way to open a model,
and the Hydra schemas are the only place that holds an option's default. The benchmarks and
studies live outside the package (benchmarks/, studies/ at the root): the package never
imports them, and no module of either finds the checkout by itself."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from helpers import CONFIG_DIR, REPO, compose
from omegaconf import OmegaConf

PACKAGE = REPO / "src" / "fast_style"
# bottom to top; a module may import its own layer's modules and any layer below
LAYERS = [
    {"errors", "devices", "progress", "cache"},
    {"nn"},
    {"io"},
    {"training", "inference"},
    {"evaluation"},
    {"config", "cli", "slurm", "__init__"},
]
# root packages that use fast_style and that fast_style never imports
OUTSIDE = ("benchmarks", "studies")


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else "__init__"
    return next(i for i, names in enumerate(LAYERS) if part in names)


def _imported(path: Path, prefixes: tuple[str, ...]) -> set[str]:
    """The modules named ``prefix...`` that ``path`` imports (at any depth of its code)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(prefixes):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(prefixes)}
    return found


def _module_graph(root: Path, prefixes: tuple[str, ...]) -> dict[str, set[str]]:
    """module of the package at ``root`` -> the ``prefixes`` modules it imports."""
    graph = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = _imported(path, prefixes) - {name}
    return graph


def _imports() -> dict[str, set[str]]:
    """fast_style module -> the fast_style modules it imports (at any depth of its code)."""
    return _module_graph(PACKAGE, ("fast_style",))


def test_the_layers_name_exactly_the_package_s_parts():
    """A new subpackage or top-level module must be given a layer, and a layer must not name
    a part that is gone (``_layer`` would silently fail for neither)."""
    parts = {m.split(".")[1] if "." in m else "__init__" for m in _imports()}
    assert parts == set().union(*LAYERS)


def test_no_module_imports_a_layer_above_it():
    upward = [(m, i) for m, deps in _imports().items() for i in deps
              if i != "fast_style" and _layer(i) > _layer(m)]
    assert upward == []


def test_sibling_layers_do_not_import_each_other():
    """training and inference share a layer: neither may depend on the other."""
    graph = _imports()
    crossing = [(m, i) for m, deps in graph.items() for i in deps
                if {m.split(".")[1:2][0] if "." in m else "", i.split(".")[1:2][0] if "." in i else ""} == {"training", "inference"}]
    assert crossing == []


def test_no_import_cycles():
    graph = _imports()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(dep):] + [dep]) if dep in path else dep)
            if dep in graph and not state.get(dep):
                visit(dep, path + [dep])
        state[node] = 2

    for module in graph:
        if not state.get(module):
            visit(module, [module])


def test_the_layer_check_can_fail(tmp_path, monkeypatch):
    """An nn module importing the inference layer would be reported as upward."""
    fake = {"fast_style.nn.losses": {"fast_style.inference.runners.pytorch"}}
    monkeypatch.setattr(__import__(__name__), "_imports", lambda: fake)
    with pytest.raises(AssertionError):
        test_no_module_imports_a_layer_above_it()


def test_the_package_never_imports_the_benchmarks_or_studies():
    found = {m: deps for m, deps in _module_graph(PACKAGE, OUTSIDE).items() if deps}
    assert found == {}


@pytest.mark.parametrize("outside", OUTSIDE)
def test_benchmarks_and_studies_import_only_fast_style_and_themselves(outside):
    """Each root package imports fast_style and its own modules, not the other one (nor the tests)."""
    other = tuple(o for o in OUTSIDE if o != outside) + ("conftest", "scripts")
    graph = _module_graph(REPO / outside, other)
    assert {m: deps for m, deps in graph.items() if deps} == {}
    assert any(_imported(path, ("fast_style",)) for path in (REPO / outside).rglob("*.py"))


@pytest.mark.parametrize("root", [PACKAGE, *(REPO / o for o in OUTSIDE)], ids=["fast_style", *OUTSIDE])
def test_no_module_locates_the_checkout(root):
    """Checkout paths are decided by the root entry scripts and passed down: no ``parents[N]``
    of a module's own file here (benchmarks/ and studies/ may name their own configs/ folder)."""
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents":
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
            if isinstance(node, ast.Name) and node.id == "__file__" and path.name != "schemas.py":
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} __file__")
    assert offenders == []


# who may read a file of tensors or code, and why: model files go through open_model
# (io/model_files.py) and its runtimes (io/runtimes.py); the loss network's weights file is read
# by nn/vgg.py; inference/tiling.py reads back the tile states it saved itself
# io/web_export.py reads back the ONNX file it has just written, to store its fp16 twin
MODEL_READERS = {"io/model_files.py", "io/runtimes.py", "nn/vgg.py", "inference/tiling.py", "io/web_export.py"}
READ_CALLS = {"torch.load", "safe_open", "InferenceSession", "torch.jit.load", "onnx.load", "load_file"}


def _calls(path: Path) -> set[str]:
    """Dotted names of what ``path`` calls (``torch.load(...)`` -> "torch.load", ``safe_open(...)``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func, dotted = node.func, []
            while isinstance(func, ast.Attribute):
                dotted.insert(0, func.attr)
                func = func.value
            if isinstance(func, ast.Name):
                names.add(".".join([func.id, *dotted]))
    return names


def test_only_open_model_reads_model_files():
    """Every read of a model file (torch.load, safetensors, onnxruntime, TorchScript) is in
    the io layer's loader modules; the rest of the package calls open_model."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        calls = {c for c in _calls(path) if c in READ_CALLS or c.split(".")[-1] in READ_CALLS}
        if calls:
            found[path.relative_to(PACKAGE).as_posix()] = calls
    assert set(found) <= MODEL_READERS, {k: v for k, v in found.items() if k not in MODEL_READERS}
    assert {"io/model_files.py", "io/runtimes.py"} <= set(found)  # the check sees the real readers


def test_the_reader_check_sees_a_read_outside_io(tmp_path):
    stray = tmp_path / "stray.py"
    stray.write_text("import torch\n\ndef f(p):\n    return torch.load(p, weights_only=True)\n")
    assert _calls(stray) & READ_CALLS == {"torch.load"}


# ------------------------------------------------------------------ one source of defaults


def _schema_name(raw) -> str | None:
    """The ``<command>_schema`` a top-level yaml's defaults list starts from, or None."""
    names = [entry for entry in raw.get("defaults", []) if isinstance(entry, str) and entry.endswith("_schema")]
    return names[0] if names else None


TOP_LEVEL_YAMLS = sorted(CONFIG_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", TOP_LEVEL_YAMLS, ids=[p.stem for p in TOP_LEVEL_YAMLS])
def test_yaml_sets_no_option_the_schema_holds(path):
    """Every top-level yaml chooses its schema, groups and Hydra's behaviour; no option's value
    (the defaults are the dataclass's). A yaml that sets one fails here, naming it."""
    raw = OmegaConf.load(path)
    assert _schema_name(raw), f"{path.name} names no <command>_schema in its defaults"
    assert set(raw) - {"defaults", "hydra"} == set(), f"{path.name} sets {set(raw) - {'defaults', 'hydra'}}"


@pytest.mark.parametrize("command", sorted(__import__("fast_style.config").config.COMMANDS))
def test_every_schema_is_a_command_yaml_with_its_defaults(command):
    """Each schema of config.COMMANDS is the start of configs/<command>.yaml, which takes the
    shared hydra block, and the composed config holds the schema's defaults unchanged."""
    from fast_style.config import COMMANDS

    schema = COMMANDS[command]
    raw = OmegaConf.load(CONFIG_DIR / f"{command}.yaml")
    assert _schema_name(raw) == f"{command}_schema"
    hydra_blocks = [e["hydra"] for e in OmegaConf.to_container(raw.defaults) if isinstance(e, dict) and "hydra" in e]
    assert hydra_blocks == (["default"] if command == "train" else ["tool"]), hydra_blocks
    assert set(raw.get("hydra", {})) <= {"sweep"}, "Hydra's behaviour lives in configs/hydra/"
    required = [f"{f.name}=x" for f in dataclasses.fields(schema)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                or f.default == "???"]
    composed = compose(command, [o for o in required if not o.startswith(("paths=", "data=", "trainer="))])
    assert set(composed) == {f.name for f in dataclasses.fields(schema)}
    for f in dataclasses.fields(schema):
        if f.default is not dataclasses.MISSING and f.default != "???" and not OmegaConf.is_config(composed[f.name]):
            assert composed[f.name] == f.default, f"{command}.yaml changes {f.name}"


def test_the_data_group_takes_its_defaults_from_the_options():
    """configs/data/coco.yaml only chooses the folder; the datamodule's defaults are DataOptions'."""
    import inspect

    from fast_style.training.data import ContentDataModule
    from fast_style.training.options import DataOptions

    assert set(OmegaConf.load(CONFIG_DIR / "data" / "coco.yaml")) == {"root"}
    options = {f.name: f.default for f in dataclasses.fields(DataOptions) if f.name not in ("_target_", "root")}
    signature = {k: p.default for k, p in inspect.signature(ContentDataModule).parameters.items() if k != "root"}
    assert signature == options
    composed = compose("train", [])
    assert {k: composed.data[k] for k in options} == options
    assert composed.data._target_ == "fast_style.training.data.ContentDataModule"


def test_train_top_level_defaults_come_from_the_schema():
    from fast_style.config import TrainConfig

    raw = OmegaConf.load(CONFIG_DIR / "train.yaml")
    assert set(raw) == {"defaults"}
    composed = compose("train", [])
    groups = {"style", "model", "loss_net", "loss", "data", "trainer", "callbacks", "logger", "paths", "check", "objective"}
    scalars = [f for f in dataclasses.fields(TrainConfig) if f.name not in groups]
    assert {f.name for f in scalars} == {"task_name", "seed", "ckpt_path", "auto_resume", "lr", "lr_schedule", "style_lr",
                                         "channels_last", "compile", "styles", "finetune_from"}
    assert composed.check is None
    for f in scalars:
        assert composed[f.name] == f.default, f.name


@pytest.mark.parametrize("override, message", [
    ("strenght=0.5", "strenght"),
    ("size=big", "size"),
    ("overwrite=maybe", "overwrite"),
])
def test_schema_rejects_misspelt_keys_and_wrong_types(override, message):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as info:
        compose("stylize", ["ckpt=m", "input=p", override])
    assert message in str(info.value) or message in str(info.value.__cause__)


def test_yes_no_words_are_booleans():
    assert compose("stylize", ["ckpt=m", "input=p", "overwrite=no"]).overwrite is False


@pytest.mark.parametrize("group", ["model", "loss", "loss_net", "style", "objective"])
def test_every_group_preset_fits_its_schema(group):
    """A preset with a misspelt or missing key fails to compose (the schema checks it)."""
    for preset in sorted((CONFIG_DIR / group).glob("*.yaml")):
        extra = ["style.image=x.jpg"] if preset.stem == "custom" else []
        cfg = compose("train", [f"{group}={preset.stem}", *extra])
        OmegaConf.to_container(cfg[group], throw_on_missing=True)


def test_a_misspelt_group_key_is_rejected():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose("train", ["model.widht=8"])


def test_every_public_name_is_its_module_s_object_and_others_raise():
    import importlib

    import fast_style

    for name, module in fast_style._API.items():
        assert getattr(fast_style, name) is getattr(importlib.import_module(module), name), name
    assert set(fast_style.__all__) == {"__version__", *fast_style._API}
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        fast_style.nothing_here  # noqa: B018


@pytest.mark.slow
def test_import_fast_style_loads_neither_torch_nor_hydra():
    """``import fast_style`` is cheap: the API's modules load on first use."""
    import subprocess
    import sys

    code = ("import sys, fast_style; heavy = sorted(m for m in ('torch', 'hydra', 'omegaconf', 'PIL') "
            "if m in sys.modules); print(heavy); fast_style.open_model; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["[]", "True"]
