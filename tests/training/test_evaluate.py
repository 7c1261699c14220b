"""End to end on images the tests make: train -> leave-one-out matrix -> export -> calibrate -> evaluate.

The models here train for one epoch from random weights on a few dozen synthetic images: they test
the plumbing and the report's shape, never detection quality.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving import contract
from tests.training.evalsupport import make_manifest

# The module fixture trains and exports once; on busy shared cores that alone can pass the default 300 s.
pytestmark = pytest.mark.timeout(900)

SHARED_FACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "faces" / "manifest.csv"

TINY_CONFIG = {
    "weights": None, "val_fraction": 0.25, "cache_views": 1, "cache_sbi_views": 1, "sbi_fraction": 0.25,
    "frozen_epochs": 1, "frozen_batch": 8, "frozen_patience": 1, "finetune_epochs": 0, "finetune_blocks": 0,
    "verbose": 0, "workers": 1,
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A synthetic manifest, its tiny config, and a leave-one-out run over it (via the evaluate CLI)."""
    from training import evaluate

    root = tmp_path_factory.mktemp("tiny")
    manifest = make_manifest(root / "data", per_class=8)
    config = root / "tiny.json"
    config.write_text(json.dumps({**TINY_CONFIG, "data": str(manifest)}))
    out = root / "loo"
    code = evaluate.main(["--leave-one-out", "--config", str(config), "--out", str(out), "--sources", "swap",
                          "--no-reference"])  # one training keeps the test fast
    assert code == 0
    return {"root": root, "manifest": manifest, "config": config, "loo": out}


def test_leave_one_out_run_produces_the_matrix(tiny):
    matrix = json.loads((tiny["loo"] / "loo.json").read_text())
    assert matrix["columns"] == ["gan", "swap"]
    assert set(matrix["rows"]) == {"swap"}
    row = matrix["rows"]["swap"]
    assert row["against"]["swap"] == "swap real"
    assert row["against"]["gan"].startswith("real photos")
    assert set(row["in_distribution"]) == {"gan"}
    assert row["held_out"] is not None and 0.0 <= row["held_out"] <= 1.0
    md = (tiny["loo"] / "loo.md").read_text()
    assert "\n| swap" in md and "| **" in md  # the held-out cell is bold
    assert "Quick-budget" in md
    # weights=None nets answer a constant: the matrix must say so rather than pass it off as a result
    assert isinstance(row["degenerate"], bool)
    # the held-out run really trained without swap fakes
    held_cfg = json.loads(next(tiny["loo"].glob("without-swap-*/config.json")).read_text())
    assert held_cfg["exclude_fake_sources"] == ["swap"]



def test_a_checkpoint_of_a_leave_one_out_run_is_scored_as_the_matrix_scores_the_run(tiny, capsys):
    from training import ablation

    run = next(tiny["loo"].glob("without-swap-*"))
    ablation.main(["--run", str(run), "--checkpoint", "model.keras"])
    written = json.loads((run / "eval_result_model.json").read_text())
    matrix_row = json.loads((run / "eval_result.json").read_text())
    assert written["excluded"] == ["swap"]
    assert written["per_fake_source"] == matrix_row["per_fake_source"]
    assert written["overall_auc"] == matrix_row["overall_auc"]
    assert "swap" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        ablation.score_checkpoint(run, "checkpoints/missing.keras")

@pytest.fixture(scope="module")
def calibrated(tiny):
    """The tiny run's all-sources model calibrated by the CLI and exported with that info (once)."""
    import keras

    from training import calibrate
    from training.export import ExportInfo, export

    root = tiny["root"]
    checkpoint = next(tiny["loo"].glob("without-swap-*/model.keras"))  # any trained model will do for plumbing
    info_path = root / "info.json"
    calibrate.main(["--checkpoint", str(checkpoint), "--manifest", str(tiny["manifest"]), "--out", str(info_path),
                    "--val-fraction", "0.25", "--plot", str(root / "rel.png")])
    info = json.loads(info_path.read_text())
    version = export(keras.models.load_model(checkpoint), root / contract.MODEL_NAME, ExportInfo(**info))
    return {"info": info, "version": version, "base": root / contract.MODEL_NAME, "plot": root / "rel.png"}


def test_calibrate_writes_exportinfo_json_and_a_reliability_png(calibrated):
    info = calibrated["info"]
    assert calibrated["plot"].stat().st_size > 1000
    assert info["temperature"] > 0
    assert info["uncertain_band"][0] <= info["threshold"] <= info["uncertain_band"][1]
    assert {"ece_before", "ece_after", "validation", "per_source"} <= set(info["metrics"])


