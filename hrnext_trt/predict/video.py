"""Poses over a video's frames: the detector every ``detect_every`` frames with its boxes carried in
between, IoU track ids, and optionally One-Euro smoothing per track.

``VideoPoses`` is what ``predict`` does to a video, a frame at a time for Python callers who hold
the frames (``PoseEstimator.video``); ``run.py`` uses its two halves, ``boxes`` and ``finish``,
around its batching of several frames per network call, so both give the same poses.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np

from hrnext_trt.contract import check_count, check_fraction
from hrnext_trt.errors import HrnextError
from hrnext_trt.predict.boxes import Boxes
from hrnext_trt.predict.poses import FramePoses
from hrnext_trt.predict.smoothing import OneEuroSmoother
from hrnext_trt.predict.tracking import IouTracker


class VideoPoses:
    """``video(frame) -> FramePoses`` with track ids, for the frames of one video in order."""

    def __init__(self, estimator, fps: float = 30.0, detect_every: int = 1, smooth: bool = False,
                 track_iou_thr: float = 0.3):
        if isinstance(fps, bool) or not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
            raise HrnextError(f"fps must be the video's frame rate, a positive number, got {fps!r} (OpenCV: "
                              "capture.get(cv2.CAP_PROP_FPS); where a stream reports 0, predict takes 30)")
        check_count("detect_every", detect_every)
        check_fraction("track_iou_thr", track_iou_thr)
        self.estimator, self.fps, self.detect_every = estimator, float(fps), int(detect_every)
        self.tracker = IouTracker(track_iou_thr)
        self.smoother = OneEuroSmoother() if smooth else None
        self.frames = 0  # the next frame's index
        self._carried: Boxes = Boxes.empty()  # the last detection round's boxes
        self._carried_hw: tuple[int, int] = (1, 1)  # the size of the frame they were found in
        self._round_ids: dict[int, int] = {}  # the last round's box rows that OKS-NMS kept -> track ids

    def __call__(self, image: np.ndarray) -> FramePoses:
        self.estimator.check_open()  # before the frame counts: a refused call moves no frame time
        image = self.estimator.as_bgr(image)
        index, self.frames = self.frames, self.frames + 1
        poses = self.estimator.estimate([self.estimator.prepare(image, self.boxes(index, image))])[0]
        return self.finish(index, poses)

    def boxes(self, index: int, image_bgr: np.ndarray, lookup: Callable[[], Boxes] | None = None) -> Boxes:
        """Frame ``index``'s boxes: detected (or ``lookup()``) on every ``detect_every``-th frame, the
        last ones carried in between; to a frame of another size (a sequence's odd frame, a resized
        picture: the same scene at another scale) scaled with it."""
        if index % self.detect_every:
            boxes, (height, width), (from_h, from_w) = self._carried, image_bgr.shape[:2], self._carried_hw
            if (height, width) != (from_h, from_w):
                boxes = Boxes(boxes.xyxy * np.float32([width / from_w, height / from_h] * 2), boxes.scores)
            return boxes
        self._carried = lookup() if lookup is not None else self.estimator.detect(image_bgr)
        self._carried_hw = image_bgr.shape[:2]
        return self._carried

    def finish(self, index: int, poses: FramePoses) -> FramePoses:
        """Frame ``index``'s poses (of ``boxes(index)``) with track ids, and smoothed when smoothing is
        on; frames in order. Tracks are made of the poses OKS-NMS kept on a detection round's frame,
        so a suppressed duplicate box neither takes an id nor lives on to steal the person's next
        match; a carried frame shows the people of its round, under their ids."""
        if index % self.detect_every == 0:
            ids = self.tracker.update(Boxes(poses.boxes, poses.box_scores))
            self._round_ids = dict(zip(poses.box_rows.tolist(), ids.tolist()))
        else:
            poses = poses.select(np.flatnonzero(np.isin(poses.box_rows, list(self._round_ids))))
        poses.track_ids = np.array([self._round_ids[row] for row in poses.box_rows.tolist()], dtype=np.int64)
        if self.smoother is not None:
            poses.keypoints = self.smoother(poses.track_ids, poses.keypoints, poses.boxes, index / self.fps)
        return poses
