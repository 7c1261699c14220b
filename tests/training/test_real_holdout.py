"""Leave-one-real-source-out: the false-alarm check that stands in for users' own photos.

The end-to-end test trains a tiny model from random weights on synthetic images: it tests that the
held-out source never reaches training, that every one of its images is scored both ways, and the
report's figures, never detection quality.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.training.evalsupport import make_manifest
from tests.training.test_evaluate import TINY_CONFIG
from training.data import Sample

pytestmark = pytest.mark.timeout(900)


def _s(source: str, label: int, i: int = 0) -> Sample:
    return Sample(path=f"/x/{source}/{label}/{i}.jpg", label=label, source=source, group=f"{source}{label}{i}")


def test_false_alarms_counts_reals_called_fake_at_the_threshold_and_inside_the_band():
    from training.real_holdout import false_alarms

    probs = np.array([0.1, 0.3, 0.42, 0.44, 0.5, 0.9])
    out = false_alarms(probs, threshold=0.43, band=(0.4, 0.46))
    assert out == {"n": 6, "false_positive_rate": 0.5, "uncertain_share": round(2 / 6, 4),
                   "firm_fake_share": round(2 / 6, 4)}
    assert false_alarms(np.array([]), 0.5, (0.4, 0.6))["false_positive_rate"] is None


def test_only_sources_without_fakes_are_held_out_and_the_draw_is_fixed():
    from training.real_holdout import holdout_images, real_only_sources

    samples = [_s("dfdc", 0), _s("dfdc", 1), _s("gan", 1)] + [_s("photos", 0, i) for i in range(50)]
    assert real_only_sources(samples) == ["photos"]
    a = holdout_images(samples, "photos", cap=10, seed=3)
    assert len(a) == 10 and a == holdout_images(samples, "photos", cap=10, seed=3)
    assert all(s.source == "photos" and s.label == 0 for s in a)
    assert len(holdout_images(samples, "photos", cap=500, seed=3)) == 50


def test_left_out_real_source_leaves_training_and_validation():
    from training.train import TrainConfig, left_out

    samples = [_s("dfdc", 0), _s("dfdc", 1), _s("photos", 0), _s("gan", 1)]
    kept = left_out(samples, TrainConfig(exclude_real_sources=["photos"], exclude_fake_sources=["gan"]))
    assert [(s.source, s.label) for s in kept] == [("dfdc", 0), ("dfdc", 1)]


def test_held_out_aucs_rank_the_held_out_reals_against_each_fake_source():
    from training.real_holdout import held_out_aucs

    val = [Sample(f"{k}.jpg", 1, src, str(k)) for k, src in enumerate(["gan", "gan", "swap", "swap"])]
    val.append(Sample("r.jpg", 0, "real", "r"))
    logits = np.array([5.0, 6.0, -1.0, 0.5, -9.0])
    got = held_out_aucs(val, logits, np.array([0.0, 1.0]))
    assert got == {"gan": 1.0, "swap": 0.25}


def test_the_report_trains_without_the_source_and_scores_all_its_images(tmp_path):
    from training import evaluate

    manifest = make_manifest(tmp_path / "data", per_class=8)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY_CONFIG, "data": str(manifest)}))
    out = tmp_path / "loo_real"
    code = evaluate.main(["--leave-one-real-out", "--config", str(config), "--out", str(out), "--sources", "photos"])
    assert code == 0
    report = json.loads((out / "loo_real.json").read_text())
    row = report["rows"]["photos"]
    assert row["whole_image"]["n"] == 8  # every image of the held-out source
    assert 0.0 <= row["whole_image"]["false_positive_rate"] <= 1.0
    assert all(0.0 <= v <= 1.0 for v in row["held_out_vs_val_fakes_auc"].values())
    assert set(row["held_out_vs_val_fakes_auc"]) == {"gan", "swap"}  # threshold-free, per validation fake source
    assert row["client_crop"]["n"] + row["client_crop"]["refused_by_client"] == 8
    low, high = row["band"]
    assert low <= row["threshold"] <= high
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    assert json.loads((run / "config.json").read_text())["exclude_real_sources"] == ["photos"]
    assert not any("/photos/" in p for p in json.loads((run / "split.json").read_text())["val"])
    assert "| photos | 8 |" in (out / "loo_real.md").read_text()
    # A second call reuses the run instead of training again.
    assert evaluate.main(["--leave-one-real-out", "--config", str(config), "--out", str(out), "--sources", "photos",
                          "--no-train"]) == 0

    # Another checkpoint of the run, here the final model's weights alone, is scored by the same harness.
    import keras

    from training import real_holdout

    keras.models.load_model(run / "model.keras", compile=False).save_weights(run / "checkpoints" / "final.weights.h5")
    real_holdout.main(["--run", str(run), "--checkpoint", "checkpoints/final.weights.h5"])
    again = json.loads((run / "holdout_result_final.json").read_text())
    assert again["checkpoint"] == "checkpoints/final.weights.h5"
    assert again["threshold"] == pytest.approx(row["threshold"], abs=1e-3)
    assert again["whole_image"] == row["whole_image"]
    assert 0.0 <= again["validation"]["source_real_auc"] <= 1.0
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        real_holdout.score_checkpoint(run, "checkpoints/missing.keras")


def test_a_leave_one_out_resume_whose_adam_state_does_not_fit_ends_in_one_line_not_a_traceback(monkeypatch, capsys,
                                                                                                 tmp_path):
    from training import evaluate, real_holdout
    from training.train import ResumeMismatch

    def resumes_an_old_run(*args, **kwargs):
        raise ResumeMismatch("runs/x/checkpoints/stage2_last.optimizer.npz holds Adam's state for 20 variables")

    monkeypatch.setattr(real_holdout, "leave_one_real_out_main", resumes_an_old_run)
    code = evaluate.main(["--leave-one-real-out", "--config", str(tmp_path / "c.json"), "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: runs/x/checkpoints/stage2_last.optimizer.npz holds Adam's state for 20 variables")
    assert "Traceback" not in err
