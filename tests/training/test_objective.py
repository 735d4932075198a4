"""The objective a run returns to a sweeper, objective.json, and the hparams TensorBoard lists."""

import json

import pytest
import torch
from helpers import (
    REPO,
    TINY_LOSS,
    TINY_OVERRIDES,
    compose_train,
    random_photo,
    tensorboard_hparams,
    tiny_module,
)

from fast_style.errors import FastStyleError
from fast_style.training.objective import (
    Photos,
    compute_objective,
    objective_options,
    unit_terms,
    weigh,
)
from fast_style.training.train import train

pytestmark = pytest.mark.usefixtures("reuse_random_vgg")

WEIGHTS = {key: TINY_LOSS[key] for key in ("content_weight", "style_weight", "tv_weight")}
REFERENCE = {"content_weight": 2.0, "style_weight": 3.0e9, "tv_weight": 5.0}


def test_heldout_total_is_the_training_loss_of_the_photos_by_hand():
    """The run's weights give PerceptualLoss(T(x), x)['total'] of all photos in one batch (here
    three photos in batches of 2 and 1); the reference weights the same unit terms."""
    module = tiny_module(seed=3)
    photos = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    unit = unit_terms(module, photos, batch_size=2)
    terms, reference = weigh(unit, WEIGHTS), weigh(unit, REFERENCE)
    module.eval()
    with torch.no_grad():
        by_hand = module.loss(module.transformer(photos), photos)
    for name in ("content", "style", "tv", "total"):
        torch.testing.assert_close(terms[name], float(by_hand[name]), rtol=1e-5, atol=0)
    expected = sum(REFERENCE[f"{n}_weight"] * float(by_hand[n]) / WEIGHTS[f"{n}_weight"] for n in ("content", "style", "tv"))
    torch.testing.assert_close(reference["total"], expected, rtol=1e-5, atol=0)
    assert module.loss.style_weight == WEIGHTS["style_weight"]  # the unit weights were put back


def test_a_multi_style_objective_is_the_mean_over_its_styles():
    module = tiny_module(styles=("a", "b"), seed=4)
    photos = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    module.train()
    total = weigh(unit_terms(module, photos), WEIGHTS)["total"]
    assert module.training  # put back in training mode
    module.eval()
    by_hand = []
    with torch.no_grad():
        for k in range(2):
            index = torch.full((2,), k)
            by_hand.append(float(module.loss(module.transformer(photos, module.style_weights(index)), photos, index)["total"]))
    torch.testing.assert_close(total, sum(by_hand) / 2, rtol=1e-5, atol=0)
    assert abs(by_hand[0] - by_hand[1]) > 1e-6 * abs(by_hand[0])  # the two styles differ: a real mean


def _cfg(tmp_path, image_folder, style_file, *extra):
    return compose_train(TINY_OVERRIDES + [
        "style=custom", f"style.image={style_file}", f"data.root={image_folder}", f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / 'run'}", "trainer.max_steps=2", "trainer.log_every_n_steps=1",
        "callbacks.style_samples.every_n_steps=0", *extra])


def test_options_resolve_the_photos_and_the_reference_weights(tmp_path, image_folder, style_file):
    cfg = _cfg(tmp_path, image_folder, style_file, "loss.style_weight=5e9", "objective.reference_weights.tv_weight=7")
    options = objective_options(cfg)
    assert options["kind"] == "heldout" and options["images"] is None and options["size"] == 32
    assert options["weights"]["style_weight"] == 5e9
    # the sweep's style weight is not the reference: the preset's is; tv from objective.reference_weights
    assert options["reference_weights"] == {"content_weight": 1e5, "style_weight": 1e10, "tv_weight": 7.0,
                                            "colour_weight": 0.0}
    assert options["reference_source"].endswith("configs/loss/perceptual.yaml")
    demo = objective_options(compose_train(["experiment=demo", f"paths.root_dir={tmp_path}", "objective.size=64"]))
    assert demo["images"] == [str(tmp_path / "data" / "demo" / "held_out")] and demo["source"] == "check.images"
    assert demo["demo_photos"] and demo["size"] == 64
    assert objective_options(_cfg(tmp_path, image_folder, style_file, "objective=none"))["kind"] == "none"
    with pytest.raises(FastStyleError, match="objective=best: use one of heldout, train_total, none"):
        objective_options(_cfg(tmp_path, image_folder, style_file, "objective.kind=best"))
    with pytest.raises(FastStyleError, match="objective.reference_weights.tv_weight=-1.0: must be 0 or more"):
        objective_options(_cfg(tmp_path, image_folder, style_file, "objective.reference_weights.tv_weight=-1"))
    for value in ("inf", "nan"):  # neither is below 0, and either would make every run's objective the same
        with pytest.raises(FastStyleError, match=f"objective.reference_weights.colour_weight={value}: must be a finite"):
            objective_options(_cfg(tmp_path, image_folder, style_file, f"objective.reference_weights.colour_weight={value}"))


