"""Person boxes for predict: both detector ONNX layouts (real graphs in ONNX Runtime), the
detections file, the default HOG detector and the IoU tracker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from hrnext_trt.bundled import bundled_dataset_root
from hrnext_trt.errors import HrnextError
from hrnext_trt.predict.boxes import Boxes, box_nms, iou_matrix
from hrnext_trt.predict.boxes_file import BoxesFile
from hrnext_trt.predict.detector import OnnxPersonDetector, letterbox
from hrnext_trt.predict.hog import HogPersonDetector
from hrnext_trt.predict.tracking import IouTracker, track_color
from tests.conftest import REPO
from tests.predict_graphs import end_to_end_detector, odd_detector, raw_detector

pytest.importorskip("onnxruntime")


def test_letterbox_keeps_aspect_and_maps_pixels_back():
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[100:200, 300:400] = 255
    for centred, pad in ((False, (0, 0)), (True, (0, 140))):
        image, ratio, offset = letterbox(frame, (640, 640), centred)
        assert image.shape == (640, 640, 3) and ratio == 0.5 and tuple(offset) == pad
        ys, xs = np.nonzero(image[..., 0] == 255)
        # The white square lands at image pixel * ratio + pad, padding is 114.
        assert (xs.min(), ys.min()) == (150 + pad[0], 50 + pad[1])
        assert image[639, 0, 0] == 114 if not centred else image[0, 0, 0] == 114


def test_end_to_end_layout_gives_person_boxes_in_image_pixels(tmp_path):
    dets = [[50, 100, 150, 300, 0.9],  # person
            [200, 100, 300, 200, 0.95],  # class 2: not a person
            [400, 100, 500, 300, 0.1]]  # person below the score threshold
    path = end_to_end_detector(tmp_path / "yolox_s.onnx", dets, [0, 2, 0])
    detector = OnnxPersonDetector(path, score_thr=0.3)
    assert detector.layout == "end_to_end" and detector.family == "yolox" and detector.input_size == (640, 640)
    boxes = detector.detect(np.zeros((720, 1280, 3), np.uint8))  # scale 0.5, top-left placement
    np.testing.assert_allclose(boxes.xyxy, [[100, 200, 300, 600]], atol=1e-4)
    np.testing.assert_allclose(boxes.scores, [0.9], atol=1e-6)


def test_end_to_end_family_follows_the_file_name_or_the_option(tmp_path):
    path = end_to_end_detector(tmp_path / "rtmdet_nano.onnx", [[0, 0, 10, 10, 0.9]], [0])
    assert OnnxPersonDetector(path).family == "rtmdet"
    assert OnnxPersonDetector(path, family="yolox").family == "yolox"
    with pytest.raises(HrnextError, match="not Ultralytics' raw one"):
        OnnxPersonDetector(path, family="ultralytics")


@pytest.mark.parametrize("transposed", [False, True])
def test_raw_ultralytics_layout_nms_and_person_class(tmp_path, transposed):
    # Columns are anchors: cx, cy, w, h, person score, other class score (in 320x320 input pixels).
    pred = np.array([[100, 100, 40, 80, 0.8, 0.0],  # person
                     [102, 101, 40, 80, 0.6, 0.0],  # the same person again, lower: NMS drops it
                     [250, 150, 30, 60, 0.1, 0.9],  # another class
                     [200, 200, 30, 60, 0.2, 0.0]],  # person below threshold
                    dtype=np.float32).T
    # YOLOv8/11 anchors: 320 x 320 x 21 / 1024 = 2100 (strides 8, 16, 32).
    pred = np.concatenate([pred, np.zeros((6, 2100 - 4), np.float32)], axis=1)
    path = raw_detector(tmp_path / "yolov8n.onnx", pred, transposed=transposed)
    detector = OnnxPersonDetector(path, score_thr=0.3, iou_thr=0.5)
    assert detector.layout == "raw" and detector.family == "ultralytics"
    # 640x480 frame -> ratio 0.5, 320x240 centred: 40 px of padding above.
    boxes = detector.detect(np.zeros((480, 640, 3), np.uint8))
    np.testing.assert_allclose(boxes.xyxy, [[160, 40, 240, 200]], atol=1e-4)
    np.testing.assert_allclose(boxes.scores, [0.8], atol=1e-6)


def test_detector_with_another_layout_names_the_shapes_it_saw(tmp_path):
    with pytest.raises(HrnextError, match=r"outputs \(1, 10\): supported are dets"):
        OnnxPersonDetector(odd_detector(tmp_path / "odd.onnx"))
    # Single outputs that are no YOLOv8/11 raw output (were read as boxes: corners as centres,
    # objectness as the person score): Ultralytics' end-to-end (1, 300, 6), YOLOv5's 3 anchors a
    # cell, YOLOX's undecoded grid (objectness + 80 classes), RT-DETR's 300 queries.
    for name, shape in (("yolo26n", (1, 300, 6)), ("yolov5s", (1, 25200, 85)), ("yolox_m", (1, 8400, 85)),
                        ("rtdetr", (1, 300, 84))):
        path = odd_detector(tmp_path / f"{name}.onnx", shape, input_shape=(1, 3, 640, 640))
        with pytest.raises(HrnextError, match=rf"outputs {re.escape(str(shape))}: .*Ultralytics YOLOv8/11 raw, 8400 "
                                              r"anchors for this 640x640 input"):
            OnnxPersonDetector(path)
    # Inputs a detector call cannot feed: one line, not an ONNX Runtime traceback.
    for input_shape in ((1, 640, 640, 3), (4, 3, 640, 640)):
        path = odd_detector(tmp_path / "nhwc.onnx", (1, 10), input_shape=input_shape)
        with pytest.raises(HrnextError, match=r"expected one image input \(1, 3, H, W\) \(batch 1 or dynamic, "
                                              r"channels first\)"):
            OnnxPersonDetector(path)


def test_an_anchor_is_the_class_it_scores_highest_and_end2end_files_name_their_family(tmp_path):
    pred = np.zeros((6, 2100), np.float32)
    pred[:, 0] = [100, 100, 40, 80, 0.35, 0.9]  # a bicycle first, a person second
    pred[:, 1] = [200, 100, 40, 80, 0.8, 0.1]
    boxes = OnnxPersonDetector(raw_detector(tmp_path / "yolov8n.onnx", pred), score_thr=0.3).detect(
        np.zeros((320, 320, 3), np.uint8))
    np.testing.assert_allclose(boxes.xyxy, [[180, 60, 220, 140]], atol=1e-4)
    # mmdeploy and rtmlib name every export end2end.onnx: the folder (or pipeline.json) says RTMDet.
    folder = tmp_path / "rtmdet_m_640-8xb32_coco-person"
    folder.mkdir()
    assert OnnxPersonDetector(end_to_end_detector(folder / "end2end.onnx", [[0, 0, 10, 10, 0.9]], [0])).family == \
        "rtmdet"
    plain = tmp_path / "export"
    plain.mkdir()
    path = end_to_end_detector(plain / "end2end.onnx", [[0, 0, 10, 10, 0.9]], [0])
    assert OnnxPersonDetector(path).family == "yolox"
    (plain / "pipeline.json").write_text(json.dumps({"pipeline": {"tasks": [{"type": "RTMDet"}]}}))
    assert OnnxPersonDetector(path).family == "rtmdet"


def test_detections_file_reads_coco_person_boxes(tmp_path):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([{"image_id": 7, "bbox": [10, 20, 30, 40], "score": 0.9, "category_id": 1},
                                {"image_id": 7, "bbox": [0, 0, 5, 5], "score": 0.9, "category_id": 2},
                                {"image_id": 7, "bbox": [50, 50, 5, 5], "score": 0.05, "category_id": 1},
                                {"file_name": "a.jpg", "bbox": [1, 2, 3, 4], "score": 0.5}]))
    boxes_file = BoxesFile(path, score_thr=0.1)
    np.testing.assert_allclose(boxes_file.boxes_for(7, "7.jpg").xyxy, [[10, 20, 40, 60]])
    np.testing.assert_allclose(boxes_file.boxes_for(0, "a.jpg").xyxy, [[1, 2, 4, 6]])
    assert len(boxes_file.boxes_for(8, "8.jpg")) == 0
    path.write_text(json.dumps([{"score": 1.0}]))
    with pytest.raises(HrnextError, match="box 0: names no image: give it an image_id"):
        BoxesFile(path)


def test_default_hog_detector_finds_people_in_a_bundled_image():
    image = cv2.imread(str(bundled_dataset_root("ochuman-mini") / "images" / "003799.jpg"))
    boxes = HogPersonDetector().detect(image)
    assert len(boxes) >= 1
    assert (boxes.xyxy[:, :2] >= 0).all() and (boxes.xyxy[:, 2] <= image.shape[1]).all() \
        and (boxes.xyxy[:, 3] <= image.shape[0]).all()
    assert ((boxes.scores > 0.3) & (boxes.scores < 1)).all()


def test_default_hog_detector_takes_strips_and_specks_of_any_shape():
    """Thin strips once crashed OpenCV's HOG scan (a segmentation fault at 150x1000, an assertion at
    3x5000): they are scanned at a scale that holds its window, or found empty. A child process, so a
    crash fails this test instead of ending the run."""
    code = ("import numpy as np\nfrom hrnext_trt.predict.hog import HogPersonDetector\nd = HogPersonDetector()\n"
            "for h, w in [(150, 1000), (96, 640), (40, 1280), (20, 5000), (3, 5000), (5000, 3), (640, 5), (640, 30),"
            " (1, 1), (127, 63), (2, 640)]:\n"
            "    boxes = d.detect(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8))\n"
            "    assert ((boxes.xyxy[:, 2] <= w) & (boxes.xyxy[:, 3] <= h)).all()\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr[-1500:])
    # A person in a wide panorama's strip is still found: the bundled footballers on a 3:1 canvas.
    image = cv2.imread(str(bundled_dataset_root("ochuman-mini") / "images" / "003799.jpg"))
    strip = cv2.copyMakeBorder(image, 0, 0, image.shape[0], image.shape[0], cv2.BORDER_CONSTANT)
    assert len(HogPersonDetector().detect(strip)) >= 1


def test_nms_and_iou():
    boxes = Boxes([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]], [0.5, 0.9, 0.7])
    np.testing.assert_allclose(iou_matrix(boxes.xyxy[:1], boxes.xyxy[1:2]), [[90 / 110]])
    kept = box_nms(boxes, 0.5)
    np.testing.assert_allclose(kept.scores, [0.9, 0.7])


def test_tracker_keeps_ids_under_motion_and_never_reuses_them():
    tracker = IouTracker(iou_thr=0.3, max_missed=1)
    a, b = np.array([0, 0, 100, 200.0]), np.array([300, 0, 400, 200.0])
    assert tracker.update(Boxes([a, b], [0.9, 0.8])).tolist() == [1, 2]
    # Moved a little, listed in the other order: same ids.
    assert tracker.update(Boxes([b + 5, a + 8], [0.8, 0.9])).tolist() == [2, 1]
    # b is gone for two rounds (more than max_missed): it ends; a new box there is a new person.
    assert tracker.update(Boxes([a], [0.9])).tolist() == [1]
    assert tracker.update(Boxes([a], [0.9])).tolist() == [1]
    assert tracker.update(Boxes([a, b], [0.9, 0.8])).tolist() == [1, 3]
    assert track_color(1) != track_color(2) and track_color(3) == track_color(3)
