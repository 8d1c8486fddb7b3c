"""The default person detector: OpenCV's HOG + linear SVM people detector (Dalal & Triggs).

It ships inside OpenCV (no download, any CPU), which is why it is the default. Its limits, which
``hrnext-trt predict --help`` repeats: it finds upright, mostly unoccluded, standing or walking
people at least ~100 px tall in the working image; it misses sitting, lying, cut-off and
crowded people; its boxes are loose; about 0.15-0.5 s per frame on one CPU core. For real use
bring a detector ONNX (``--detector``).

OpenCV 5 moved HOG out of ``opencv-python-headless`` into ``opencv-contrib-python-headless`` (the
same ``cv2`` plus the contrib modules), which is why the project depends on the latter.
"""

from __future__ import annotations

import cv2
import numpy as np

from hrnext_trt.errors import HrnextError
from hrnext_trt.predict.boxes import DET_IOU_THR, DET_SCORE_THR, Boxes, box_nms

WORK_SIDE = 640  # the frame's longer side is scaled to this before scanning: speed, and HOG's sweet spot
WINDOW = (64, 128)  # HOG's detection window (width, height)
MAX_WORK_SIDE = 4 * WORK_SIDE
HOG_LIMITS = ("OpenCV HOG people detector: upright, mostly unoccluded people taller than ~1/5 of the frame; "
              "misses sitting, lying, cut-off and crowded people; ~0.3 s per frame on a CPU")


class HogPersonDetector:
    name = "OpenCV HOG people detector (default)"

    def __init__(self, score_thr: float = DET_SCORE_THR, iou_thr: float = DET_IOU_THR):
        if not hasattr(cv2, "HOGDescriptor"):
            raise HrnextError("this OpenCV has no HOG people detector (OpenCV 5 moved it to the contrib build): "
                              "pip uninstall opencv-python-headless && pip install opencv-contrib-python-headless, "
                              "or pass --detector DET.onnx / --boxes DETS.json")
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor.getDefaultPeopleDetector())
        self.score_thr, self.iou_thr = float(score_thr), float(iou_thr)

    def detect(self, frame_bgr: np.ndarray) -> Boxes:
        height, width = frame_bgr.shape[:2]
        # The working image holds at least one 64x128 window (a strip thinner than that crashes
        # OpenCV's scan), scaled up for a wide panorama or a tall strip, within reason.
        ratio = max(WORK_SIDE / max(height, width), WINDOW[1] / height, WINDOW[0] / width)
        if max(height, width) * ratio > MAX_WORK_SIDE:
            return Boxes.empty()  # no person HOG can find at any sane scale
        size = (max(WINDOW[0], round(width * ratio)), max(WINDOW[1], round(height * ratio)))
        image = cv2.resize(frame_bgr, size, interpolation=cv2.INTER_AREA)
        rects, margins = self._hog.detectMultiScale(image, winStride=(8, 8), padding=(8, 8), scale=1.05)
        if len(rects) == 0:
            return Boxes.empty()
        xywh = np.asarray(rects, dtype=np.float32).reshape(-1, 4) / ratio
        # The 64x128 window holds the person with a margin: shrink it toward the person.
        xywh[:, 0] += xywh[:, 2] * 0.15
        xywh[:, 2] *= 0.7
        xywh[:, 1] += xywh[:, 3] * 0.05
        xywh[:, 3] *= 0.9
        xywh[:, 2:] += xywh[:, :2]
        # SVM margins -> (0, 1) scores so --det-score-thr reads the same for every detector.
        scores = 1 / (1 + np.exp(-np.asarray(margins, dtype=np.float32).reshape(-1)))
        boxes = Boxes(xywh, scores)
        boxes = boxes.select(boxes.scores >= self.score_thr)
        return box_nms(boxes, self.iou_thr).clipped(width, height)
