"""Person detectors behind one call, ``detect(frame_bgr) -> Boxes``.

A detector ONNX the user brings runs in ONNX Runtime. Two output layouts are read, told apart
by the shapes of a first run on a blank frame:

- end to end (mmdeploy / rtmlib exports of YOLOX and RTMDet): ``dets (1, N, 5)`` = x1, y1, x2,
  y2, score in input pixels and ``labels (1, N)``; NMS is inside the graph. Input: the frame
  resized into the top-left corner of the input, padded with 114; YOLOX takes raw BGR 0-255,
  RTMDet BGR normalised with its mean/std (``family``; RTMDet where the file's name, its
  folder's or mmdeploy's pipeline.json beside it says so).
- raw (Ultralytics YOLOv8 / YOLO11 exports): ``(1, 4 + classes, anchors)`` = cx, cy, w, h and
  per-class scores, H x W x 21 / 1024 anchors; NMS here, each anchor the class it scores highest.
  Input: the frame centred in the input, padded with 114, RGB / 255.

Only the person class (0 in COCO-trained detectors) is kept.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from hrnext_trt.contract import unavailable_reason
from hrnext_trt.errors import HrnextError, first_line
from hrnext_trt.predict.boxes import DET_IOU_THR, DET_SCORE_THR, Boxes, box_nms
from hrnext_trt.runners.base import BackendUnavailable
from hrnext_trt.runners.onnxruntime import check_provider, session_providers

log = logging.getLogger(__name__)

FAMILIES = ("yolox", "rtmdet", "ultralytics")
DEFAULT_INPUT = (640, 640)  # (H, W) when the ONNX input is dynamic
PAD_VALUE = 114
_RTMDET_MEAN_BGR = np.array([103.53, 116.28, 123.675], dtype=np.float32)
_RTMDET_STD_BGR = np.array([57.375, 57.12, 58.395], dtype=np.float32)


def letterbox(frame: np.ndarray, size: tuple[int, int], centred: bool) -> tuple[np.ndarray, float, np.ndarray]:
    """The frame scaled to fit ``size`` (H, W) with its aspect kept, padded with 114: (image, ratio,
    (pad_x, pad_y)); input pixel = image pixel * ratio + pad."""
    height, width = frame.shape[:2]
    ratio = min(size[0] / height, size[1] / width)
    new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    pad = np.array([(size[1] - new_w) // 2, (size[0] - new_h) // 2] if centred else [0, 0], dtype=np.float32)
    out = np.full((size[0], size[1], 3), PAD_VALUE, dtype=np.uint8)
    x0, y0 = int(pad[0]), int(pad[1])
    out[y0:y0 + new_h, x0:x0 + new_w] = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return out, ratio, pad


class OnnxPersonDetector:
    """A user's detector ONNX in ONNX Runtime (CPU or CUDA provider)."""

    def __init__(self, path: str | Path, device: str = "cpu", score_thr: float = DET_SCORE_THR,
                 iou_thr: float = DET_IOU_THR, family: str | None = None, person_class: int = 0,
                 threads: int | None = None):
        self.path = Path(path)
        if self.path.is_dir():
            raise HrnextError(f"detector ONNX {self.path} is a folder: pass the .onnx file in it")
        if not self.path.is_file():
            raise HrnextError(f"detector ONNX {self.path} not found")
        if family is not None and family not in FAMILIES:
            raise HrnextError(f"detector family {family!r} is not one of {', '.join(FAMILIES)}")
        self.score_thr, self.iou_thr, self.person_class = float(score_thr), float(iou_thr), int(person_class)
        self._session = _session(self.path, device, threads)
        inputs = self._session.get_inputs()
        fixed = [d if isinstance(d, int) else None for d in inputs[0].shape] if len(inputs) == 1 else []
        if len(fixed) != 4 or fixed[0] not in (1, None) or fixed[1] not in (3, None):  # None: a symbolic size
            shapes = ", ".join(f"{i.name} {i.shape}" for i in inputs)
            raise HrnextError(f"detector {self.path} has inputs {shapes}: expected one image input (1, 3, H, W) "
                              "(batch 1 or dynamic, channels first): export the detector so")
        self._input_name = inputs[0].name
        self._input_type = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
        h, w = inputs[0].shape[2:]
        self.input_size = (h, w) if isinstance(h, int) and isinstance(w, int) else DEFAULT_INPUT
        self._output_names = [o.name for o in self._session.get_outputs()]
        # The layout from the shapes of a real run (exported shapes are often symbolic).
        blank = np.zeros((self.input_size[0], self.input_size[1], 3), dtype=np.uint8)
        try:
            probe = self._run(self._feed(blank, "yolox"))
        except Exception as exc:  # onnxruntime's own types: a graph that cannot run on an image
            raise HrnextError(f"detector {self.path} does not run on a {self.input_size[0]}x{self.input_size[1]} "
                              f"image: {first_line(exc)}") from None
        self.layout = output_layout(probe, self.path, self.input_size)
        if self.layout == "raw":
            if family not in (None, "ultralytics"):
                raise HrnextError(f"detector {self.path} has the raw Ultralytics output layout, not {family}'s "
                                  "end-to-end one: drop --det-family or pass ultralytics")
            self.family = "ultralytics"
        else:
            if family == "ultralytics":
                raise HrnextError(f"detector {self.path} has the end-to-end dets/labels layout of YOLOX/RTMDet "
                                  "exports, not Ultralytics' raw one: pass --det-family yolox or rtmdet")
            self.family = family or _guess_family(self.path)
        self.name = f"{self.path.name} ({self.family}, {self.input_size[0]}x{self.input_size[1]})"
        log.info("detector %s: %s layout, %s preprocessing", self.path, self.layout, self.family)

    def _feed(self, frame: np.ndarray, family: str) -> tuple[np.ndarray, float, np.ndarray]:
        image, ratio, pad = letterbox(frame, self.input_size, centred=family == "ultralytics")
        if family == "ultralytics":
            x = image[..., ::-1].astype(np.float32) * (1 / 255)
        elif family == "rtmdet":
            x = (image.astype(np.float32) - _RTMDET_MEAN_BGR) / _RTMDET_STD_BGR
        else:
            x = image.astype(np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=self._input_type), ratio, pad

    def _run(self, feed) -> list[np.ndarray]:
        return self._session.run(self._output_names, {self._input_name: feed[0]})

    def detect(self, frame_bgr: np.ndarray) -> Boxes:
        x, ratio, pad = self._feed(frame_bgr, self.family)
        outputs = self._run((x,))
        if self.layout == "raw":
            boxes = self._decode_raw(outputs[0])
        else:
            boxes = self._decode_end_to_end(outputs)
        boxes.xyxy[:, 0::2] = (boxes.xyxy[:, 0::2] - pad[0]) / ratio
        boxes.xyxy[:, 1::2] = (boxes.xyxy[:, 1::2] - pad[1]) / ratio
        return boxes.clipped(frame_bgr.shape[1], frame_bgr.shape[0])

    def _decode_end_to_end(self, outputs: list[np.ndarray]) -> Boxes:
        dets, labels = sorted(outputs, key=lambda a: -a.ndim)
        dets, labels = dets[0].astype(np.float32), labels[0]
        keep = (labels.astype(np.int64) == self.person_class) & (dets[:, 4] >= self.score_thr)
        return Boxes(dets[keep, :4], dets[keep, 4])

    def _decode_raw(self, output: np.ndarray) -> Boxes:
        pred = output[0].astype(np.float32)
        if pred.shape[0] > pred.shape[1]:  # (anchors, 4 + classes): some exports transpose
            pred = pred.T
        if self.person_class >= pred.shape[0] - 4:
            raise HrnextError(f"detector {self.path} has {pred.shape[0] - 4} classes, no class {self.person_class}")
        scores = pred[4 + self.person_class]
        # As Ultralytics' NMS: an anchor is the class it scores highest (a bicycle at 0.9 is no person at 0.35).
        keep = (scores >= self.score_thr) & (pred[4:].argmax(axis=0) == self.person_class)
        cx, cy, w, h = pred[:4, keep]
        boxes = Boxes(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1), scores[keep])
        return box_nms(boxes, self.iou_thr)


