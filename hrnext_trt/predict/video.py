"""Poses over a video's frames: the detector every ``detect_every`` frames with its boxes carried in
between, IoU track ids, and optionally One-Euro smoothing per track.

``VideoPoses`` is what ``predict`` does to a video, a frame at a time for Python callers who hold
the frames (``PoseEstimator.video``); ``run.py`` uses its two halves, ``boxes`` and ``smooth``,
around its batching of several frames per network call, so both give the same poses.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hrnext_trt.errors import HrnextError
from hrnext_trt.predict.boxes import Boxes
from hrnext_trt.predict.poses import FramePoses
from hrnext_trt.predict.smoothing import OneEuroSmoother
from hrnext_trt.predict.tracking import IouTracker


class VideoPoses:
    """``video(frame) -> FramePoses`` with track ids, for the frames of one video in order."""

    def __init__(self, estimator, fps: float = 30.0, detect_every: int = 1, smooth: bool = False,
                 track_iou_thr: float = 0.3):
        if not fps > 0:
            raise HrnextError(f"fps must be positive, got {fps}")
        if not isinstance(detect_every, int) or detect_every < 1:
            raise HrnextError(f"detect_every must be at least 1, got {detect_every}")
        self.estimator, self.fps, self.detect_every = estimator, float(fps), detect_every
        self.tracker = IouTracker(track_iou_thr)
        self.smoother = OneEuroSmoother() if smooth else None
        self.frames = 0  # the next frame's index
        self._carried: tuple[Boxes, np.ndarray] = (Boxes.empty(), np.zeros(0, np.int64))

    def __call__(self, image: np.ndarray) -> FramePoses:
        image = self.estimator.as_bgr(image)
        index, self.frames = self.frames, self.frames + 1
        boxes, ids = self.boxes(index, image)
        poses = self.estimator.estimate([self.estimator.prepare(image, boxes, ids)])[0]
        self.smooth(index, poses)
        return poses

    def boxes(self, index: int, image_bgr: np.ndarray,
              lookup: Callable[[], Boxes] | None = None) -> tuple[Boxes, np.ndarray]:
        """Frame ``index``'s boxes and track ids: detected (or ``lookup()``) on every
        ``detect_every``-th frame, the last ones carried in between."""
        if index % self.detect_every:
            return self._carried
        boxes = lookup() if lookup is not None else self.estimator.detect(image_bgr)
        self._carried = (boxes, self.tracker.update(boxes))
        return self._carried

    def smooth(self, index: int, poses: FramePoses) -> None:
        """Filter frame ``index``'s joints in place (frames in order), when smoothing is on."""
        if self.smoother is not None:
            poses.keypoints = self.smoother(poses.track_ids, poses.keypoints, poses.boxes, index / self.fps)
