"""Person boxes as arrays: (N, 4) x1, y1, x2, y2 in image pixels, with scores (N,).

IoU and greedy non-maximum suppression (numpy), shared by the detectors and the tracker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Every detector's defaults (scores are 0..1 for all of them): boxes scored below DET_SCORE_THR are
# dropped, and raw outputs are suppressed at DET_IOU_THR.
DET_SCORE_THR = 0.3
DET_IOU_THR = 0.45


@dataclass
class Boxes:
    xyxy: np.ndarray  # (N, 4) float32, image pixels
    scores: np.ndarray  # (N,) float32

    def __post_init__(self):
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "Boxes":
        return cls(np.zeros((0, 4)), np.zeros(0))

    def select(self, keep) -> "Boxes":
        return Boxes(self.xyxy[keep], self.scores[keep])

    def clipped(self, width: int, height: int) -> "Boxes":
        """Boxes cut to the frame; boxes left with no area are dropped."""
        xyxy = self.xyxy.copy()
        xyxy[:, 0::2] = xyxy[:, 0::2].clip(0, width)
        xyxy[:, 1::2] = xyxy[:, 1::2].clip(0, height)
        keep = (xyxy[:, 2] - xyxy[:, 0] >= 1) & (xyxy[:, 3] - xyxy[:, 1] >= 1)
        return Boxes(xyxy[keep], self.scores[keep])

    def xywh(self) -> np.ndarray:
        out = self.xyxy.copy()
        out[:, 2:] -= out[:, :2]
        return out


def xywh_to_xyxy(xywh) -> np.ndarray:
    out = np.asarray(xywh, dtype=np.float32).reshape(-1, 4).copy()
    out[:, 2:] += out[:, :2]
    return out


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU (len(a), len(b)) of xyxy boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=-1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def box_nms(boxes: Boxes, iou_thr: float) -> Boxes:
    """Greedy NMS: best score first, a box overlapping a kept one by more than ``iou_thr`` is dropped."""
    order = np.argsort(-boxes.scores, kind="stable")
    iou = iou_matrix(boxes.xyxy, boxes.xyxy)
    keep, suppressed = [], np.zeros(len(boxes), dtype=bool)
    for i in order:
        if not suppressed[i]:
            keep.append(i)
            suppressed |= iou[i] > iou_thr
    return boxes.select(np.array(keep, dtype=np.int64))
