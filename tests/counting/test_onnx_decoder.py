"""NanoDet output decoding: outputs matched by shape in any order (OpenCV 4 and 5 differ), cyclists."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edge_agent.counting.detectors.onnx import ModelError, NanoDetDecoder, to_detections

SIZE = 416


def raw_outputs(objects: list[tuple[int, int, int, tuple[float, float, float, float], float]]) -> list[np.ndarray]:
    """Six outputs (scores and box distributions per stride) with the given objects placed on anchors.

    Each object: (stride, column, row, (left, top, right, bottom) distances in strides, class) - scores 0.9.
    """
    outs = []
    for stride in (8, 16, 32):
        n = -(-SIZE // stride)
        scores = np.zeros((1, n * n, 80), np.float32)
        dist = np.full((1, n * n, 32), -10.0, np.float32)
        dist[:, :, 0::8] = 10.0  # every side at distance 0 unless set
        for s, col, row, sides, cls in objects:
            if s != stride:
                continue
            k = row * n + col
            scores[0, k, int(cls)] = 0.9
            dist[0, k, :] = -10.0
            for side, d in enumerate(sides):
                dist[0, k, side * 8 + int(d)] = 10.0  # a sharp distribution on bin d
        outs += [scores, dist]
    return outs


def anchor(stride: int, col: int, row: int) -> tuple[float, float]:
    return (col * stride + 0.5 * (stride - 1), row * stride + 0.5 * (stride - 1))


def test_boxes_decode_identically_whatever_the_output_order() -> None:
    person = (16, 10, 12, (1.0, 4.0, 1.0, 1.0), 0)  # a tall box around anchor (10, 12) at stride 16
    outs = raw_outputs([person])
    decoder = NanoDetDecoder(SIZE, score_threshold=0.4)
    expected = decoder.decode(outs)
    cx, cy = anchor(16, 10, 12)
    assert len(expected) == 1
    (x1, y1, x2, y2), score, cls = expected[0]
    assert (x1, y1, x2, y2) == pytest.approx((cx - 16, cy - 64, cx + 16, cy + 16), abs=0.01)
    assert score == pytest.approx(0.9) and cls == 0
    for order in itertools.islice(itertools.permutations(range(6)), 0, 720, 37):
        assert decoder.decode([outs[i] for i in order]) == expected


def test_person_on_a_bicycle_is_a_cyclist_and_a_bicycle_alone_is_nobody() -> None:
    rider = (16, 10, 12, (1.0, 4.0, 1.0, 1.0), 0)
    bike = (16, 10, 13, (2.0, 2.0, 2.0, 1.0), 1)  # one cell lower: overlaps the rider's lower half
    walker = (8, 40, 30, (1.0, 6.0, 1.0, 1.0), 0)
    parked = (32, 2, 2, (1.0, 1.0, 1.0, 1.0), 1)
    decoded = NanoDetDecoder(SIZE).decode(raw_outputs([rider, bike, walker, parked]))
    people = to_detections(decoded, scale=0.5, x0=100, y0=0)  # a 832x832 region starting at x=100
    assert sorted((d.cyclist, round(d.foot[0])) for d in people) == [
        (False, round(anchor(8, 40, 30)[0] / 0.5 + 100)),
        (True, round(anchor(16, 10, 12)[0] / 0.5 + 100)),
    ]


def test_another_model_is_refused_clearly() -> None:
    with pytest.raises(ModelError, match="unexpected model outputs"):
        NanoDetDecoder(SIZE).decode([np.zeros((1, 100, 80), np.float32), np.zeros((1, 100, 32), np.float32)])
