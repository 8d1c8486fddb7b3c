"""``PoseEstimator``: poses of the people in images held in memory, through any backend.

    from hrnext_trt.predict import PoseEstimator

    with PoseEstimator("engines/hrnext_s_crowdpose/model.onnx", detector="yolox_m.onnx") as estimator:
        poses = estimator(cv2.imread("crowd.jpg"))            # the detector's people
        poses = estimator(frame, boxes=[[x1, y1, x2, y2]])   # your boxes: one pose per box, in order
        cv2.imwrite("drawn.jpg", estimator.draw(frame, poses))
        video = estimator.video(fps=30, detect_every=2, smooth=True)  # a video's frames, in order, at its rate
        poses = video(frame)                                 # with track ids

It is ``predict``'s own path (``run.py`` calls its steps, several frames per network call):
detect -> crop -> network on the crops of several images at once -> decode -> rescore -> OKS-NMS,
so a pose here equals the one ``predict`` writes, and the one ``trt-eval`` scores for the same box
with joints beyond the image border moved onto it.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hrnext_trt.contract import check_count, check_fraction, check_threads, resolve_device
from hrnext_trt.data.preprocess import box_to_center_scale, crop_images
from hrnext_trt.errors import HrnextError
from hrnext_trt.keypoints import KeypointMeta
from hrnext_trt.pipeline import decode_heatmaps, infer_heatmaps, instance_scores, pose_nms
from hrnext_trt.predict.boxes import DET_IOU_THR, DET_SCORE_THR, Boxes
from hrnext_trt.predict.detector import OnnxPersonDetector
from hrnext_trt.predict.hog import HogPersonDetector
from hrnext_trt.predict.model import load_pose_network
from hrnext_trt.predict.poses import FramePoses, annotate
from hrnext_trt.predict.video import VideoPoses


@dataclass
class PersonCrops:
    """One image's people, cropped for the network. ``keep_all``: one pose per box, in the boxes'
    order (boxes the caller chose); otherwise OKS-NMS drops duplicates (detector boxes)."""

    image_hw: tuple[int, int]
    boxes: Boxes
    centers: np.ndarray
    scales: np.ndarray
    crops: np.ndarray
    keep_all: bool = False


class PoseEstimator:
    """A pose model (checkpoint, ONNX file or TensorRT engine) and a person detector (a detector
    ONNX, any object with ``detect(image_bgr) -> Boxes``, or None: OpenCV's HOG, made on first use).

    Images are ``(H, W, 3)`` uint8 arrays in OpenCV's BGR order (``rgb=True``: RGB, as PIL and
    imageio give); grey ``(H, W)`` and BGRA ``(H, W, 4)`` are converted. Keypoints come back in the
    image's pixels. The model is loaded and its runner allocated here; ``close()`` (or leaving a
    ``with`` block) frees it. Errors name the keyword arguments (``option_names="cli"``, for
    ``run.py``: those of device, threads and the model-record options name predict's flags).
    """

    def __init__(self, model: str | Path, detector=None, *, device: str = "auto", batch: int = 16,
                 flip_test: bool = False, rgb: bool = False, det_score_thr: float = DET_SCORE_THR,
                 det_iou_thr: float = DET_IOU_THR, det_family: str | None = None, threads: int | None = None,
                 arch: str | None = None, num_joints: int | None = None,
                 input_size: tuple[int, int] | None = None, option_names: str = "python"):
        python = option_names != "cli"  # errors name keyword arguments, or predict's flags
        check_count("batch", batch)
        check_fraction("det_score_thr", det_score_thr)
        check_fraction("det_iou_thr", det_iou_thr)
        check_threads(threads, python=python)
        self.device = resolve_device(device, python=python)
        self.batch, self.rgb = int(batch), bool(rgb)
        self._det_args = (det_score_thr, det_iou_thr)
        self.network = load_pose_network(model, self.device, threads, self.batch, arch=arch, num_joints=num_joints,
                                         input_size=input_size, python=python)
        self._detector = open_detector(detector, self.device, det_score_thr, det_iou_thr, det_family, threads)
        self._flip_index = self.network.meta.flip_index if flip_test else None
        self.network.runner.activate()
        self._infer = self.network.runner.heatmap_fn()

    # -- what the model is ------------------------------------------------------------------
    @property
    def meta(self) -> KeypointMeta:
        """The keypoints' names, skeleton, flip pairs and OKS sigmas."""
        return self.network.meta

    @property
    def input_size(self) -> tuple[int, int]:
        return self.network.input_size

    @property
    def detector(self):
        if self._detector is None:
            self._detector = HogPersonDetector(*self._det_args)
        return self._detector

    @property
    def is_open(self) -> bool:
        return self.network.runner.is_active

    def check_open(self) -> None:
        if not self.is_open:
            raise HrnextError("this PoseEstimator is closed: use it inside its `with` block (a new `with` reopens "
                              "it) or make a new one")

    # -- one call ---------------------------------------------------------------------------
    def __call__(self, image: np.ndarray, boxes=None) -> FramePoses:
        """The poses of one image: of the detector's people, or one per box of ``boxes``
        ((N, 4) x1, y1, x2, y2 in image pixels, or (N, 5) with a score), in their order."""
        return self.predict_many([image], None if boxes is None else [boxes])[0]

    def predict_many(self, images, boxes=None) -> list[FramePoses]:
        """``__call__`` for several images, their crops through the network together."""
        self.check_open()
        if isinstance(images, np.ndarray) and images.ndim < 4:  # one image: its rows would pass for images
            raise HrnextError(f"predict_many takes a list of images (or an (N, H, W, 3) array), got one array of shape "
                              f"{images.shape}: call estimator(image) for one image")
        images = [self.as_bgr(image) for image in images]
        boxes = [None] * len(images) if boxes is None else list(boxes)
        if len(boxes) != len(images):
            raise HrnextError(f"boxes: one entry per image (None: the detector's people), got {len(boxes)} for "
                              f"{len(images)} images")
        people = []
        for i, (image, given) in enumerate(zip(images, boxes)):
            if given is None:
                people.append(self.prepare(image, self.detect(image)))
                continue
            where = f"image {i}: " if len(images) > 1 else ""
            people.append(self.prepare(image, as_boxes(given, image.shape, where), keep_all=True))
        return self.estimate(people)

    def video(self, fps: float = 30.0, detect_every: int = 1, smooth: bool = False,
              track_iou_thr: float = 0.3) -> VideoPoses:
        """``video(frame) -> FramePoses`` with track ids for one video's frames, in order: what ``predict``
        does to a video (``detect_every``: the detector every N frames, boxes carried in between;
        ``smooth``: One-Euro filter per track, in time ``frame index / fps``: pass the video's frame rate,
        e.g. ``capture.get(cv2.CAP_PROP_FPS)``, for ``predict``'s poses)."""
        return VideoPoses(self, fps, detect_every, smooth, track_iou_thr)

    def draw(self, image: np.ndarray, poses: FramePoses, kpt_thr: float = 0.3) -> np.ndarray:
        """A copy of ``image`` with the skeletons (joints above ``kpt_thr``), boxes and scores."""
        check_fraction("kpt_thr", kpt_thr)
        if not isinstance(poses, FramePoses):
            raise HrnextError(f"draw takes the FramePoses this estimator returned, got {type(poses).__name__}")
        canvas = annotate(self.as_bgr(image), poses, self.meta, kpt_thr)
        return cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB) if self.rgb else canvas

    # -- the steps, for loops that time or batch them (``predict``) ---------------------------
    def detect(self, image_bgr: np.ndarray) -> Boxes:
        """The detector's person boxes scored at least ``det_score_thr``, cut to the image."""
        return detect_people(self.detector, image_bgr, self._det_args[0])

    def prepare(self, image_bgr: np.ndarray, boxes: Boxes, keep_all: bool = False) -> PersonCrops:
        centers, scales = box_to_center_scale(boxes.xywh(), self.input_size)
        crops = crop_images(image_bgr, centers, scales, self.input_size)
        return PersonCrops(image_bgr.shape[:2], boxes, centers, scales, crops, keep_all)

    def estimate(self, people: list[PersonCrops], timer=None) -> list[FramePoses]:
        """Network, decoding and OKS-NMS for the people of several images; ``timer`` (a
        ``StageTimer``) times the ``pose`` and ``decode`` stages."""
        self.check_open()
        stage = timer.stage if timer is not None else lambda name: nullcontext()
        if not people:
            return []
        crops = np.concatenate([p.crops for p in people])
        with stage("pose"):
            chunks = [infer_heatmaps(self._infer, crops[i:i + self.batch], self.meta.num_joints, self._flip_index)
                      for i in range(0, len(crops), self.batch)]
        with stage("decode"):
            keypoints = decode_heatmaps(np.concatenate(chunks), np.concatenate([p.centers for p in people]),
                                        np.concatenate([p.scales for p in people]), self.input_size) \
                if chunks else None
            poses, start = [], 0
            for p in people:
                n = len(p.boxes)
                poses.append(self._poses(p, keypoints[start:start + n] if n else None))
                start += n
        return poses

    def _poses(self, p: PersonCrops, keypoints: np.ndarray | None) -> FramePoses:
        joints = self.meta.num_joints
        if keypoints is None:
            return FramePoses(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), None,
                              np.zeros((0, joints, 3), np.float32), np.zeros(0))
        # A joint in the crop's padding beyond the image border is reported at the border.
        height, width = p.image_hw
        keypoints[..., 0] = keypoints[..., 0].clip(0, width - 1)
        keypoints[..., 1] = keypoints[..., 1].clip(0, height - 1)
        scores = instance_scores(keypoints, p.boxes.scores)
        keep = np.arange(len(p.boxes)) if p.keep_all else np.sort(pose_nms(keypoints, scores, p.scales,
                                                                            self.meta.sigmas))
        return FramePoses(p.boxes.xyxy[keep], p.boxes.scores[keep], None, keypoints[keep], scores[keep],
                          keep.astype(np.int64))

    def as_bgr(self, image) -> np.ndarray:
        """``image`` as the contiguous (H, W, 3) uint8 BGR array the steps take, or one line saying why not."""
        if image is None:
            raise HrnextError("image is None: cv2.imread gives None for a file it cannot find or read; check the path")
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3) \
                or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)) or min(image.shape[:2]) < 1:
            raise HrnextError("image must be an (H, W, 3) uint8 array (cv2.imread's BGR; rgb=True for RGB), got "
                              + _what_image_is(image))
        if image.ndim == 2 or image.shape[2] == 1:
            return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if image.shape[2] == 4:
            return cv2.cvtColor(image, cv2.COLOR_RGBA2BGR if self.rgb else cv2.COLOR_BGRA2BGR)
        # A view such as frame[..., ::-1] has negative strides, which OpenCV's warps refuse.
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if self.rgb else np.ascontiguousarray(image)

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        self.network.runner.deactivate()

    def __enter__(self) -> "PoseEstimator":
        if not self.is_open:  # a closed estimator reopens: its model is loaded again
            self.network.runner.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        detector = HogPersonDetector.name if self._detector is None else getattr(self._detector, "name",
                                                                                 type(self._detector).__name__)
        return f"PoseEstimator({self.network.description}, detector: {detector}, device: {self.device})"


