"""Averaging a run's epochs (training.average): the mean of the files, clear refusals, and the command end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.training.evalsupport import lively_model, make_manifest
from training.average import AverageError, average_weights, main
from training.train import TrainConfig


def _weight_files(tmp_path: Path, n: int = 3) -> tuple[list[Path], list[list[np.ndarray]]]:
    """n weight files of the same architecture with different values, and their weights."""
    files, weights = [], []
    for i in range(n):
        model = lively_model(seed=i)
        path = tmp_path / f"epoch_{i}.weights.h5"
        model.save_weights(path)
        files.append(path)
        weights.append(model.get_weights())
    return files, weights


def test_the_average_is_the_mean_of_the_files_in_any_order(tmp_path):
    files, weights = _weight_files(tmp_path)
    model = lively_model(seed=9)
    average_weights(model, files)
    for got, *each in zip(model.get_weights(), *weights):
        np.testing.assert_allclose(got, np.mean(each, axis=0), rtol=1e-6, atol=1e-7)
    again = lively_model(seed=9)
    average_weights(again, files[::-1])
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_missing_or_foreign_files_are_refused_by_name(tmp_path):
    import keras

    files, _ = _weight_files(tmp_path, n=1)
    with pytest.raises(AverageError, match="no weight files"):
        average_weights(lively_model(), [])
    with pytest.raises(AverageError, match="no such weight file: .*missing"):
        average_weights(lively_model(), [files[0], tmp_path / "missing.weights.h5"])
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    other.save_weights(tmp_path / "other.weights.h5")
    with pytest.raises(AverageError, match="does not fit"):
        average_weights(lively_model(), [tmp_path / "other.weights.h5"])


def test_the_command_scores_each_epoch_and_the_average_and_writes_a_loadable_model(tmp_path):
    import keras

    manifest = make_manifest(tmp_path / "data", per_class=6)
    run = tmp_path / "run"
    run.mkdir()
    cfg = TrainConfig(data=str(manifest), weights=None, val_fraction=0.5, select_metric="val_source_real_auc")
    (run / "config.json").write_text(cfg.to_json())
    files, weights = _weight_files(tmp_path, n=2)

    main(["--run", str(run), "--weights", *map(str, files), "--score-each",
          "--out", str(run / "model_avg.keras"), "--json", str(run / "average.json")])
    result = json.loads((run / "average.json").read_text())
    assert set(result["inputs"]) == {str(f) for f in files}
    for figures in (*result["inputs"].values(), result["average"]):
        assert 0.0 <= figures["val_source_real_auc"] <= 1.0
        assert {"swap", "gan", "photos_reals_vs_all_fakes"} <= set(figures)
    saved = keras.models.load_model(run / "model_avg.keras").get_weights()
    np.testing.assert_allclose(saved[-2], (weights[0][-2] + weights[1][-2]) / 2, rtol=1e-6)

    with pytest.raises(SystemExit, match="no such weight file"):
        main(["--run", str(run), "--weights", str(tmp_path / "gone.weights.h5")])