def test_export_then_evaluate_end_to_end(tiny, calibrated, tmp_path):
    from training import evaluate

    version, info = calibrated["version"], calibrated["info"]
    report_path = tmp_path / "eval.json"
    assert evaluate.main(["--model", str(calibrated["base"]), "--manifest", str(tiny["manifest"]),
                          "--json", str(report_path), "--split", "all", "--plots", str(tmp_path / "plots"),
                          "--shortcut-max", "8", "--whole-photos", "--whole-photos-max", "6"]) == 0
    report = json.loads(report_path.read_text())
    assert report["model"]["path"] == str(version)
    assert report["model"]["threshold"] == pytest.approx(info["threshold"])
    assert {"overall", "per_source", "pairings", "reliability", "shortcut_check", "plots"} <= set(report)
    assert report["overall"]["n"] == 32
    for key in ("auc", "accuracy", "balanced_accuracy", "ece"):
        assert report["overall"][key] is not None
    assert set(report["per_source"]) == {"swap", "gan", "photos"}
    assert report["per_source"]["gan"]["auc"] is None and report["per_source"]["gan"]["accuracy"] is not None
    assert set(report["pairings"]) == {"swap_fake_vs_swap_real", "gan_vs_real_photos"}
    assert report["pairings"]["gan_vs_real_photos"]["n"] == 8 + 16  # gan fakes vs every real
    assert set(report["shortcut_check"]["swap"]) >= {"original", "jpeg_q50", "jpeg_q75"}
    assert all(Path(p).stat().st_size > 1000 for p in report["plots"].values())
    whole = report["whole_photos"]
    assert whole["n"] + whole["refused_by_client"] == 6
    assert {"as_is", "client_crop", "face_found_share", "detector"} <= set(whole)


def test_compare_scores_two_versions_on_the_same_images_and_refuses_a_missing_one(tiny, calibrated, tmp_path,
                                                                                  capsys):
    from training import compare

    out = tmp_path / "compare.json"
    args = ["--base", str(calibrated["version"]), "--manifest", str(tiny["manifest"]), "--split", "all",
            "--n-boot", "50", "--json", str(out)]
    assert compare.main([*args, "--candidate", str(calibrated["base"])]) == 0  # the base folder: its highest version
    report = json.loads(out.read_text())
    assert report["data"]["n"] == 32 and report["candidate"] == str(calibrated["version"])
    assert {"overall_auc", "swap_fake_vs_swap_real_auc", "gan_vs_real_photos_auc", "photos_false_alarms"} <= set(
        report["figures"])
    assert all(f["difference"] == 0 and f["verdict"] == "within noise" for f in report["figures"].values())
    assert "| overall_auc | 32 |" in capsys.readouterr().out
    assert compare.main([*args, "--candidate", str(tmp_path / "nothing" / "9")]) == 2
    assert "error:" in capsys.readouterr().err


def test_short_run_on_shared_faces(calibrated):
    if not SHARED_FACES.is_file():
        print(f"skipping: {SHARED_FACES} is absent (shared data lives beside the repo)")
        pytest.skip(f"shared face data absent: {SHARED_FACES}")
    from training import evaluate

    report = evaluate.evaluate(evaluate.EvalConfig(model=str(calibrated["version"]),
                                                   manifest=str(SHARED_FACES), split="val", max_per_source=3,
                                                   shortcut_max=6))
    import csv

    with SHARED_FACES.open() as f:
        rows = list(csv.DictReader(f))
    groups = {(r["source"], r["label"]) for r in rows}  # every (source, label) the shared data has, 3 images each
    reals = sorted({src for src, label in groups if label == "real"})
    assert report["overall"]["n"] == 3 * len(groups)
    assert set(report["per_source"]) == {src for src, _ in groups} >= {"dfdc", "utkface", "mobilestylegan"}
    assert set(report["pairings"]) == {"dfdc_fake_vs_dfdc_real", "mobilestylegan_vs_real_photos"}
    assert report["pairings"]["mobilestylegan_vs_real_photos"]["real_sources"] == reals
    assert report["shortcut_check"]["dfdc"]["n"] == 6


@pytest.mark.parametrize("config, says, never", [
    ({"max_per_source": 150, "frozen_epochs": 15, "finetune_epochs": 0, "finetune_blocks": 0},
     ["Quick-budget", "at most 150 training images", "no fine-tune"], ["None"]),
    ({"max_per_source": None, "frozen_epochs": 4, "finetune_epochs": 24, "finetune_blocks": 7},
     ["every training image", "up to 24 fine-tune epochs"], ["None", "Quick-budget"]),
])
def test_budget_note_states_the_budget_a_run_had(tmp_path, config, says, never):
    from training.ablation import budget_note

    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    note = budget_note(path)
    assert all(s in note for s in says), note
    assert not any(s in note for s in never), note