def open_detector(detector, device: str = "cpu", det_score_thr: float = DET_SCORE_THR,
                  det_iou_thr: float = DET_IOU_THR, det_family: str | None = None, threads: int | None = None):
    """A detector ONNX path opened (``OnnxPersonDetector``), an object with ``detect(image)`` as
    given, or None (the caller's default: OpenCV's HOG)."""
    if isinstance(detector, (str, os.PathLike)):
        return OnnxPersonDetector(detector, device, det_score_thr, det_iou_thr, det_family, threads=threads)
    if detector is not None and not callable(getattr(detector, "detect", None)):
        raise HrnextError(f"detector must be a detector ONNX path or an object with detect(image) -> Boxes, "
                          f"got {type(detector).__name__}")
    return detector


def detect_people(detector, image_bgr: np.ndarray, det_score_thr: float) -> Boxes:
    """``detector``'s person boxes of an image scored at least ``det_score_thr``, cut to the image."""
    # Every detector's output checked alike (one's own may return arrays); boxes of no area dropped.
    found = as_boxes(detector.detect(image_bgr), None, f"{type(detector).__name__}.detect() returned boxes: ",
                     drop_empty=True)
    found = found.select(found.scores >= det_score_thr)
    return found.clipped(image_bgr.shape[1], image_bgr.shape[0])


