"""bench.face_sizes runs on a few shared faces (no recall or timing assertions: figures belong to the bench)."""
from __future__ import annotations

import random

from bench import face_sizes
from tests.clients.images import shared_faces


def test_small_face_probe_measures_every_bucket_for_each_copy_size():
    faces = shared_faces(4, seed=1)
    rng = random.Random(0)
    singles, pairs = face_sizes.alone(faces, rng), face_sizes.group(faces, rng)
    assert len(singles) == 4 and len(pairs) == 2
    assert all(img.size == face_sizes.PHOTO for img, _ in singles)
    row = face_sizes.measure(512, singles, pairs)
    assert set(row) >= {"group: both", "CPU ms/image"} and row["CPU ms/image"] > 0
    assert all(0.0 <= v <= 1.0 for k, v in row.items() if k != "CPU ms/image" and v == v)


def test_main_prints_a_row_per_copy_size(capsys, monkeypatch):
    monkeypatch.setattr(face_sizes, "load_sample", lambda n: [("s", f) for f in shared_faces(2, seed=2)])
    monkeypatch.setattr("sys.argv", ["face_sizes", "--n", "2", "--sides", "640,512"])
    face_sizes.main()
    out = capsys.readouterr().out
    assert "| 640 |" in out and "| 512 |" in out
