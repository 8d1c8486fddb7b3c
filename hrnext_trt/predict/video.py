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
        # A track unseen for 3 frames (at least 1 s) starts afresh: a time-lapse's every frame is
        # more than a second after the last, and would otherwise never be smoothed.
        self.smoother = OneEuroSmoother(forget_s=max(1.0, 3.0 / self.fps)) if smooth else None
        self.frames = 0  # the next frame's index
        self._carried: Boxes = Boxes.empty()  # the last detection round's boxes
        self._carried_hw: tuple[int, int] = (1, 1)  # the size of the frame they were found in
        self._round_ids: dict[int, int] = {}  # the last round's box rows that OKS-NMS kept -> track ids
        self._frame_hw: dict[int, tuple[int, int]] = {}  # frames between boxes() and finish() -> their size
        self._finished_hw: tuple[int, int] | None = None  # the pixels the tracks and smoothing are in

    def __call__(self, image: np.ndarray) -> FramePoses:
        self.estimator.check_open()  # before the frame counts: a refused call moves no frame time
        image = self.estimator.as_bgr(image)
        before = self.frames, self._carried, self._carried_hw
        index, self.frames = self.frames, self.frames + 1
        try:
            people = self.estimator.prepare(image, self.boxes(index, image), keep_all=self.carried(index))
            poses = self.estimator.estimate([people])[0]
        except BaseException:  # a failed call (out of memory, Ctrl-C in a notebook) leaves no trace
            self.frames, self._carried, self._carried_hw = before
            self._frame_hw.pop(index, None)
            raise
        return self.finish(index, poses)

    def carried(self, index: int) -> bool:
        """Frame ``index`` shows its detection round's boxes: no OKS-NMS of its own (the round's
        decided which boxes are duplicates; ``finish`` keeps the people it kept)."""
        return bool(index % self.detect_every)

    def boxes(self, index: int, image_bgr: np.ndarray, lookup: Callable[[], Boxes] | None = None) -> Boxes:
        """Frame ``index``'s boxes: detected (or ``lookup()``) on every ``detect_every``-th frame, the
        last ones carried in between; to a frame of another size (a sequence's odd frame, a resized
        picture: the same scene at another scale) scaled with it."""
        self._frame_hw[index] = image_bgr.shape[:2]
        if self.carried(index):
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
        match; a carried frame shows the people of its round, under their ids. A frame of another
        size than the last moves the tracks and the smoothing to its pixels."""
        height, width = self._frame_hw.pop(index, self._finished_hw or (1, 1))
        if self._finished_hw is not None and (height, width) != self._finished_hw:
            sx, sy = width / self._finished_hw[1], height / self._finished_hw[0]
            self.tracker.rescale(sx, sy)
            if self.smoother is not None:
                self.smoother.rescale(sx, sy)
        self._finished_hw = (height, width)
        if not self.carried(index):
            ids = self.tracker.update(Boxes(poses.boxes, poses.box_scores))
            self._round_ids = dict(zip(poses.box_rows.tolist(), ids.tolist()))
        else:
            poses = poses.select(np.flatnonzero(np.isin(poses.box_rows, list(self._round_ids))))
        poses.track_ids = np.array([self._round_ids[row] for row in poses.box_rows.tolist()], dtype=np.int64)
        if self.smoother is not None:
            poses.keypoints = self.smoother(poses.track_ids, poses.keypoints, poses.boxes, index / self.fps)
        return poses
