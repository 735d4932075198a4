"""The flicker study's measurements (studies.flicker_study), without its training runs."""

from __future__ import annotations

import pytest
import torch
from helpers import TINY_LOSS, compose, random_photo

from fast_style.evaluation.evaluate import evaluate
from fast_style.io.images import load_image
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import save_style_model
from fast_style.nn.transformer import TransformerNet
from studies.flicker_study import (
    StudyError,
    compare,
    held_out_photos,
    score_model,
    table,
)


def test_the_scores_are_evaluate_s_feed_forward_losses_and_flicker(tmp_path):
    torch.manual_seed(0)
    model = save_style_model(TransformerNet(width=8, num_residual=1), tmp_path / "tiny.safetensors",
                             metadata=StyleModelMetadata(style_name="p", loss=TINY_LOSS, loss_net="random(seed=3)"))
    photos = tmp_path / "photos"
    photos.mkdir()
    random_photo(40, 32, seed=1).save(photos / "a.png")
    random_photo(36, 44, seed=2).save(photos / "b.png")
    random_photo(64, 48, seed=4).save(tmp_path / "painting.png")
    cfg = compose("evaluate", [
        f"ckpt={model}", f"images={photos}", "size=32", "iterations=[1]", "flicker=4", "style=custom",
        f"style.image={tmp_path / 'painting.png'}", f"output={tmp_path / 'eval'}", "progress=false"])
    expected = evaluate(cfg)
    scores = score_model(model, sorted(photos.iterdir()), style_image=load_image(tmp_path / "painting.png")[None],
                         size=32, frames=4)
    for got, want in zip(scores["per_photo"], expected["images"], strict=True):
        for key in ("content", "style", "tv", "total"):
            assert got[key] == pytest.approx(want["feed_forward"][key], rel=1e-5), key
        assert got["flicker"] == pytest.approx(want["flicker"], rel=1e-6)
    means = scores["means"]
    assert means["total"] == pytest.approx(expected["summary"]["methods"]["feed_forward"]["total"], rel=1e-5)
    assert means["flicker"] == pytest.approx(expected["summary"]["flicker"]["stylized"], rel=1e-6)
    assert means["flicker_input"] == pytest.approx(expected["summary"]["flicker"]["input"], rel=1e-6)


def test_held_out_photos_leave_the_training_photos_out(tmp_path):
    (tmp_path / "scored" / "sub").mkdir(parents=True)
    (tmp_path / "train").mkdir()
    for name in ("scored/a.png", "scored/sub/b.jpg", "scored/c.png", "train/c.jpg", "train/d.png"):
        random_photo(20, 16, seed=len(name)).save(tmp_path / name)
    trained = sorted((tmp_path / "train").iterdir())
    assert [p.name for p in held_out_photos(tmp_path / "scored", trained, limit=None)] == ["a.png", "b.jpg"]
    assert [p.name for p in held_out_photos(tmp_path / "scored", trained, limit=1)] == ["a.png"]
    with pytest.raises(StudyError, match=r"^images=.*train: every photo there is also a training photo"):
        held_out_photos(tmp_path / "train", trained, limit=None)
    with pytest.raises(StudyError, match=r"^images=.*nowhere: not a folder"):
        held_out_photos(tmp_path / "nowhere", trained, limit=None)


def means(flicker: float, total: float) -> dict[str, float]:
    return {"content": total * 0.6, "style": total * 0.4, "tv": 0.0, "total": total, "flicker": flicker,
            "flicker_input": 2.0}


def test_a_weight_meets_the_goals_only_with_half_the_flicker_and_at_most_a_tenth_more_loss():
    rows = compare({1e6: means(2.0, 108.0), 0.0: means(4.0, 100.0), 1e5: means(2.1, 101.0), 1e7: means(1.0, 111.0)})
    assert [r["temporal_weight"] for r in rows] == [0.0, 1e5, 1e6, 1e7]
    assert "goals_met" not in rows[0]
    assert [r["flicker_reduction"] for r in rows[1:]] == pytest.approx([4 / 2.1, 2.0, 4.0])
    assert [r["loss_ratio"] for r in rows[1:]] == pytest.approx([1.01, 1.08, 1.11])
    assert [r["goals_met"] for r in rows[1:]] == [False, True, False]
    text = table({"photos": ["a.png", "b.png"], "size": 256, "frames": 16, "rows": rows})
    for line in ("2 held-out photos (a.png, b.png), 256 px; flicker on 16-frame clips, 1/255 (input clips: 2.00)",
                 "| 0 | 4.00 |  | 60 | 40 | 0 | 100 |  |",
                 "| 1e+06 | 2.00 | 0.50x | 64.8 | 43.2 | 0 | 108 | 1.080x |",
                 "temporal_weight=1e+06: flicker 2.00x lower (goal >= 2x), total loss 1.080x (goal <= 1.1x): met",
                 "temporal_weight=100000: flicker 1.90x lower (goal >= 2x), total loss 1.010x (goal <= 1.1x): not met",
                 "temporal_weight=1e+07: flicker 4.00x lower (goal >= 2x), total loss 1.110x (goal <= 1.1x): not met"):
        assert line in text, line


def test_the_study_needs_a_positive_weight(tmp_path):
    from studies.flicker_study import FlickerStudySettings, run_study

    for weights in ([], [0.0], [-1.0, 1e5]):
        with pytest.raises(StudyError, match=r"^temporal_weights=.*: give one or more weights > 0"):
            run_study(FlickerStudySettings(output_dir=tmp_path, project=tmp_path), temporal_weights=weights, images=tmp_path,
                      num_images=None, size=32, frames=4)


@pytest.mark.slow
def test_the_script_refuses_a_study_without_a_positive_weight_in_one_line(tmp_path):
    from helpers import run_entry

    result = run_entry("scripts/flicker_study.py", "temporal_weights=[0]", f"output_dir={tmp_path / 'study'}",
                       cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == "error: temporal_weights=[0.0]: give one or more weights > 0, e.g. [1e6]"
    assert not (tmp_path / "study").exists()