def _a(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeio' else 'a'} {word}"  # "a uint8": u sounds as "you" here


def _what_image_is(image) -> str:
    """What was passed instead of an image, and how to make one of it."""
    if isinstance(image, (str, os.PathLike)):
        return f"a path ({image}): read it first, image = cv2.imread(path)"
    if not isinstance(image, np.ndarray):
        hint = ": np.asarray(image) with rgb=True" if type(image).__module__.startswith("PIL") else ""
        return _a(type(image).__name__) + hint
    what = _a(f"{image.dtype} array of shape {image.shape}")
    if image.ndim == 4:
        return what + ": several images go to predict_many"
    if image.dtype.kind == "f":
        return what + ": a float image in 0..1 becomes one with (image * 255).round().astype(np.uint8)"
    if image.dtype.kind in "ui" and image.dtype != np.uint8:
        scale = ", e.g. (image >> 8).astype(np.uint8) for 16 bits" if image.dtype == np.uint16 else ""
        return what + f": scale it to 0..255 and convert to uint8{scale}"
    return what


def as_boxes(boxes, image_shape, where: str = "", drop_empty: bool = False) -> Boxes:
    """Boxes given by a caller (or returned by a detector), checked: a ``Boxes``, or (N, 4) x1, y1,
    x2, y2 / (N, 5) with scores (default 1) as any array-like; ``image_shape`` (H, W): none may lie
    wholly outside; ``drop_empty``: boxes of no area are dropped, not refused (a detector's). Used as
    given: not cut to the image (a crop may reach past its border, as trt-eval's boxes do)."""
    if isinstance(boxes, Boxes):
        boxes = np.concatenate([boxes.xyxy, boxes.scores[:, None]], axis=1)
    try:
        array = None if boxes is None else np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or (array.size and (array.ndim not in (1, 2) or array.shape[-1] not in (4, 5))):
        what = f"shape {array.shape}" if array is not None else \
            type(boxes).__name__ + ("" if boxes is None else f" {str(boxes)[:60]}")
        raise HrnextError(f"{where}boxes must be (N, 4) x1, y1, x2, y2 or (N, 5) with a score, got {what}")
    if array.size == 0:
        return Boxes.empty()
    array = array.reshape(-1, array.shape[-1])
    if not np.isfinite(array).all():
        raise HrnextError(f"{where}boxes hold NaN or infinite values")
    empty = (array[:, 2] <= array[:, 0]) | (array[:, 3] <= array[:, 1])
    if drop_empty:
        array = array[~empty]
        empty = empty[~empty]
    xyxy = array[:, :4]
    bad = np.flatnonzero(empty)
    if len(bad):
        raise HrnextError(f"{where}box {bad[0]} {xyxy[bad[0]].tolist()} has no area: boxes are x1, y1, x2, y2 with "
                          "x2 > x1 and y2 > y1 (convert x, y, w, h boxes with x2 = x + w, y2 = y + h)")
    if image_shape is not None:
        height, width = image_shape[:2]
        outside = np.flatnonzero((xyxy[:, 2] <= 0) | (xyxy[:, 3] <= 0) | (xyxy[:, 0] >= width)
                                 | (xyxy[:, 1] >= height))
        if len(outside):
            raise HrnextError(f"{where}box {outside[0]} {xyxy[outside[0]].tolist()} lies outside the "
                              f"{width}x{height} image")
    scores = array[:, 4] if array.shape[1] == 5 else np.ones(len(array))
    if ((scores < 0) | (scores > 1)).any():
        raise HrnextError(f"{where}box scores must be from 0 to 1 (a detector's confidence), got "
                          f"{scores[(scores < 0) | (scores > 1)][0]:g}")
    return Boxes(xyxy, scores)
