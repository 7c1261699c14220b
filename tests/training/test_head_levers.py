"""Head-only levers against unseen-real false alarms (training.head_levers) on small synthetic features."""

import numpy as np
import pytest

from training.head_levers import (Features, Variant, loss_weights, project, source_nullspace, source_probe_accuracy,
                                  source_targets, train_head, with_views)
from training.model import ModelConfig


def test_variant_names_read_as_the_recipe_they_train():
    assert Variant.parse("plain") == Variant("plain")
    assert Variant.parse("balanced") == Variant("balanced", real_balance=1.0)
    assert Variant.parse("balanced:0.5+fakes-balanced") == Variant("balanced:0.5+fakes-balanced", 0.5, 1.0)
    assert Variant.parse("adversarial:0.3") == Variant("adversarial:0.3", adversary_weight=0.3)
    assert Variant.parse("balanced+nullspace:20") == Variant("balanced+nullspace:20", 1.0, nullspace_iterations=20)
    assert Variant.parse("portrait:0.3") == Variant("portrait:0.3", portrait_share=0.3)
    for bad in ("adversarial", "nullspace:x", "shiny", "balanced:", "portrait"):
        with pytest.raises(ValueError, match="unknown variant"):
            Variant.parse(bad)


def test_balanced_weights_give_every_real_source_the_same_share_and_keep_the_classes_even():
    labels = np.array([0] * 90 + [0] * 10 + [1] * 50, np.float32)
    sources = np.array(["big"] * 90 + ["small"] * 10 + ["fake"] * 50)
    w = loss_weights(labels, sources, real_balance=1.0)
    assert w[sources == "big"].sum() == pytest.approx(w[sources == "small"].sum())
    assert w[labels == 0].sum() == pytest.approx(w[labels == 1].sum())
    plain = loss_weights(labels, sources)
    assert plain[sources == "big"].sum() == pytest.approx(9 * plain[sources == "small"].sum())
    assert plain[labels == 0].sum() == pytest.approx(plain[labels == 1].sum())
    half = loss_weights(labels, sources, real_balance=0.5)
    assert half[sources == "big"].sum() == pytest.approx(3 * half[sources == "small"].sum())
    assert w.mean() == pytest.approx(1.0) and plain.mean() == pytest.approx(1.0)


def test_source_targets_cover_reals_only_and_balance_the_sources():
    labels = np.array([0, 0, 0, 1, 1], np.float32)
    sources = np.array(["a", "a", "b", "f", "f"])
    target, weight, names = source_targets(labels, sources)
    assert names == ["a", "b"]
    assert target.tolist() == [0, 0, 1, -1, -1]
    assert weight[3:].tolist() == [0, 0]
    assert weight[:2].sum() == pytest.approx(weight[2])


def _synthetic(n: int = 600, seed: int = 0):
    """Features where dimension 0 carries the label and dimension 1 tells the two real sources apart."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 3 == 2).astype(np.float32)
    sources = np.where(labels > 0, "fake", np.where(np.arange(n) % 3 == 0, "a", "b"))
    x = rng.normal(0, 1, (n, 1, 1, 16)).astype(np.float32)
    x[:, 0, 0, 0] += 2.5 * labels
    x[:, 0, 0, 1] += np.where(sources == "a", 3.0, np.where(sources == "b", -3.0, 0.0))
    return x, labels, sources


def test_the_nullspace_projection_hides_the_real_source_from_a_fresh_probe_and_keeps_the_label():
    x, labels, sources = _synthetic(n=1200)
    reals = labels < 0.5
    before = source_probe_accuracy(x[reals], sources[reals])
    p = source_nullspace(x[reals], sources[reals], iterations=3)
    projected = project(x, p)
    assert projected.shape == x.shape
    assert before > 0.95
    assert source_probe_accuracy(projected[reals], sources[reals]) < 0.65
    assert np.allclose(p @ p, p, atol=1e-4)  # a projection: applying it twice changes nothing
    from training.train import auc

    assert auc(labels, projected[:, 0, 0, 0]) > 0.9  # the label's own direction survives


def test_heads_learn_the_label_with_and_without_the_adversary_and_log_its_loss():
    x, labels, sources = _synthetic()
    cfg = ModelConfig(pool_size=None, dense_units=(16,), dropout=0.0)
    from training.train import auc

    def select(head):
        return auc(labels, head.predict(x, verbose=0)[:, 0])

    for variant in (Variant("plain"), Variant("adv", adversary_weight=1.0)):
        head, history = train_head(cfg, x, labels, sources, variant, select=select, epochs=6, batch=64,
                                   lr=3e-3, seed=7)
        assert select(head) > 0.8  # chance is 0.5, the best possible about 0.96
        assert [h["epoch"] for h in history] == list(range(1, 7))
        assert select(head) == pytest.approx(max(h["selection"] for h in history))  # the best epoch is kept
        assert all(np.isfinite(h["adversary_ce"]) for h in history)


def test_the_levers_table_has_a_row_per_variant_and_a_column_per_held_out_source():
    from training.head_levers import levers_markdown

    def entry(fpr, dfdc):
        return {"whole_image": {"false_positive_rate": fpr}, "client_crop": {"false_positive_rate": fpr / 2},
                "validation": {"dfdc": dfdc, "mobilestylegan": 0.99}}

    reports = [{"held_out": "aaf", "run": entry(0.8, 0.76), "balanced": entry(0.4, 0.74)},
               {"held_out": "ffhq", "run": entry(0.9, 0.77)}]
    table = levers_markdown(reports).splitlines()
    assert "aaf held out" in table[0] and "ffhq held out" in table[0]
    assert table[2] == "| the run's own head | 80.0% / 40.0% (0.760, 0.990) | 90.0% / 45.0% (0.770, 0.990) |"
    assert table[3] == "| balanced | 40.0% / 20.0% (0.740, 0.990) | - |"


def test_extra_views_join_the_training_features_with_their_labels_and_sources():
    x, labels, sources = _synthetic(n=30)
    f = Features(x, labels, sources, x[:5], [], x[:2], x[:2], None)
    assert with_views(f, np.zeros((0,)), np.zeros(0), np.zeros(0, str)) is f
    extra = np.ones((4, 16), np.float32)
    g = with_views(f, extra, np.array([0, 0, 1, 1], np.float32), np.array(["a", "b", "fake", "fake"]))
    assert g.train.shape == (34, 1, 1, 16) and np.array_equal(g.train[30:, 0, 0], extra)
    assert g.train_labels[30:].tolist() == [0, 0, 1, 1] and g.train_sources[-1] == "fake"
    assert np.array_equal(g.val, f.val) and len(f.train) == 30


def test_printing_the_levers_table_needs_no_tensorflow(tmp_path):
    import json
    import subprocess
    import sys

    report = {"held_out": "aaf", "run": {"whole_image": {"false_positive_rate": 0.5},
                                         "client_crop": {"false_positive_rate": 0.25},
                                         "validation": {"dfdc": 0.8, "mobilestylegan": 0.99}}}
    (tmp_path / "head_levers.json").write_text(json.dumps(report))
    code = ("import sys; from training.head_levers import main; main(['--table', sys.argv[1]]); "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "head_levers.json")], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out[2] == "| the run's own head | 50.0% / 25.0% (0.800, 0.990) |"
    assert out[-1] == "False False"