def test_returns_reference_gives_the_reference_total_and_is_refused_where_there_is_none(tmp_path, image_folder,
                                                                                      style_file):
    """objective.returns=reference (a sweep over the loss weights) returns reference.total, the
    same unit terms under the preset's weights, not the run's; train_total has no reference."""
    import pytorch_lightning as pl

    cfg = _cfg(tmp_path, image_folder, style_file, "loss.style_weight=5e9", "objective.returns=reference")
    options = objective_options(cfg)
    assert options["returns"] == "reference" and objective_options(_cfg(tmp_path, image_folder, style_file))["returns"] == "total"
    module = tiny_module(seed=5)
    photos = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    by_kind = {}
    for returns in ("reference", "total"):
        record = compute_objective({**options, "returns": returns}, module=module, trainer=trainer,
                                   photos=Photos(photos, ("a", "b"), "test"))
        by_kind[returns] = record
        assert record["returns"] == returns
    reference, total = by_kind["reference"], by_kind["total"]
    assert reference["value"] == reference["reference"]["total"] and total["value"] == total["terms"]["total"]
    assert reference["reference"]["total"] == pytest.approx(total["reference"]["total"], rel=1e-12)
    # the preset's style weight 1e10 against the run's 5e9: the two totals differ by 5e9 * s
    gap = reference["value"] - total["value"]
    assert gap == pytest.approx(5e9 * reference["unit_terms"]["style"], rel=1e-9) and gap > 0
    with pytest.raises(FastStyleError, match="objective.returns=best: use total .* or reference"):
        objective_options(_cfg(tmp_path, image_folder, style_file, "objective.returns=best"))
    with pytest.raises(FastStyleError, match="objective.returns=reference needs objective=heldout"):
        objective_options(_cfg(tmp_path, image_folder, style_file, "objective=train_total", "objective.returns=reference"))


@pytest.mark.parametrize("bad", ["not_an_image", "missing_folder"])
def test_a_bad_objective_photo_is_one_line_before_training(tmp_path, image_folder, style_file, bad):
    held = tmp_path / "held"
    held.mkdir()
    random_photo(40, 40, seed=5).save(held / "good.png")
    (held / "notes.jpg").write_text("not a photo")
    target = held if bad == "not_an_image" else tmp_path / "nowhere"
    with pytest.raises(FastStyleError) as info:
        train(_cfg(tmp_path, image_folder, style_file, f"objective.images={target}"))
    message = str(info.value)
    assert "\n" not in message and str(held / "notes.jpg" if bad == "not_an_image" else target) in message
    assert "objective" in message and not (tmp_path / "run" / "checkpoints").exists()  # no training started


def _train_entry():
    """The root train.py as a module: its Hydra task function is ``main.hydra_main.__wrapped__``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_entry", REPO / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_run_returns_its_heldout_objective_and_tensorboard_lists_its_hparams(tmp_path, image_folder, style_file):
    task = _train_entry().main.hydra_main.__wrapped__  # what Hydra's launcher calls, the sweeper reads
    returned = task(_cfg(tmp_path, image_folder, style_file, "loss.style_weight=5e9", "lr=2e-3"))
    record = json.loads((tmp_path / "run" / "objective.json").read_text())
    assert isinstance(returned, float) and returned == record["value"] and record["kind"] == "heldout" and record["step"] == 2
    assert len(record["photos"]) == 2 and all(p.startswith("photo_") or p == "nested.jpg" for p in record["photos"])
    assert record["photos_source"].startswith("data samples") and record["size"] == 32
    terms, unit, ref = record["terms"], record["unit_terms"], record["reference"]
    assert terms["total"] == pytest.approx(terms["content"] + terms["style"] + terms["tv"], rel=1e-12)
    assert terms["style"] == pytest.approx(5e9 * unit["style"], rel=1e-12)
    assert ref["style"] == pytest.approx(1e10 * unit["style"], rel=1e-12) and ref["weights"]["style_weight"] == 1e10
    assert json.loads((tmp_path / "run" / "finished.json").read_text())["objective"] == record["value"]

    params, metrics, curves = tensorboard_hparams(tmp_path / "run" / "tensorboard")
    scalars = {tag: points[-1][1] for tag, points in curves.items()}
    assert params["loss.style_weight"] == 5e9 and params["lr"] == 2e-3 and params["style"] == "custom"
    assert params["trainer.max_steps"] == 2 and params["data.batch_size"] == 2 and params["model"] == "tiny"
    assert params["data.image_size"] == 32 and params["styles"] == "custom"
    assert {"final/objective", "final/reference_total", "final/train_total", "final/steps_per_s"} <= set(metrics)
    assert scalars["final/objective"] == pytest.approx(record["value"], rel=1e-6)
    assert scalars["final/reference_total"] == pytest.approx(ref["total"], rel=1e-6)
    assert scalars["final/train_total"] == pytest.approx(scalars["train/total"], rel=1e-6) and scalars["final/steps_per_s"] > 0
    assert [step for step, _ in curves["train/total"]] == [0, 1]  # the final metrics have names of their own, not a point on a curve
