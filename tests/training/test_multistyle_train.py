"""Training several styles in one network, and adding a style to a trained one (#15):
per-style loss targets, the style schedule, the command line, fine-tuning's frozen
tensors (bit for bit), and train.py end to end."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from helpers import TINY_OVERRIDES, compose_train, random_photo, run_entry, tiny_module
from PIL import Image
from safetensors import safe_open
from torch.utils.data import DataLoader

from fast_style.cli import style_list_overrides
from fast_style.errors import FastStyleError
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import open_model, save_style_model
from fast_style.nn.losses import PerceptualLoss
from fast_style.nn.transformer import TransformerNet
from fast_style.nn.vgg import VGGFeatures
from fast_style.training.checkpoints import Checkpoint
from fast_style.training.finetune import FinetuneError, copy_base, grown_arch, open_base
from fast_style.training.module import (
    LOSS_NET_PREFIX,
    StyleTransferModule,
    style_order,
    style_schedule,
)
from fast_style.training.styles import style_list
from fast_style.training.train import check_resumable, train
from fast_style.training.validation import check_train_config

NORMS = ("weight", "bias")


def _one_hot(style: int, count: int, batch: int = 1) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.full((batch,), style), count).float()


# ------------------------------------------------------------------------------ the loss


def test_each_image_is_compared_with_its_own_style():
    torch.manual_seed(0)
    vgg = VGGFeatures(layers=["relu1_2", "relu2_2"], pretrained=False)
    terms = {"content_layers": {"relu2_2": 1.0}, "style_layers": {"relu1_2": 1.0, "relu2_2": 0.5},
             "content_weight": 2.0, "style_weight": 1e3, "tv_weight": 0.1}
    paintings = [torch.rand(1, 3, 40, 48), torch.rand(1, 3, 56, 32)]  # each its own size
    both = PerceptualLoss(loss_net=vgg, style_image=paintings, **terms)
    alone = [PerceptualLoss(loss_net=vgg, style_image=p, **terms) for p in paintings]
    assert both.style_grams.relu1_2.shape == (2, 64, 64) and alone[0].style_grams.relu1_2.shape == (1, 64, 64)
    torch.testing.assert_close(both.style_grams.relu2_2[1:], alone[1].style_grams.relu2_2, rtol=0, atol=0)

    y, x = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    index = torch.tensor([1, 0, 1])
    got = both(y, x, index)
    assert got["style_per_image"].shape == (3,)
    for n, k in enumerate(index.tolist()):
        torch.testing.assert_close(got["style_per_image"][n], alone[k](y[n:n + 1], x[n:n + 1])["style"], rtol=1e-5, atol=0)
    torch.testing.assert_close(got["style"], got["style_per_image"].mean())
    torch.testing.assert_close(alone[0](y, x)["style"], alone[0](y, x, torch.zeros(3, dtype=torch.long))["style"])
    with pytest.raises(ValueError, match="style_index"):
        both(y, x)


# -------------------------------------------------------------------------- the schedule


def test_schedule_is_balanced_deterministic_and_continues_across_ranks():
    order = style_order(4, seed=3)
    assert sorted(order) == [0, 1, 2, 3] and order == style_order(4, seed=3)
    assert len({tuple(style_order(4, seed=s)) for s in range(10)}) > 1  # the seed draws the order
    for step in range(6):  # N >= S: every style in every step, as evenly as can be
        counts = Counter(style_schedule(step, 6, order=order))
        assert set(counts) == {0, 1, 2, 3} and max(counts.values()) - min(counts.values()) <= 1
    # step t+1 goes on where step t ended; the W ranks of a step are one batch of N*W
    assert style_schedule(0, 3, order=order) + style_schedule(1, 3, order=order) == style_schedule(0, 6, order=order)
    ranks = [style_schedule(5, 2, rank=r, world_size=2, order=order) for r in range(2)]
    assert ranks[0] + ranks[1] == style_schedule(5, 4, order=order)
    assert not set(ranks[0]) & set(ranks[1])  # the two ranks of a step train different styles


def _module(styles=("a", "b"), **kwargs) -> StyleTransferModule:
    return tiny_module(styles=tuple(styles), **kwargs)


class _Record(pl.Callback):
    def __init__(self):
        self.styles, self.metrics = [], []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.styles.append(module.batch_styles(batch.shape[0], batch_idx))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.metrics.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def _fit(module, tmp_path, steps: int, images: torch.Tensor | None = None, **kwargs) -> _Record:
    record = _Record()
    images = torch.rand(4, 3, 32, 32) if images is None else images
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                         callbacks=[record], **kwargs)
    trainer.fit(module, DataLoader(images, batch_size=2))
    return record


def test_training_steps_follow_the_schedule_and_log_each_style(tmp_path):
    module = _module(("a", "b", "c"))
    record = _fit(module, tmp_path, steps=3)
    assert sum(record.styles, []) == [module.order[i % 3] for i in range(6)]
    assert {"train/style/a", "train/style/b", "train/style/c", "train/style"} <= set().union(*record.metrics)
    assert all(v == v for m in record.metrics for v in m.values())  # finite, logged as tensors


@pytest.mark.parametrize("style_lr", [None, 0.05])
def test_style_lr_moves_the_style_rows_at_their_own_rate(tmp_path, style_lr):
    module = _module(lr=1e-3, style_lr=style_lr)
    before = {k: v.clone() for k, v in module.transformer.state_dict().items()}
    _fit(module, tmp_path, steps=1)  # Adam's first step moves every parameter with a gradient by about its lr
    after = module.transformer.state_dict()
    row_moves = [(after[k] - before[k]).abs().max() for k in before if ".norm." in k]
    conv_moves = [(after[k] - before[k]).abs().max() for k in before if ".conv." in k and k.endswith("weight")]
    rows = style_lr or 1e-3
    assert max(row_moves) == pytest.approx(rows, rel=0.01) and max(conv_moves) == pytest.approx(1e-3, rel=0.01)


def test_temporal_term_gives_both_views_the_same_styles():
    module = _module(loss={"temporal_weight": 1.0})
    first, second = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    weights = module.style_weights(torch.tensor([1, 0]))
    together = module._stylize_views(first, second, weights)
    with torch.no_grad():
        for got, x in zip(together, (first, second), strict=True):
            torch.testing.assert_close(got, module.transformer(x, weights), rtol=1e-5, atol=1e-6)
    losses = module.step_losses(first, torch.tensor([1, 0]))
    assert losses["temporal"] > 0 and losses["style_per_image"].shape == (2,)


# ------------------------------------------------------------------------ command line


@pytest.mark.parametrize("given, expected", [
    (["style=[a,b]", "lr=1"], ["style=multi", "styles=[a,b]", "lr=1"]),
    (["-m", "style=[a,b],[c,d]"], ["-m", "style=multi", "styles=[a,b],[c,d]"]),
    (["styles=[a,b]"], ["style=multi", "styles=[a,b]"]),
    (["style=multi", "styles=[a,b]"], ["style=multi", "styles=[a,b]"]),
    (["style=starry_night", "style.size=512"], ["style=starry_night", "style.size=512"]),
    (["-m", "style=starry_night,udnie"], ["-m", "style=starry_night,udnie"]),
])
def test_style_lists_become_style_multi(given, expected):
    assert style_list_overrides(given) == expected


def test_a_list_of_names_and_image_paths(tmp_path):
    painting = tmp_path / "art" / "my_painting.png"
    painting.parent.mkdir()
    random_photo(40, 30, seed=1).save(painting)
    cfg = compose_train(style_list_overrides([f"style=[starry_night,{painting}]", f"data.root={tmp_path}"]))
    check_train_config(cfg)
    assert cfg.style.name == "starry_night+my_painting"
    named, image = style_list(cfg)
    assert named["name"] == "starry_night" and len(named["sha256"]) == 64 and named["size"] == 256
    assert image == {"name": "my_painting", "file": None, "url": None, "sha256": None, "image": str(painting),
                     "size": 256, "procedural": None}
    sized = compose_train(["style=multi", f"styles=[starry_night,{painting}]", "style.size=128"])
    assert [s["size"] for s in style_list(sized)] == [128, 128]  # style.size, when set, is every style's


def test_styles_in_an_experiment_config(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "two.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /style: multi\nstyles: [udnie, great_wave]\n")
    cfg = compose_train([f"hydra.searchpath=[file://{tmp_path}]", "experiment=two"])
    check_train_config(cfg)
    assert cfg.style.name == "udnie+great_wave"
    assert [s["file"] for s in style_list(cfg)] == ["udnie.jpg", "great_wave.jpg"]


@pytest.mark.parametrize("overrides, message", [
    (["style=[starry_night,nope]"], "styles: no style named 'nope'; use one of composition_vii, demo, great_wave"),
    (["style=[starry_night,starry_night]"], "starry_night is listed twice"),
    (["style=multi", "styles=[]"], "styles=[]: list at least one style"),
    (["style=multi"], "style=multi needs the list of styles"),
    (["style=starry_night", "styles=[udnie,great_wave]"], "use style=multi with styles"),
    (["style=[udnie,great_wave]", "model=transformer_original"], "several styles need model.norm=instance"),
    (["style=[udnie,no/such.png]"], "styles: no/such.png: no such image file"),
    (["style=[udnie]", "finetune_from=missing.safetensors"], "finetune_from=missing.safetensors: no such file"),
    (["style=[udnie]", "finetune_from=/tmp"], "finetune_from=/tmp: a folder; give the style model file"),
    (["style=[udnie,great_wave]", "experiment=demo"], "set check=null to train several styles"),
])
def test_bad_style_lists_are_one_line(overrides, message):
    cfg = compose_train(style_list_overrides(overrides))
    with pytest.raises(FastStyleError) as info:
        check_train_config(cfg)
        style_list(cfg)
    assert message in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------------- fine-tuning


def _saved(tmp_path, network: TransformerNet, name: str, **metadata) -> Path:
    with torch.no_grad():  # norms that differ from their initial ones, row by row
        for parameter in network.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    path = tmp_path / f"{name}.safetensors"
    save_style_model(network, path, metadata=StyleModelMetadata(style_name=name, **metadata))
    return path


def test_finetune_trains_only_the_new_rows_and_old_styles_stay_bit_for_bit(tmp_path):
    torch.manual_seed(0)
    path = _saved(tmp_path, TransformerNet(width=8, num_residual=1, num_styles=2), "a+b", styles=["a", "b"])
    base = open_base(path, new_names=["c"])
    assert base.names == ["a", "b"]
    module = _module(("a", "b", "c"), model=grown_arch(base, 1), style_image=[torch.rand(1, 3, 32, 32)],
                     frozen_styles=2)
    copy_base(module.transformer, base.network)
    learning = {n for n, p in module.transformer.named_parameters() if p.requires_grad}
    assert learning == {n for n in module.transformer.state_dict() if n.rsplit(".", 1)[-1] in NORMS and ".norm" in n}
    old = {k: v.clone() for k, v in base.network.state_dict().items()}
    torch.testing.assert_close(module.transformer.conv1.norm.bias[2], old["conv1.norm.bias"].mean(0))

    record = _fit(module, tmp_path, steps=3)
    assert all(s == [0, 0] for s in record.styles)  # only the new style is drawn (index into the trained ones)
    assert set(module.configure_optimizers().param_groups[0]["params"]) == set(
        p for p in module.transformer.parameters() if p.requires_grad)
    now = module.transformer.state_dict()
    for key, value in old.items():
        if now[key].shape == value.shape:
            assert torch.equal(now[key], value), key
        else:
            assert torch.equal(now[key][:2], value), key
    assert not torch.equal(now["conv1.norm.weight"][2], old["conv1.norm.weight"].mean(0))  # the new row learnt
    x = torch.rand(2, 3, 36, 28)
    module.transformer.eval()
    with torch.no_grad():
        for style in (0, 1):  # the old styles' images do not change
            assert torch.equal(module.transformer(x, _one_hot(style, 3, 2)), base.network(x, _one_hot(style, 2, 2)))


def test_finetune_from_a_one_style_model_and_its_errors(tmp_path):
    torch.manual_seed(1)
    path = _saved(tmp_path, TransformerNet(width=8, num_residual=1), "wave")
    base = open_base(path, new_names=["c"])
    assert base.names == ["wave"] and grown_arch(base, 1)["num_styles"] == 2
    grown = TransformerNet(**grown_arch(base, 1)).eval()
    copy_base(grown, base.network)
    assert torch.equal(grown.conv1.norm.weight[0], base.network.conv1.norm.weight)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(grown(x, _one_hot(0, 2)), base.network(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(FinetuneError, match=r"already holds style 'wave' \(its styles: wave\)"):
        open_base(path, new_names=["c", "wave"])
    batch = _saved(tmp_path, TransformerNet(width=8, num_residual=1, norm="batch"), "old")
    with pytest.raises(FinetuneError, match="a batch-norm network"):
        open_base(batch, new_names=["c"])
    with pytest.raises(FinetuneError, match=r"^finetune_from=.*nothing.safetensors: no such checkpoint file"):
        open_base(tmp_path / "nothing.safetensors", new_names=["c"])


@pytest.mark.parametrize("make,message", [
    (lambda path: path.write_text("hello"), "not a checkpoint"),
    (lambda path: path.write_bytes(b"\x80\x04junk"), "not a readable torch checkpoint"),
    (lambda path: torch.save({"state_dict": {"x": torch.zeros(2)}}, path), "not a fast-style training checkpoint"),
    (lambda path: torch.save(torch.nn.Conv2d(3, 8, 3).state_dict(), path), "neither a Lightning checkpoint nor a style"),
    (lambda path: path.mkdir(), "is a folder"),
], ids=["text", "truncated pickle", "another module's checkpoint", "another architecture", "a folder"])
def test_finetune_from_what_is_not_a_style_model_is_one_line(tmp_path, make, message):
    path = tmp_path / "base.ckpt"
    make(path)
    with pytest.raises(FinetuneError, match=f"^finetune_from={path}: .*{message}") as error:
        open_base(path, new_names=["c"])
    assert "\n" not in str(error.value)


def test_finetune_run_resumes(tmp_path, image_folder, style_file):
    torch.manual_seed(2)
    path = _saved(tmp_path, TransformerNet(width=8, num_residual=1, num_styles=2), "a+b", styles=["a", "b"])

    def run(run_dir: str, *extra: str, name: str = "c") -> dict:
        return train(compose_train([
            *TINY_OVERRIDES, "style=custom", f"style.image={style_file}", f"style.name={name}", f"finetune_from={path}",
            f"data.root={image_folder}", f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / run_dir}",
            "~logger", "callbacks.style_samples.every_n_steps=0", *extra]))

    first = run("run1", "trainer.max_steps=1")
    assert Path(first["style_model"]).name == "a+b+c.safetensors"
    second = run("run2", "trainer.max_steps=2", f"ckpt_path={first['last_ckpt']}")
    assert second["global_step"] == 2
    model, old = open_model(second["style_model"]), open_model(path)
    assert model.metadata.styles == ["a", "b", "c"] and model.network.num_styles == 3
    assert torch.equal(model.network.residuals[0].norm2.weight[:2], old.network.residuals[0].norm2.weight)
    other = _module(("a", "b", "d"), model=grown_arch(open_base(path, new_names=["d"]), 1),
                    style_image=[torch.rand(1, 3, 32, 32)], frozen_styles=2)
    shapes = {k: tuple(v.shape) for k, v in other.state_dict().items() if not k.startswith(LOSS_NET_PREFIX)}
    trained = Checkpoint(path=Path("abc.ckpt"), global_step=1, hparams={**other.hparams, "styles": ["a", "b", "c"]},
                         shapes=shapes)  # the same tensors, other styles
    with pytest.raises(FastStyleError, match="trained styles a, b, c, this run a, b, d"):
        check_resumable(trained, other)


# --------------------------------------------------------------------------- end to end


@pytest.mark.heavy  # make test-all: one of the slowest end-to-end runs (12-40 s)
@pytest.mark.slow
def test_train_py_several_styles_then_add_one(tmp_path, image_folder, style_file):
    other = tmp_path / "other.png"
    random_photo(48, 64, seed=7).save(other)
    common = [*TINY_OVERRIDES, f"data.root={image_folder}", f"paths.root_dir={tmp_path}", "trainer.max_steps=2",
              "callbacks.style_samples.every_n_steps=2", "trainer.log_every_n_steps=1"]
    first = run_entry("train.py", *common, f"style=[{style_file},demo]", f"hydra.run.dir={tmp_path / 'run1'}",
                      cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert ("2 styles share each batch of 2: each style gets 1 image a step, a one-style run with the same "
            "batch 2 (data.batch_size=4 matches it)") in first.stdout + first.stderr
    two = tmp_path / "checkpoints" / "painting+demo.safetensors"
    with safe_open(str(two), framework="pt") as handle:
        meta, norm = handle.metadata(), handle.get_tensor("residuals.0.norm1.weight")
    assert json.loads(meta["styles"]) == ["painting", "demo"] and meta["style_name"] == "painting+demo"
    assert norm.shape == (2, 32) and json.loads(meta["arch"])["num_styles"] == 2
    grid = Image.open(tmp_path / "run1" / "samples" / "step_0000002.png")
    assert grid.size == (2 * 32 + 3 * 2, 3 * 32 + 4 * 2)  # photos, then one row per style
    events = b"".join(p.read_bytes() for p in (tmp_path / "run1" / "tensorboard").glob("events.out.tfevents.*"))
    assert b"train/style/painting" in events and b"train/style/demo" in events

    second = run_entry("train.py", *common, f"finetune_from={two}", f"style=[{other}]", "model.width=16", "~logger",
                       f"hydra.run.dir={tmp_path / 'run2'}", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "using the file's architecture" in second.stdout + second.stderr
    assert "styles share each batch" not in second.stdout + second.stderr  # one style is trained
    three = open_model(tmp_path / "checkpoints" / "painting+demo+other.safetensors")
    before = open_model(two)
    assert three.metadata.styles == ["painting", "demo", "other"] and three.network.num_styles == 3
    for key, value in before.network.state_dict().items():
        assert torch.equal(three.network.state_dict()[key][: len(value)] if value.dim() == 2 else
                           three.network.state_dict()[key], value), key
