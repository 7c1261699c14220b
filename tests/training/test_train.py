"""End to end on images the test makes: data -> two-stage training -> export -> from_bytes; plus resume and config."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.train import TrainConfig, train

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_0.35_224_imagenet_notop.weights.h5"


def _tiny_flat_set(root: Path, per_class: int = 6) -> Path:
    """real/ and fake/ folders of small synthetic faces; fakes carry a pasted patch."""
    rng = np.random.default_rng(0)
    for label in ("real", "fake"):
        for i in range(per_class):
            img = rng.normal(120, 30, (72, 72, 3))
            img[18:56, 22:50] = rng.normal([200, 160, 140], 10, (38, 28, 3))
            if label == "fake":
                img[28:40, 28:40] = rng.normal([60, 200, 60], 10, (12, 12, 3))
            path = root / label / f"{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
    return root


def _tiny_config(data: Path, **over) -> TrainConfig:
    cfg = TrainConfig(data=str(data), val_fraction=0.34, weights=None, cache_views=1, cache_sbi_views=1,
                      frozen_epochs=1, frozen_batch=4, finetune_epochs=1, finetune_blocks=1,
                      finetune_steps_per_epoch=1, finetune_batch=4, verbose=0, sbi_fraction=0.25)
    return replace(cfg, **over)


def _tiny_adam_model(units: int = 4):
    """A two-layer model compiled with Adam, seeded, for the resume tests."""
    import keras

    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(units), keras.layers.Dense(1)])
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return m


def test_config_round_trips_through_json(tmp_path):
    cfg = TrainConfig(exclude_fake_sources=["dfdc"], sbi_fraction=0.4, jpeg_quality=(40, 90))
    path = tmp_path / "c.json"
    path.write_text(cfg.to_json())
    assert TrainConfig.from_json(path) == cfg
    path.write_text(json.dumps({"no_such_key": 1}))
    with pytest.raises(ValueError):
        TrainConfig.from_json(path)


def test_shipped_config_loads():
    cfg = TrainConfig.from_json(Path(__file__).resolve().parents[2] / "training" / "configs" / "shipped.json")
    assert cfg.finetune_blocks > 0 and cfg.sbi_fraction > 0 and cfg.crop_jitter


@pytest.mark.timeout(900)
def test_tiny_end_to_end_train_export_and_serve(tmp_path):
    import tensorflow as tf

    from serving import contract
    from training.export import ExportInfo, export

    data = _tiny_flat_set(tmp_path / "data")
    out = tmp_path / "run"
    cfg = _tiny_config(data, scaling="bgr_imagenet")  # the shipped backbone's scaling: a layer with weights
    model_path = train(cfg, out)
    assert model_path == out / "model.keras" and model_path.exists()
    for name in ("config.json", "env.json", "history.json", "stage1.keras", "val_metrics.json"):
        assert (out / name).exists(), name
    history = json.loads((out / "history.json").read_text())
    assert history["stage1"] and history["stage2"]
    assert TrainConfig.from_json(out / "config.json") == cfg
    state = json.loads((out / "state.json").read_text())  # what --resume reads after a killed session
    assert state["stage2"]["last_epoch"] == len(history["stage2"])
    assert Path(state["stage2"]["weights"]).exists() and Path(state["stage2"]["optimizer"]).exists()
    assert not list((out / "checkpoints").glob("*.tmp.*"))

    import keras

    model = keras.models.load_model(model_path)
    version = export(model, tmp_path / "export", ExportInfo(threshold=0.5, uncertain_band=(0.4, 0.6)))
    loaded = tf.saved_model.load(str(version))
    png = (data / "fake" / "0.jpg").read_bytes()
    result = loaded.signatures[contract.SIGNATURE_BYTES](image_bytes=tf.constant([png, png]))
    probs = result[contract.OUTPUT_PROBABILITY].numpy()
    assert probs.shape == (2,) and np.all((probs >= 0) & (probs <= 1))

    # --resume skips the finished stages and still writes a model
    again = train(cfg, out, resume=True)
    assert again.exists()
    # a longer fine-tune resumes with the Adam state the fresh session saved (ResumeMismatch if it does not fit)
    train(replace(cfg, finetune_epochs=2), out, resume=True)
    assert json.loads((out / "state.json").read_text())["stage2"]["last_epoch"] == 2


def test_leave_one_out_excludes_the_fake_source_from_training(tmp_path):
    from training.train import prepare_samples

    data = _tiny_flat_set(tmp_path / "data")
    src = data.name
    train_s, val_s = prepare_samples(_tiny_config(data, exclude_fake_sources=[src]))
    assert all(s.label == 0 for s in train_s + val_s)


@pytest.mark.timeout(900)
def test_short_run_on_shared_faces(tmp_path):
    manifest = SHARED / "data" / "faces" / "manifest.csv"
    if not manifest.exists() or not WEIGHTS.exists():
        pytest.skip(f"shared faces or weights not found under {SHARED}")
    cfg = _tiny_config(manifest, weights=str(WEIGHTS), max_per_source=3, max_val=2, finetune_epochs=0)
    path = train(cfg, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "val_metrics.json").read_text())
    assert path.exists() and set(metrics["stage1"]) >= {"overall", "dfdc", "utkface", "mobilestylegan"}


def test_self_blended_validation_fakes_come_from_the_reals_with_fixed_seeds(tmp_path):
    from training.train import prepare_samples, sbi_plan

    data = _tiny_flat_set(tmp_path / "data")
    _, val = prepare_samples(_tiny_config(data))
    plan = sbi_plan(val, seed=7)
    reals = [s.path for s in val if s.label == 0]
    assert list(plan["path"]) == reals and plan["sbi"].all() and (plan["label"] == 1).all()
    assert (plan["seed"] == sbi_plan(val, seed=7)["seed"]).all()  # the same pseudo-fakes every epoch
    assert not (plan["seed"] == sbi_plan(val, seed=8)["seed"]).all()


def test_leave_one_out_run_selects_by_self_blended_fakes_too(tmp_path):
    from training.train import prepare_samples, selection_score

    data = _tiny_flat_set(tmp_path / "data")
    out = tmp_path / "run"
    cfg = _tiny_config(data, select_metric="val_source_sbi_auc")
    n_val_reals = sum(1 for s in prepare_samples(cfg)[1] if s.label == 0)
    train(cfg, out)
    metrics = json.loads((out / "val_metrics.json").read_text())
    for stage in ("stage1", "stage2"):
        blended = metrics[stage]["self_blended"]
        assert blended["n"] == n_val_reals  # one pseudo-fake per validation real
        assert 0.0 <= blended["auc_same_source"] <= 1.0
        others = [v["auc_vs_all_reals"] for k, v in metrics[stage].items()
                  if isinstance(v, dict) and "auc_vs_all_reals" in v and k != "self_blended"]
        expected = float(np.mean(others + [blended["auc_same_source"]]))
        assert selection_score(metrics[stage], "val_source_sbi_auc") == pytest.approx(expected)
        assert metrics["selection"][stage] == pytest.approx(expected)


def test_source_repeats_make_a_small_source_weigh_more_in_the_stream():
    from training.data import Sample
    from training.train import stream_plan

    samples = ([Sample(f"/x/big/{i}.jpg", 1, "big", f"b{i}") for i in range(80)]
               + [Sample(f"/x/small/{i}.jpg", 0, "small", f"s{i}") for i in range(20)])
    plain = stream_plan(samples, TrainConfig(sbi_fraction=0.0), 1000)
    repeated = stream_plan(samples, TrainConfig(sbi_fraction=0.0, source_repeats={"small": 4}), 1000)
    share = lambda plan: float(np.mean([("/small/" in p) for p in plan["path"]]))  # noqa: E731
    assert share(plain) == pytest.approx(0.2, abs=0.02)
    assert share(repeated) == pytest.approx(0.5, abs=0.03)  # 80 vs 4 x 20 per pass
    assert np.array_equal(repeated["path"], stream_plan(samples, TrainConfig(sbi_fraction=0.0,
                                                                              source_repeats={"small": 4}), 1000)["path"])


def test_stream_real_balance_shows_every_real_source_equally_and_keeps_the_class_share():
    from training.data import Sample
    from training.train import stream_plan

    samples = ([Sample(f"/x/fake/{i}.jpg", 1, "fake", f"f{i}") for i in range(100)]
               + [Sample(f"/x/big/{i}.jpg", 0, "big", f"b{i}") for i in range(90)]
               + [Sample(f"/x/small/{i}.jpg", 0, "small", f"s{i}") for i in range(10)])
    share = lambda plan, src: float(np.mean([f"/{src}/" in p for p in plan["path"]]))  # noqa: E731
    cfg = TrainConfig(sbi_fraction=0.0, stream_real_balance=1.0)
    balanced = stream_plan(samples, cfg, 4000)
    assert share(balanced, "small") == pytest.approx(0.25, abs=0.02)  # half of the reals, not a tenth
    assert share(balanced, "big") == pytest.approx(0.25, abs=0.02)
    assert share(balanced, "fake") == pytest.approx(0.5, abs=0.02)
    assert np.array_equal(balanced["path"], stream_plan(samples, cfg, 4000)["path"])  # deterministic
    half = stream_plan(samples, TrainConfig(sbi_fraction=0.0, stream_real_balance=0.5), 4000)
    assert share(half, "small") == pytest.approx(0.5 * 10**0.5 / (10**0.5 + 90**0.5), abs=0.02)
    repeated = stream_plan(samples, TrainConfig(sbi_fraction=0.0, source_repeats={"small": 9},
                                                stream_real_balance=0.5), 4000)
    assert share(repeated, "small") == pytest.approx(share(repeated, "big"), abs=0.03)  # repeats count first
    assert share(repeated, "fake") == pytest.approx(100 / 280, abs=0.02)  # 9 x 10 + 90 reals per pass


def test_class_weights_balance_the_classes():
    from training.train import class_weights

    w = class_weights(np.array([0, 0, 0, 1]))
    assert w[0] * 3 == pytest.approx(w[1] * 1)
    assert (3 * w[0] + w[1]) / 4 == pytest.approx(1.0)
    assert class_weights(np.array([1, 1])) == {0: 1.0, 1: 1.0}


@pytest.mark.parametrize("names, n_blocks, first", [
    (["input", "Conv1", "block_1_expand", "block_1_project", "block_2_expand", "block_2_add", "Conv_1"], 1, "block_2_expand"),
    (["input", "conv1", "conv_dw_1", "conv_pw_1", "conv_dw_2", "conv_dw_2_bn", "conv_pw_2_relu"], 1, "conv_dw_2"),
    (["input", "conv1", "conv_dw_1", "conv_pw_1", "conv_dw_2", "conv_pw_2"], 2, "conv_dw_1"),
])
def test_fine_tuning_starts_at_the_top_blocks_of_either_mobilenet(names, n_blocks, first, monkeypatch):
    """The face-identity MobileNetV1 can be fine-tuned from its top blocks only, as MobileNetV2 is."""
    import training.model
    from training.train import trainable_from_blocks

    class Net:
        layers = [type("L", (), {"name": n})() for n in names]

    monkeypatch.setattr(training.model, "backbone_of", lambda model: type("B", (), {"layers": [Net]})())
    assert names[trainable_from_blocks(object(), n_blocks)] == first
    assert trainable_from_blocks(object(), 0) is None
    assert trainable_from_blocks(object(), 99) == 0


def test_the_real_aware_selection_metric_counts_false_alarms_on_a_real_only_source():
    """Two models with the same fake-source AUC: val_source_real_auc prefers the one that calls FFHQ photos real."""
    from training.data import Sample
    from training.train import per_source_metrics, selection_score

    samples = ([Sample(f"/x/dfdc/f{i}.jpg", 1, "dfdc", f"f{i}") for i in range(10)]
               + [Sample(f"/x/dfdc/r{i}.jpg", 0, "dfdc", f"r{i}") for i in range(10)]
               + [Sample(f"/x/ffhq/{i}.jpg", 0, "ffhq", f"q{i}") for i in range(10)])
    dfdc = np.r_[np.linspace(0.6, 0.9, 10), np.linspace(0.1, 0.4, 10)]
    calls_ffhq_fake = np.r_[dfdc, np.full(10, 0.95)]
    calls_ffhq_real = np.r_[dfdc, np.full(10, 0.05)]
    bad, good = (per_source_metrics(samples, p) for p in (calls_ffhq_fake, calls_ffhq_real))
    assert bad["ffhq"]["auc_vs_all_fakes"] == 0.0 and good["ffhq"]["auc_vs_all_fakes"] == 1.0
    assert selection_score(bad, "val_source_auc") == selection_score(good, "val_source_auc") == 1.0
    assert selection_score(bad, "val_source_real_auc") == pytest.approx(0.5)
    assert selection_score(good, "val_source_real_auc") == pytest.approx(1.0)
    assert selection_score(good, "val_auc") == good["overall"]["auc"]


def test_resume_restores_adams_moments_and_step_so_the_first_steps_are_not_oversized(tmp_path):
    from training.train import ResumeMismatch, restore_optimizer, save_optimizer

    x, y = np.random.default_rng(0).normal(size=(32, 3)), np.zeros((32, 1))
    trained = _tiny_adam_model()
    trained.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = save_optimizer(trained, tmp_path / "stage2_last.optimizer.npz")
    assert not list(tmp_path.glob("*.tmp.*"))

    resumed = _tiny_adam_model()
    assert restore_optimizer(resumed, str(path))
    assert int(resumed.optimizer.iterations.numpy()) == 8
    for a, b in zip(trained.optimizer.variables, resumed.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a.numpy()), np.asarray(b.numpy()))
    assert any(np.abs(np.asarray(v.numpy())).sum() > 0 for v in resumed.optimizer.variables[2:])  # moments, not zeros

    # another model's state is refused, loudly
    with pytest.raises(ResumeMismatch, match="differ from the session that saved it"):
        restore_optimizer(_tiny_adam_model(units=5), str(path))
    assert not restore_optimizer(_tiny_adam_model(), None)
    assert not restore_optimizer(_tiny_adam_model(), str(tmp_path / "missing.npz"))


def test_resume_takes_the_step_count_from_the_weights_when_adams_file_is_an_epoch_ahead(tmp_path):
    from training.train import resume_from, save_optimizer

    x, y = np.random.default_rng(0).normal(size=(32, 3)), np.zeros((32, 1))
    trained = _tiny_adam_model()
    trained.fit(x, y, epochs=1, batch_size=8, verbose=0)  # 4 steps: the weights of epoch 1
    trained.save_weights(tmp_path / "last.weights.h5")
    trained.fit(x, y, epochs=1, batch_size=8, verbose=0)  # Adam's file was written for epoch 2, then the kill
    opt = save_optimizer(trained, tmp_path / "last.optimizer.npz")
    saved = {"last_epoch": 1, "weights": str(tmp_path / "last.weights.h5"), "optimizer": str(opt)}

    resumed = _tiny_adam_model()
    assert resume_from(resumed, saved, steps_per_epoch=4) == 1
    assert int(resumed.optimizer.iterations.numpy()) == 4  # the schedule continues from the weights' epoch
    assert any(np.abs(np.asarray(v.numpy())).sum() > 0 for v in resumed.optimizer.variables[2:])  # moments kept
    bare = _tiny_adam_model()
    assert resume_from(bare, {**saved, "optimizer": None}, steps_per_epoch=4) == 1
    assert int(bare.optimizer.iterations.numpy()) == 4


def test_patience_counts_the_epochs_before_a_resume():
    import keras

    from training.train import ResumedEarlyStopping, early_stop_state

    history = [{"m": s} for s in (0.80, 0.90, 0.85, 0.90, 0.88)]  # best at epoch 2; 3 epochs without a gain
    assert early_stop_state(history, "m") == (0.90, 3)
    assert early_stop_state([], "m") == (None, 0)

    stop = ResumedEarlyStopping.make("m", patience=4, history=history)
    stop.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    stop.on_train_begin()
    stop.on_epoch_end(5, {"m": 0.89})  # the 4th epoch without a gain: an unbroken run stops here
    assert stop.model.stop_training

    fresh = ResumedEarlyStopping.make("m", patience=4, history=[])
    fresh.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    fresh.on_train_begin()
    fresh.on_epoch_end(0, {"m": 0.5})
    fresh.on_epoch_end(1, {"m": 0.4})
    assert not getattr(fresh.model, "stop_training", False)  # a fresh run has its whole patience


def test_best_checkpoint_saves_only_an_epoch_that_beats_the_sessions_before(tmp_path):
    import keras

    from training.train import BestCheckpoint

    path = tmp_path / "stage2_best.keras"
    best = BestCheckpoint.make(path, "m", best=0.9)  # resumed: 0.9 was reached before the kill
    best.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    best.on_epoch_end(0, {"m": 0.85})
    assert not path.exists()
    best.on_epoch_end(1, {"m": 0.93})
    assert path.exists() and best.best == 0.93 and not list(tmp_path.glob("*.tmp.*"))
    stamp = path.stat().st_mtime_ns
    best.on_epoch_end(2, {"m": 0.92})
    assert path.stat().st_mtime_ns == stamp
    assert keras.models.load_model(path).count_params() == 2


def test_the_last_epochs_are_kept_for_averaging_and_older_ones_dropped(tmp_path):
    from training.train import StateSaver

    for run in (tmp_path, tmp_path / "plain"):
        (run / "checkpoints").mkdir(parents=True)
    saver = StateSaver.make(tmp_path, "stage2", keep=2)
    saver.set_model(_tiny_adam_model())
    for epoch in range(4):
        saver.on_epoch_end(epoch, {"m": 0.5})
    kept = sorted(p.name for p in (tmp_path / "checkpoints" / "epochs").iterdir())
    assert kept == ["stage2_epoch_003.weights.h5", "stage2_epoch_004.weights.h5"]
    assert json.loads((tmp_path / "state.json").read_text())["stage2"]["last_epoch"] == 4

    plain = StateSaver.make(tmp_path / "plain", "stage2")
    plain.set_model(_tiny_adam_model())
    plain.on_epoch_end(0, {"m": 0.5})
    assert not (tmp_path / "plain" / "checkpoints" / "epochs").exists()
