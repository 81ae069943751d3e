"""NanoDet-m through cv2.dnn or onnxruntime: persons and bicycles, fused into pedestrians and cyclists.

The model's input size is fixed inside the file (416x416). OpenCV 4.x and 5.x return its six outputs in
different orders, so outputs are matched by shape: (N, 80) class scores and (N, 32) box distributions,
where N tells the stride.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.counting.detectors import Image
from edge_agent.counting.detectors.backends import ModelError as ModelError
from edge_agent.counting.detectors.backends import open_backend
from edge_agent.counting.detectors.fusion import Box, fuse_cyclists
from edge_agent.counting.tracking import Detection

PERSON, BICYCLE = 0, 1
_MEAN = (103.53, 116.28, 123.675)
_INV_STD = np.array([1 / 57.375, 1 / 57.12, 1 / 58.395], dtype=np.float32).reshape(1, 3, 1, 1)
_STRIDES = (8, 16, 32)
_REG_BINS = 8


class NanoDetDecoder:
    """Turns NanoDet-m's raw outputs (in any order) into person and bicycle boxes in input pixels."""

    def __init__(self, input_size: int = 416, score_threshold: float = 0.4, nms_threshold: float = 0.5) -> None:
        self.size = input_size
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self._anchors: dict[int, tuple[int, npt.NDArray[np.float32]]] = {}
        for stride in _STRIDES:
            n = math.ceil(input_size / stride)
            ys, xs = np.mgrid[0:n, 0:n]
            centre = (np.stack([xs.ravel(), ys.ravel()], axis=1) * stride + 0.5 * (stride - 1)).astype(np.float32)
            self._anchors[n * n] = (stride, centre)
        self._project = np.arange(_REG_BINS, dtype=np.float32)

    def decode(self, outs: Sequence[npt.NDArray[Any]]) -> list[tuple[tuple[float, float, float, float], float, int]]:
        """((x1, y1, x2, y2), score, class) after per-class non-maximum suppression; class 0 person, 1 bicycle."""
        by_count: dict[int, dict[int, npt.NDArray[Any]]] = {}
        for out in outs:
            arr = out.reshape(-1, out.shape[-1])
            by_count.setdefault(arr.shape[0], {})[arr.shape[1]] = arr
        boxes: list[list[float]] = []
        scores: list[float] = []
        classes: list[int] = []
        if set(by_count) != set(self._anchors):
            raise ModelError("unexpected model outputs: expected NanoDet-m class and box outputs per stride")
        for count, parts in by_count.items():
            if 80 not in parts or 4 * _REG_BINS not in parts:
                raise ModelError("unexpected model outputs: expected NanoDet-m class and box outputs per stride")
            stride, anchors = self._anchors[count]
            cls = parts[80][:, :2]
            idx = np.nonzero(cls.max(axis=1) >= self.score_threshold)[0]
            if idx.size == 0:
                continue
            # Each side's distance is a distribution over 8 bins: its expectation, in strides.
            reg = parts[4 * _REG_BINS][idx].reshape(-1, _REG_BINS)
            reg = np.exp(reg - reg.max(axis=1, keepdims=True))
            dist = ((reg / reg.sum(axis=1, keepdims=True)) @ self._project).reshape(-1, 4) * stride
            centres = anchors[idx]
            labels = cls[idx].argmax(axis=1)
            for k in range(idx.size):
                x1, y1 = centres[k, 0] - dist[k, 0], centres[k, 1] - dist[k, 1]
                x2, y2 = centres[k, 0] + dist[k, 2], centres[k, 1] + dist[k, 3]
                boxes.append([float(x1), float(y1), float(x2 - x1), float(y2 - y1)])
                scores.append(float(cls[idx[k], labels[k]]))
                classes.append(int(labels[k]))
        if not boxes:
            return []
        # Per-class NMS through one call (NMSBoxesBatched is missing before OpenCV 4.7): shift classes apart.
        shifted = [[b[0] + c * 4096.0, b[1], b[2], b[3]] for b, c in zip(boxes, classes, strict=True)]
        keep = cv2.dnn.NMSBoxes(shifted, scores, self.score_threshold, self.nms_threshold)
        out_boxes = []
        for k in (int(v) for v in np.asarray(keep).ravel()):
            bx, by, bw, bh = boxes[k]
            out_boxes.append(((bx, by, bx + bw, by + bh), scores[k], classes[k]))
        return out_boxes


def to_detections(
    decoded: Sequence[tuple[tuple[float, float, float, float], float, int]], scale: float, x0: float, y0: float
) -> list[Detection]:
    """Pedestrians and cyclists in frame pixels (see ``fusion``: a person riding a bicycle is one cyclist)."""
    people: list[tuple[Box, float]] = []
    bikes: list[tuple[Box, float]] = []
    for (bx1, by1, bx2, by2), score, cls in decoded:
        box = (bx1 / scale + x0, by1 / scale + y0, bx2 / scale + x0, by2 / scale + y0)
        (people if cls == PERSON else bikes).append((box, score))
    return fuse_cyclists(people, bikes)


class OnnxDetector:
    name = "onnx"
    classifies = True
    # Half the foot-position noise measured against annotated boxes (sd 0.05 box heights on PETS 2009).
    noise_allowance = 0.025

    def __init__(
        self,
        model_path: Path,
        score_threshold: float = 0.4,
        nms_threshold: float = 0.5,
        input_size: int = 416,
        backend: str = "auto",
    ) -> None:
        self.backend = open_backend(backend, model_path)
        self.size = input_size
        self.decoder = NanoDetDecoder(input_size, score_threshold, nms_threshold)

    def detect(self, image: Image, roi: tuple[int, int, int, int] | None = None) -> list[Detection]:
        x0, y0 = 0, 0
        if roi is not None:
            x0, y0, x1, y1 = roi
            image = image[y0:y1, x0:x1]
        h, w = image.shape[:2]
        if h < 2 or w < 2:
            return []
        # Letterbox: keep the aspect ratio (people stay people-shaped), pad the rest.
        scale = self.size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = np.zeros((self.size, self.size, 3), dtype=np.uint8)
        canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        blob: npt.NDArray[Any] = cv2.dnn.blobFromImage(
            canvas, 1.0, (self.size, self.size), _MEAN, swapRB=False, crop=False
        )
        blob *= _INV_STD  # in place: a fresh array, so no second 2 MB copy per detection
        outs = self.backend.run(blob)
        return to_detections(self.decoder.decode(outs), scale, x0, y0)