def output_layout(outputs: list[np.ndarray], path: Path, input_size: tuple[int, int]) -> str:
    """"end_to_end" or "raw" from a run's output shapes on an ``input_size`` image; one line naming
    the shapes otherwise. A raw output must have YOLOv8/11's anchor count (strides 8, 16 and 32:
    H x W x 21 / 1024): other single outputs (Ultralytics' end-to-end (1, 300, 6), YOLOv5's 25200
    anchors, YOLOX's undecoded grid, RT-DETR's queries) would otherwise be misread as boxes."""
    shapes = sorted((tuple(o.shape) for o in outputs), key=len, reverse=True)
    if len(shapes) == 2 and len(shapes[0]) == 3 and shapes[0][0] == 1 and shapes[0][2] == 5 \
            and shapes[1] == shapes[0][:2]:
        return "end_to_end"
    anchors = input_size[0] * input_size[1] * 21 // 1024
    if len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][0] == 1:
        a, b = shapes[0][1:]
        if b == anchors and 5 <= a < anchors:
            return "raw"
        # Transposed by some exporters; 85 columns are objectness + 80 classes (YOLOv5, YOLOX), no v8.
        if a == anchors and 5 <= b < anchors and b != 85:
            return "raw"
    seen = ", ".join(str(s) for s in shapes) or "none"
    raise HrnextError(f"detector {path} outputs {seen}: supported are dets (1, N, 5) + labels (1, N) "
                      "(mmdeploy/rtmlib YOLOX, RTMDet) and (1, 4 + classes, anchors) (Ultralytics YOLOv8/11 raw, "
                      f"{anchors} anchors for this {input_size[0]}x{input_size[1]} input)")


def _guess_family(path: Path) -> str:
    """An end-to-end detector's preprocessing: RTMDet's where its name, its folder's or mmdeploy's
    pipeline.json beside it says RTMDet (mmdeploy and rtmlib name every export end2end.onnx), else YOLOX's."""
    said = [path.name, path.parent.name]
    pipeline = path.parent / "pipeline.json"
    if pipeline.is_file():
        try:
            said.append(pipeline.read_text(encoding="utf-8", errors="replace")[:100_000])
        except OSError:
            pass
    return "rtmdet" if any("rtmdet" in text.lower() for text in said) else "yolox"


def _session(path: Path, device: str, threads: int | None):
    reason = unavailable_reason("onnxruntime", device)
    if reason:
        raise HrnextError(f"the detector needs onnxruntime on {device}: {reason}")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    try:
        # TF32 allowed: the boxes only choose the crops, no accuracy row compares the detector.
        session = ort.InferenceSession(str(path), sess_options=options, providers=session_providers(device, tf32=True))
    except Exception as exc:  # onnxruntime raises its own types for corrupt or unsupported graphs
        raise HrnextError(f"onnxruntime cannot load detector {path}: {first_line(exc)}") from None
    try:
        check_provider(session, device, f"detector {path}")
    except BackendUnavailable as exc:
        raise HrnextError(f"{exc}: the detector would run on the CPU; install onnxruntime-gpu for this CUDA, or "
                          "--device cpu") from None
    return session
