"""The model contract's rules, which every client applies to the server's numbers."""
from __future__ import annotations

import pytest

from serving import contract


@pytest.mark.parametrize("p, expected", [
    (0.0, "real"), (0.39, "real"), (0.4, "uncertain"), (0.5, "uncertain"), (0.6, "uncertain"),
    (0.61, "fake"), (1.0, "fake"),
])
def test_label_with_an_uncertain_band(p, expected):
    assert contract.label_for(p, 0.5, (0.4, 0.6)) == expected


@pytest.mark.parametrize("p, expected", [(0.29, "real"), (0.3, "fake"), (0.9, "fake")])
def test_label_without_a_band_uses_the_threshold_inclusively(p, expected):
    assert contract.label_for(p, 0.3, (0.3, 0.3)) == expected


def test_confidence_is_the_probability_of_the_reported_label():
    assert contract.confidence_for(0.9, "fake") == pytest.approx(0.9)
    assert contract.confidence_for(0.1, "real") == pytest.approx(0.9)
    assert contract.confidence_for(0.45, "uncertain") == pytest.approx(0.55)
    # Never below one half for the label that the rule gives.
    for p in (0.0, 0.2, 0.5, 0.7, 1.0):
        label = contract.label_for(p, 0.5, (0.5, 0.5))
        assert contract.confidence_for(p, label) >= 0.5


def test_metadata_label_for_uses_its_own_threshold_and_band():
    meta = contract.ModelMetadata(version=3, threshold=0.7, uncertain_band=(0.6, 0.8))
    assert meta.label_for(0.65) == "uncertain"
    assert meta.label_for(0.85) == "fake"
    assert meta.label_for(0.5) == "real"


def test_version_dirs_lists_integer_folders_in_numeric_order(tmp_path):
    for name in ("1", "10", "2", ".export-3-tmp", "latest", "7.bak"):
        (tmp_path / name).mkdir()
    (tmp_path / "5").write_text("a file, not a version")
    assert contract.version_dirs(tmp_path) == [1, 2, 10]
    assert contract.version_dirs(tmp_path / "missing") == []


def test_is_complete_version_needs_graph_and_variables_index(tmp_path):
    v = tmp_path / "1"
    v.mkdir()
    assert not contract.is_complete_version(v)
    (v / "saved_model.pb").write_bytes(b"x")
    assert not contract.is_complete_version(v)
    (v / "variables").mkdir()
    (v / "variables" / "variables.index").write_bytes(b"x")
    assert contract.is_complete_version(v)
    assert not contract.is_complete_version(tmp_path / "2")


def test_contract_module_does_not_need_tensorflow():
    import subprocess
    import sys

    code = "import sys, serving.contract; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
