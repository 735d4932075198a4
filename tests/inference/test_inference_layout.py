"""The shape of the stylize code: jobs carry their kind from planning, the exported kinds
are spelled in one table, finish reads the options object, runners are picked by rules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from helpers import REPO

from fast_style.inference.finishing import finish
from fast_style.inference.options import StylizeOptions
from fast_style.inference.outcome import GIF, PHOTO, VIDEO
from fast_style.inference.plan import plan
from fast_style.inference.runners import make_runner, settings
from fast_style.inference.runners.rules import RULES
from fast_style.io.kinds import EXECUTORCH, EXPORTED, ONNX, TORCHSCRIPT
from fast_style.io.model_files import open_model

PACKAGE = REPO / "src" / "fast_style"


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    root.mkdir()
    for name in ("a.png", "b.mp4", "c.gif"):
        (root / name).write_bytes(b"")  # planning reads names only
    return root


@pytest.mark.parametrize("fmt, suffixes", [(None, {"a": ".png", "b": ".mp4", "c": ".gif"}),
                                           ("jpg", {"a": ".jpg", "b": ".mp4", "c": ".gif"}),
                                           ("webm", {"a": ".png", "b": ".webm", "c": ".webm"})])
def test_planning_decides_each_jobs_kind_and_its_target_suffix_follows_it(tmp_path, fmt, suffixes):
    jobs, several, refused = plan(str(_folder(tmp_path)), StylizeOptions(output=str(tmp_path / "out"), format=fmt),
                                  style="s")
    assert several and refused == []
    assert {job.source.stem: job.kind for job in jobs} == {"a": PHOTO, "b": VIDEO, "c": GIF}
    assert {job.source.stem: job.target.suffix for job in jobs} == suffixes
    assert [job.is_clip for job in sorted(jobs, key=lambda j: j.source.name)] == [False, True, True]


def test_the_exported_kinds_table_describes_each_kind_once():
    assert list(EXPORTED) == [ONNX.name, TORCHSCRIPT.name, EXECUTORCH.name]
    assert [(k.suffix, k.label, k.format_tag, k.extra) for k in EXPORTED.values()] == [
        (".onnx", "ONNX", "fast-style/onnx", None), (".pt", "TorchScript", "fast-style/torchscript", None),
        (".pte", "ExecuTorch", "fast-style/executorch", "executorch")]


def test_no_module_but_the_table_spells_an_exported_kind():
    """A string constant "onnx", "torchscript" or "executorch" outside io/kinds.py (bench/ aside: its
    part names are benchmark names) would be a second description of the kind."""
    spelled = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative == "io/kinds.py" or relative.startswith("bench/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in EXPORTED:
                spelled.append((relative, node.lineno, node.value))
    assert spelled == []


def test_no_inference_module_is_over_300_lines():
    long = {p.relative_to(PACKAGE).as_posix(): n for p in (PACKAGE / "inference").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 300}
    assert long == {}


def test_finish_reads_colour_and_strength_from_the_options():
    photo = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    stylized = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))
    half = finish(stylized, photo, StylizeOptions(strength=0.25))
    assert torch.allclose(half, 0.25 * stylized + 0.75 * photo, atol=1e-6)
    # strength applied in the network already: the finish leaves the output as it is
    assert torch.equal(finish(stylized, photo, StylizeOptions(strength=0.25, strength_space="network")), stylized)
    kept = finish(stylized, photo, StylizeOptions(preserve_color=True))
    assert not torch.allclose(kept, stylized) and kept.min() >= 0 and kept.max() <= 1


def test_the_first_rule_that_applies_builds_the_runner(model_file, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(settings, "auto_candidates", lambda device: [torch.bfloat16, torch.float32])
    model = open_model(model_file)
    assert [rule.name for rule in RULES][-1] == "PyTorch as the options say"
    labels = {options: make_runner(model, StylizeOptions(device="cpu", **dict(options))).label
              for options in [(), (("runtime", "torch"),), (("precision", "fp32"),), (("runtime", "onnx"),),
                              (("precision", "bf16"),)]}
    assert labels == {(): "precision=auto", (("runtime", "torch"),): "precision=auto",
                      (("precision", "fp32"),): "onnxruntime", (("runtime", "onnx"),): "onnxruntime",
                      (("precision", "bf16"),): "PyTorch"}
