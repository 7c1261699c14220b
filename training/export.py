"""Export a trained detector as a new integer version that TensorFlow Serving can load.

Run: python -m training.export --checkpoint runs/X/model.keras --base saved_model/deepfake_detector
The version is written to a hidden temporary folder and renamed into place at the end, so
a server polling the base path never sees a half-written version.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from serving import contract
from training.model import backbone_of, head_of
from training.preprocess import decode_and_resize

WARMUP_BATCH_SIZES = (1, 4)


@dataclass
class ExportInfo:
    """What goes into the metadata JSON beside the version, besides name and version."""

    threshold: float = contract.DEFAULT_THRESHOLD
    uncertain_band: tuple[float, float] = (contract.DEFAULT_THRESHOLD, contract.DEFAULT_THRESHOLD)
    temperature: float = 1.0
    training_data: str = ""
    metrics: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Nets:
    """The Keras parts of the served graph, held outside TensorFlow's object tracking."""

    backbone: object
    head: object


class DetectorModule(tf.Module):
    """The served graph: preprocessing, calibrated probability and Grad-CAM in one call."""

    def __init__(self, model, info: ExportInfo):
        super().__init__()
        # Keras 3 variables wrap a tf.Variable. If the Keras models were attributes here, the
        # SavedModel would checkpoint copies of the wrappers while the graph reads the inner
        # variables, which TF Serving's session loader then never restores ("Could not find
        # variable ..."; keras-team/keras#20095). So track the inner tf.Variables only and keep
        # the Keras models out of the object graph.
        self._nets = _Nets(backbone_of(model), head_of(model))
        self.model_variables = [v.value if hasattr(v, "value") else v for v in model.variables]
        self.temperature = tf.Variable(float(info.temperature), trainable=False, name="temperature")
        self.threshold = tf.Variable(float(info.threshold), trainable=False, name="threshold")
        self.band = tf.Variable(np.asarray(info.uncertain_band, np.float32), trainable=False, name="band")

    def score(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """Probability, threshold, band and heatmap for a batch of 224x224 RGB 0..255 images."""
        features = self._nets.backbone(images, training=False)
        with tf.GradientTape() as tape:
            tape.watch(features)
            logit = self._nets.head(features, training=False)[:, 0]
        grads = tape.gradient(logit, features)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))
        cam = cam / (tf.reduce_max(cam, axis=(1, 2), keepdims=True) + 1e-8)
        n = tf.shape(images)[0]
        return {
            contract.OUTPUT_PROBABILITY: tf.sigmoid(logit / self.temperature),
            contract.OUTPUT_THRESHOLD: tf.fill([n], self.threshold),
            contract.OUTPUT_UNCERTAIN_BAND: tf.tile(self.band[tf.newaxis, :], [n, 1]),
            contract.OUTPUT_HEATMAP: cam,
        }

    @tf.function(input_signature=[tf.TensorSpec([None, contract.IMAGE_SIZE, contract.IMAGE_SIZE, 3], tf.float32, name=contract.INPUT_PIXELS)])
    def serve_pixels(self, image):
        return self.score(image)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=contract.INPUT_BYTES)])
    def serve_bytes(self, image_bytes):
        images = tf.map_fn(
            decode_and_resize,
            image_bytes,
            fn_output_signature=tf.TensorSpec([contract.IMAGE_SIZE, contract.IMAGE_SIZE, 3], tf.float32),
        )
        return self.score(images)


def next_version(base: Path) -> int:
    """One more than the highest version under the base path (1 for an empty base)."""
    versions = contract.version_dirs(base)
    return (versions[-1] + 1) if versions else 1


def _png_bytes(size: int = 64) -> bytes:
    """A small deterministic PNG for warm-up requests."""
    from PIL import Image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_warmup(version_dir: Path) -> Path:
    """Write TF Serving warm-up requests (PredictionLog records in a TFRecord) for both signatures."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = version_dir / contract.WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    png = _png_bytes()
    with tf.io.TFRecordWriter(str(path)) as writer:
        for n in WARMUP_BATCH_SIZES:
            for signature in (contract.SIGNATURE_PIXELS, contract.SIGNATURE_BYTES):
                req = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=contract.MODEL_NAME, signature_name=signature))
                if signature == contract.SIGNATURE_PIXELS:
                    pixels = np.full((n, contract.IMAGE_SIZE, contract.IMAGE_SIZE, 3), 127.0, np.float32)
                    req.inputs[contract.INPUT_PIXELS].CopyFrom(tf.make_tensor_proto(pixels))
                else:
                    req.inputs[contract.INPUT_BYTES].CopyFrom(tf.make_tensor_proto([png] * n, dtype=tf.string))
                log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=req))
                writer.write(log.SerializeToString())
    return path


def export(model, base: str | Path, info: ExportInfo, version: int | None = None) -> Path:
    """Write `model` as version `version` (default: the next one) under `base`; returns its path."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    version = version or next_version(base)
    final = base / str(version)
    if final.exists():
        raise FileExistsError(f"version {version} already exists at {final}")
    tmp = Path(tempfile.mkdtemp(prefix=f".export-{version}-", dir=base))
    try:
        module = DetectorModule(model, info)
        tf.saved_model.save(
            module,
            str(tmp),
            signatures={
                contract.SIGNATURE_PIXELS: module.serve_pixels,
                contract.SIGNATURE_BYTES: module.serve_bytes,
            },
        )
        metadata = {
            "name": contract.MODEL_NAME,
            "version": version,
            "threshold": info.threshold,
            "uncertain_band": list(info.uncertain_band),
            "temperature": info.temperature,
            "training_data": info.training_data,
            "metrics": info.metrics,
            **info.extra,
        }
        meta_path = tmp / contract.METADATA_FILE
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        meta_path.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        write_warmup(tmp)
        os.chmod(tmp, 0o755)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_metadata(version_dir: str | Path) -> contract.ModelMetadata:
    """Read the metadata JSON of an exported version."""
    data = json.loads((Path(version_dir) / contract.METADATA_FILE).read_text())
    return contract.ModelMetadata(
        name=data["name"],
        version=int(data["version"]),
        threshold=float(data["threshold"]),
        uncertain_band=tuple(data["uncertain_band"]),
        training_data=data.get("training_data", ""),
        metrics=data.get("metrics", {}),
    )


def main(argv: list[str] | None = None) -> None:
    """Export a saved Keras checkpoint with the metadata from a JSON file."""
    import keras

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True, help="a .keras file written by training.train")
    parser.add_argument("--base", default=f"saved_model/{contract.MODEL_NAME}")
    parser.add_argument("--info", help="JSON with threshold, uncertain_band, temperature, training_data, metrics")
    parser.add_argument("--version", type=int)
    args = parser.parse_args(argv)
    info = ExportInfo(**json.loads(Path(args.info).read_text())) if args.info else ExportInfo()
    model = keras.models.load_model(args.checkpoint)
    print(export(model, args.base, info, args.version))


if __name__ == "__main__":
    main()
