"""Recall of clients.core.faces on small faces in a photo-sized image, per size of the first detection copy.

    python -m bench.face_sizes --n 120 --sides 640,512

bench.face_detectors measures shared crops and 640x480 scenes, where a face is never small next to the
image. Here each shared face is pasted into a 2000x1500 image (the working size of a 12 MP photo): alone,
at 50-200 px ("alone", recall by size), and at 50-79 px beside a 250-400 px face ("group": both found).
The detection copy's size sets the smallest face MTCNN finds, and its time grows with the copy's area.
"""
from __future__ import annotations

import argparse
import random
import time

import numpy as np
from PIL import Image

from bench.face_detectors import load_sample

PHOTO = (2000, 1500)
BUCKETS = ((50, 79), (80, 119), (120, 200))


def _background(seed: int) -> Image.Image:
    """A smooth random colour field of the photo's size."""
    small = np.random.default_rng(seed).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(PHOTO, Image.Resampling.BICUBIC)


def alone(faces: list[Image.Image], rng: random.Random) -> list[tuple[Image.Image, int]]:
    """Each face alone, 50-200 px, at a random place: (image, face side)."""
    out = []
    for i, face in enumerate(faces):
        side = rng.randint(BUCKETS[0][0], BUCKETS[-1][1])
        img = _background(i)
        img.paste(face.resize((side, side), Image.Resampling.LANCZOS),
                  (rng.randint(0, PHOTO[0] - side), rng.randint(0, PHOTO[1] - side)))
        out.append((img, side))
    return out


def group(faces: list[Image.Image], rng: random.Random) -> list[Image.Image]:
    """Pairs of faces: one of 250-400 px on the left, one of 50-79 px on the right."""
    out = []
    for i in range(0, len(faces) - 1, 2):
        img = _background(10_000 + i)
        big, small = rng.randint(250, 400), rng.randint(*BUCKETS[0])
        img.paste(faces[i].resize((big, big), Image.Resampling.LANCZOS), (rng.randint(0, 900), rng.randint(0, 1000)))
        img.paste(faces[i + 1].resize((small, small), Image.Resampling.LANCZOS),
                  (rng.randint(1300, PHOTO[0] - small), rng.randint(100, PHOTO[1] - small)))
        out.append(img)
    return out


def measure(side: int, singles: list[tuple[Image.Image, int]], pairs: list[Image.Image]) -> dict[str, float]:
    """Recall per size bucket (alone), share of pairs with both faces found, and CPU ms per image (alone)."""
    from clients.core.config import ClientConfig
    from clients.core.faces import detect_faces

    config = ClientConfig(detect_long_side=side)
    hits: dict[str, list[bool]] = {f"{lo}-{hi} px": [] for lo, hi in BUCKETS}
    t0 = time.process_time()
    for img, s in singles:
        lo, hi = next(b for b in BUCKETS if b[0] <= s <= b[1])
        hits[f"{lo}-{hi} px"].append(bool(detect_faces(img, config)))
    cpu_ms = 1000 * (time.process_time() - t0) / max(1, len(singles))
    both = [len(detect_faces(img, config)) >= 2 for img in pairs]
    out = {k: float(np.mean(v)) if v else float("nan") for k, v in hits.items()}
    out["group: both"] = float(np.mean(both)) if both else float("nan")
    out["CPU ms/image"] = cpu_ms
    return out


def main() -> None:
    """Print one markdown row per first-copy size."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--sides", default="640,512")
    args = ap.parse_args()
    rng = random.Random(0)
    faces = [img for _, img in load_sample(args.n)]
    singles, pairs = alone(faces, rng), group(faces, rng)
    print(f"{len(singles)} single faces, {len(pairs)} pairs, photo {PHOTO[0]}x{PHOTO[1]}")
    rows = {int(s): measure(int(s), singles, pairs) for s in args.sides.split(",")}
    keys = list(next(iter(rows.values())))
    print("| first copy (px) | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for side, row in rows.items():
        print(f"| {side} | " + " | ".join(f"{row[k]:.0f}" if k.startswith("CPU") else f"{row[k]:.0%}" for k in keys) + " |")


if __name__ == "__main__":
    main()
