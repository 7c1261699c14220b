"""Paths written into shipped reports read the same on every machine (training.paths)."""

from pathlib import Path

from training.paths import REPO_ROOT, recorded, resolve


def test_shared_data_beside_the_repo_is_recorded_as_the_configs_name_it():
    manifest = REPO_ROOT / ".." / "shared" / "data" / "faces" / "manifest.csv"
    assert recorded(manifest) == "../shared/data/faces/manifest.csv"
    assert recorded(str(manifest.resolve())) == "../shared/data/faces/manifest.csv"


def test_a_path_in_the_repo_is_recorded_relative_to_its_root(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO_ROOT)
    assert recorded("runs/release5_36/export/7") == "runs/release5_36/export/7"
    assert recorded(REPO_ROOT / "saved_model" / "deepfake_detector" / "7") == "saved_model/deepfake_detector/7"
    monkeypatch.chdir(tmp_path)  # a relative path is the caller's, not the repo's
    assert recorded("x.json") == (tmp_path / "x.json").as_posix()


def test_a_path_elsewhere_stays_absolute_and_nothing_stays_nothing(tmp_path):
    root = tmp_path / "checkout" / "main"
    root.mkdir(parents=True)
    elsewhere = tmp_path.parent / "other" / "faces.csv"
    assert recorded(elsewhere, root=root) == elsewhere.as_posix()
    assert recorded(tmp_path / "checkout" / "shared" / "a.csv", root=root) == "../shared/a.csv"
    sibling = tmp_path / "checkout" / "pytest-tmp" / "x.json"  # e.g. a checkout made directly in /tmp
    assert recorded(sibling, root=root) == sibling.as_posix()
    assert recorded(root, root=root) == "."
    assert recorded(None) is None and recorded("imagenet") == "imagenet"


def test_a_shared_folder_that_is_a_link_is_still_recorded_as_beside_the_repo(tmp_path):
    root = tmp_path / "checkout" / "main"
    root.mkdir(parents=True)
    elsewhere = tmp_path / "data_disk"
    (elsewhere / "faces").mkdir(parents=True)
    (elsewhere / "faces" / "manifest.csv").write_text("path,label\n")
    (tmp_path / "checkout" / "shared").symlink_to(elsewhere)
    followed = (root / ".." / "shared" / "faces" / "manifest.csv").resolve()  # what resolve() hands on
    assert followed.is_relative_to(elsewhere)
    assert recorded(followed, root=root) == "../shared/faces/manifest.csv"
    assert recorded(elsewhere / "other.csv", root=root) == "../shared/other.csv"
    assert recorded(tmp_path / "unrelated.csv", root=root) == (tmp_path / "unrelated.csv").as_posix()


def test_a_recorded_path_resolves_back_to_the_same_file():
    manifest = (REPO_ROOT / ".." / "shared" / "data" / "faces" / "manifest.csv").resolve()
    assert Path(resolve(recorded(manifest))) == manifest
