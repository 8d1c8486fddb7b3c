"""``PoseEstimator``, predict's Python API: the poses trt-eval scores for the same boxes, one pose per
given box in order, batching that changes nothing, every image layout a user holds (BGR, RGB, grey,
BGRA, views), drawing on a copy, and one line for each bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from hrnext_trt.bundled import bundled_dataset_root
from hrnext_trt.data.preprocess import box_to_center_scale
from hrnext_trt.errors import HrnextError
from hrnext_trt.predict import FramePoses, PoseEstimator, PredictConfig, run_predict
from hrnext_trt.predict.boxes import Boxes, xywh_to_xyxy
from tests.predict_graphs import end_to_end_detector, pose_network

pytest.importorskip("onnxruntime")

CROWD = bundled_dataset_root("crowdpose-mini")
IMAGE = CROWD / "images" / "106848.jpg"
DETS = [[40, 60, 200, 400, 0.9], [300, 60, 460, 400, 0.8]]  # in the detector's 640x640 input


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {"pose": pose_network(folder / "model.onnx"),
            "detector": end_to_end_detector(folder / "yolox.onnx", DETS, [0, 0])}


def test_poses_equal_trt_evals_for_the_same_boxes(fixture_export):
    """The estimator's steps on a dataset image's detector boxes give trt-eval's results for that image
    (crop, network, flip test, decoding, rescoring and OKS-NMS are the same code)."""
    from hrnext_trt.data.datasets import load_dataset
    from hrnext_trt.pipeline import predict
    from hrnext_trt.runners import OnnxRuntimeRunner

    export, _ = fixture_export
    dataset = load_dataset("crowdpose", CROWD, "test", boxes="det")
    image_id = 106848
    mine = [inst for inst in dataset.instances if inst.image_id == image_id]
    # That image alone, in one network call as the estimator makes it: the same batch, the same sums.
    one_image = dataclasses.replace(dataset, instances=mine)
    with OnnxRuntimeRunner(export / "model.onnx", "fp32", threads=1) as runner:
        expected = predict(one_image, runner.heatmap_fn(), (256, 192), batch_size=16, flip_test=True, progress=False)
    assert 3 <= len(mine) <= 16 and len(expected) >= 1
    image = cv2.imread(str(IMAGE))
    boxes = Boxes(xywh_to_xyxy([inst.box for inst in mine]), [inst.box_score for inst in mine])
    with PoseEstimator(export / "model.onnx", device="cpu", flip_test=True, threads=1) as estimator:
        assert estimator.input_size == (256, 192) and estimator.meta.num_joints == 14
        poses = estimator.estimate([estimator.prepare(image, boxes)])[0]
    assert len(poses) == len(expected)
    order = np.argsort([-r["score"] for r in expected], kind="stable")
    got = np.argsort(-poses.scores, kind="stable")
    for i, j in zip(order, got):
        want = np.reshape(expected[i]["keypoints"], (-1, 3)).copy()
        want[:, 0] = want[:, 0].clip(0, image.shape[1] - 1)  # the estimator reports joints at the border
        want[:, 1] = want[:, 1].clip(0, image.shape[0] - 1)
        np.testing.assert_allclose(poses.keypoints[j], want, atol=1e-4)
        assert poses.scores[j] == pytest.approx(expected[i]["score"], abs=1e-5)


def test_given_boxes_give_one_pose_per_box_in_order(models):
    image = cv2.imread(str(IMAGE))
    boxes = [[300, 40, 420, 400], [50, 30, 200, 410], [300, 40, 420, 400]]  # the first box twice
    with PoseEstimator(models["pose"], device="cpu") as estimator:
        poses = estimator(image, boxes=boxes)
        scored = estimator(image, boxes=np.array([[50, 30, 200, 410, 0.5]]))
        none = estimator(image, boxes=np.zeros((0, 4)))
    assert isinstance(poses, FramePoses) and len(poses) == 3 and poses.track_ids is None
    np.testing.assert_array_equal(poses.boxes, np.float32(boxes))  # no OKS-NMS: the duplicate stays
    np.testing.assert_array_equal(poses.box_scores, [1, 1, 1])
    np.testing.assert_array_equal(poses.keypoints[0], poses.keypoints[2])
    assert poses.keypoints.shape == (3, 14, 3)
    centers, scales = box_to_center_scale(Boxes(boxes, [1, 1, 1]).xywh(), estimator.input_size)
    for person, center, scale in zip(poses.keypoints, centers, scales):  # each pose inside its own box's crop
        assert (np.abs(person[:, :2] - center) <= scale / 2 + 1e-3).all()
    np.testing.assert_allclose(scored.keypoints[0], poses.keypoints[1], atol=1e-4)
    assert scored.scores[0] == pytest.approx(0.5 * poses.scores[1], rel=1e-5)
    assert len(none) == 0 and none.keypoints.shape == (0, 14, 3)


def test_detector_poses_equal_predicts_results(tmp_path, models):
    """The estimator with a detector is predict's loop without the files: the same people, the same poses."""
    run_predict(PredictConfig(str(IMAGE), models["pose"], detector=models["detector"], out=tmp_path / "o",
                              device="cpu", progress=False))
    written = json.loads((tmp_path / "o" / "results.json").read_text())
    with PoseEstimator(models["pose"], models["detector"], device="cpu") as estimator:
        poses = estimator(cv2.imread(str(IMAGE)))
    assert len(poses) == len(written) == 2
    for person, mine in zip(written, poses.people()):
        assert person["bbox"] == mine["bbox"] and person["keypoints"] == mine["keypoints"]


def test_batching_layouts_and_views_change_nothing(models):
    bgr = cv2.imread(str(IMAGE))
    other = cv2.imread(str(CROWD / "images" / "103319.jpg"))
    boxes = [[300, 40, 420, 400], [50, 30, 200, 410]]
    with PoseEstimator(models["pose"], device="cpu", batch=3) as estimator:
        one = estimator(bgr, boxes)
        both = estimator.predict_many([other, bgr], [boxes, boxes])
        view = estimator(np.ascontiguousarray(bgr[..., ::-1])[..., ::-1], boxes)  # negative strides
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        grey_poses, grey_as_bgr = estimator(grey, boxes), estimator(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), boxes)
        channel = estimator(grey[..., None], boxes)
        bgra = estimator(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), boxes)
    with PoseEstimator(models["pose"], device="cpu", rgb=True) as estimator:
        rgb = estimator(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), boxes)
        rgba = estimator(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA), boxes)
        drawn_rgb = estimator.draw(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), one)
    for poses in (both[1], view, rgb, rgba, bgra):
        np.testing.assert_allclose(poses.keypoints, one.keypoints, atol=1e-4)
    np.testing.assert_array_equal(grey_poses.keypoints, grey_as_bgr.keypoints)
    np.testing.assert_array_equal(channel.keypoints, grey_as_bgr.keypoints)
    assert not np.allclose(both[0].keypoints, one.keypoints)  # the other image's own poses
    with PoseEstimator(models["pose"], device="cpu") as estimator:
        drawn = estimator.draw(bgr, one)
    assert drawn.shape == bgr.shape and not np.array_equal(drawn, bgr)
    assert np.array_equal(bgr, cv2.imread(str(IMAGE)))  # drawn on a copy
    np.testing.assert_array_equal(cv2.cvtColor(drawn_rgb, cv2.COLOR_RGB2BGR), drawn)  # the same colours


def test_default_detector_is_made_on_first_use(models):
    with PoseEstimator(models["pose"], device="cpu") as estimator:
        assert "HOG" in repr(estimator)
        estimator(cv2.imread(str(IMAGE)), boxes=[[0, 0, 50, 100]])  # own boxes: no detector needed
        assert estimator._detector is None
        poses = estimator(cv2.imread(str(bundled_dataset_root("ochuman-mini") / "images" / "003799.jpg")))
        assert "HOG" in estimator.detector.name and len(poses) >= 1


def test_a_detector_object_of_ones_own(models):
    class Fixed:
        name = "fixed"

        def detect(self, image):
            return Boxes([[10, 10, 120, 300], [-50, -50, 5000, 5000]], [0.9, 0.7])

    image = cv2.imread(str(IMAGE))
    with PoseEstimator(models["pose"], Fixed(), device="cpu") as estimator:
        poses = estimator(image)
    assert 1 <= len(poses) <= 2 and "fixed" in repr(estimator)
    assert (poses.boxes[:, 2] <= image.shape[1]).all() and (poses.boxes[:, 3] <= image.shape[0]).all()  # clipped


@pytest.mark.parametrize("image, boxes, message", [
    (np.zeros((64, 48, 3), np.float32), None, r"image must be an \(H, W, 3\) uint8 array .* got a float32 array of "
                                              r"shape \(64, 48, 3\): a float image in 0\.\.1 becomes one with"),
    (np.zeros((64, 48, 2), np.uint8), None, r"got a uint8 array of shape \(64, 48, 2\)"),
    ("crowd.jpg", None, r"image must be .* got a path \(crowd\.jpg\): read it first, image = cv2\.imread\(path\)"),
    (np.zeros((1, 64, 48, 3), np.uint8), None, r"got a uint8 array of shape \(1, 64, 48, 3\): several images go to "
                                               r"predict_many"),
    (np.zeros((64, 48, 3), np.uint16), None,
     r"got a uint16 array .*: scale it to 0\.\.255 and convert to uint8, e\.g\. \(image >> 8\)"),
    (np.zeros((64, 48, 3), np.int8), None,
     r"got an int8 array of shape \(64, 48, 3\): scale it to 0\.\.255 and convert to uint8$"),
    (np.zeros((64, 48, 3), np.uint8), [[1, 2, 3, 4], [1, 2, 3]],
     r"boxes must be \(N, 4\) x1, y1, x2, y2 or \(N, 5\) with a score, got list"),
    (np.zeros((64, 48, 3), np.uint8), [["a", 2, 3, 4]], r"boxes must be .* got list \[\['a', 2, 3, 4\]\]"),
    (np.zeros((64, 48, 3), np.uint8), {"a": 1}, r"boxes must be .* got dict"),
    (np.zeros((64, 48, 3), np.uint8), [[1, 1, 9, 9, 5.0]],
     r"box scores must be from 0 to 1 \(a detector's confidence\), got 5"),
    (None, None, r"image is None: cv2\.imread gives None for a file it cannot find or read; check the path"),
    (np.zeros((64, 48, 3), np.uint8), [[1, 2, 3]], r"boxes must be \(N, 4\) x1, y1, x2, y2 or \(N, 5\) with a score, "
                                                   r"got shape \(1, 3\)"),
    (np.zeros((64, 48, 3), np.uint8), [[10, 10, 5, 40]], r"box 0 \[10\.0, 10\.0, 5\.0, 40\.0\] has no area: boxes "
                                                         r"are x1, y1, x2, y2 .* x2 = x \+ w"),
    (np.zeros((64, 48, 3), np.uint8), [[1, 1, 9, 9], [100, 1, 120, 9]], r"box 1 .* lies outside the 48x64 image"),
    (np.zeros((64, 48, 3), np.uint8), [[1, 1, np.nan, 9]], r"boxes hold NaN or infinite values"),
])
def test_bad_images_and_boxes_are_one_line(models, image, boxes, message):
    with PoseEstimator(models["pose"], device="cpu") as estimator:
        with pytest.raises(HrnextError, match=message):
            estimator(image, boxes=boxes)


def test_bad_construction_is_one_line(tmp_path, models):
    with pytest.raises(HrnextError, match=r"detector must be a detector ONNX path or an object with detect"):
        PoseEstimator(models["pose"], detector=42, device="cpu")
    with pytest.raises(HrnextError, match=r"det_score_thr must be a number from 0 to 1, got nan"):
        PoseEstimator(models["pose"], det_score_thr=float("nan"))
    with pytest.raises(HrnextError, match=r"batch must be a whole number of at least 1, got 0"):
        PoseEstimator(models["pose"], batch=0)
    with pytest.raises(HrnextError, match=r"threads must be a positive number of threads, got 0"):  # not --threads
        PoseEstimator(models["pose"], threads=0)
    with pytest.raises(HrnextError, match=r"pose model .*missing\.onnx not found"):
        PoseEstimator(tmp_path / "missing.onnx")
    with pytest.raises(HrnextError, match=r"pose model must be a path to a checkpoint .* got NoneType"):
        PoseEstimator(None)
    folder = models["pose"].parent
    with pytest.raises(HrnextError, match=rf"pose model {folder} is a folder: pass one of its files, e\.g\. "
                                          r".*model\.onnx \(model\.onnx, yolox\.onnx\)"):
        PoseEstimator(models["pose"].parent)
    with pytest.raises(HrnextError, match=r"detector ONNX .* is a folder: pass the \.onnx file in it"):
        PoseEstimator(models["pose"], detector=tmp_path)
    with pytest.raises(HrnextError, match=r"input_size=: model\.onnx describes its own model"):  # not --input-size
        PoseEstimator(models["pose"], input_size=(64, 48))
    from hrnext_trt.contract import nvidia_gpu_present
    if not nvidia_gpu_present():
        with pytest.raises(HrnextError, match=r"^device='cuda': this machine has no NVIDIA GPU .*: use device='cpu', "
                                              r"or auto$"):
            PoseEstimator(models["pose"], device="cuda")
    with PoseEstimator(models["pose"], device="cpu", batch=np.int64(2)) as estimator:
        with pytest.raises(HrnextError, match=r"boxes: one entry per image \(None: the detector's people\), "
                                              r"got 1 for 2 images"):
            estimator.predict_many([np.zeros((8, 8, 3), np.uint8)] * 2, [[[1, 1, 4, 4]]])
        with pytest.raises(HrnextError, match=r"predict_many takes a list of images \(or an \(N, H, W, 3\) array\), "
                                              r"got one array of shape \(8, 8, 3\): call estimator\(image\) for "
                                              r"one image"):
            estimator.predict_many(np.zeros((8, 8, 3), np.uint8))
        with pytest.raises(HrnextError, match=r"^image 1: box 0 \[20\.0, 1\.0, 30\.0, 4\.0\] lies outside the "
                                              r"8x8 image$"):
            estimator.predict_many([np.zeros((40, 40, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)],
                                   [[[20, 1, 30, 4]]] * 2)
        stacked = estimator.predict_many(np.zeros((2, 8, 8, 3), np.uint8), ([[1, 1, 4, 4]] for _ in range(2)))
        assert [len(p) for p in stacked] == [1, 1]
        with pytest.raises(HrnextError, match=r"fps must be the video's frame rate, a positive number, got inf"):
            estimator.video(fps=float("inf"))
        with pytest.raises(HrnextError, match=r"fps must be .* got '30'"):
            estimator.video(fps="30")
        with pytest.raises(HrnextError, match=r"fps must be .* got True"):
            estimator.video(fps=True)
        video = estimator.video(fps=10)
        with pytest.raises(HrnextError, match=r"detect_every must be a whole number of at least 1, got 0"):
            estimator.video(detect_every=0)
        assert estimator.video(fps=np.float32(25), detect_every=np.int64(2)).detect_every == 2
        with pytest.raises(HrnextError, match=r"kpt_thr must be a number from 0 to 1, got '0\.5'"):
            estimator.draw(np.zeros((8, 8, 3), np.uint8), estimator(np.zeros((8, 8, 3), np.uint8), []), kpt_thr="0.5")
        with pytest.raises(HrnextError, match=r"draw takes the FramePoses this estimator returned, got NoneType"):
            estimator.draw(np.zeros((8, 8, 3), np.uint8), None)
    closed = (r"this PoseEstimator is closed: use it inside its `with` block \(a new `with` reopens it\) "
              r"or make a new one")
    for call in (lambda: estimator(np.zeros((8, 8, 3), np.uint8), boxes=[[1, 1, 4, 4]]),
                 lambda: estimator(np.zeros((8, 8, 3), np.uint8), boxes=[])):
        with pytest.raises(HrnextError, match=closed):
            call()
    with pytest.raises(HrnextError, match=closed):
        video(np.zeros((8, 8, 3), np.uint8))
    assert video.frames == 0  # a refused frame moves no frame time
    with estimator:  # reopened
        assert len(estimator(np.zeros((8, 8, 3), np.uint8), boxes=[[1, 1, 4, 4]])) == 1
    assert not estimator.is_open


def test_boxes_of_every_kind_and_ones_own_detector(models):
    image = cv2.imread(str(IMAGE))
    xyxy = [[300, 40, 420, 400], [50, 30, 200, 410]]
    with PoseEstimator(models["pose"], device="cpu") as estimator:
        listed = estimator(image, boxes=xyxy)
        as_object = estimator(image, boxes=Boxes(xyxy, [0.5, 0.5]))
        mixed = estimator.predict_many([image, image], [None, xyxy])  # None: the detector's people (HOG here)
        empty = estimator(image, boxes=[])
    np.testing.assert_array_equal(as_object.keypoints, listed.keypoints)
    np.testing.assert_allclose(as_object.scores, listed.scores * 0.5)
    np.testing.assert_array_equal(mixed[1].keypoints, listed.keypoints)
    assert len(mixed[0]) >= 0 and mixed[0].keypoints.dtype == np.float32
    # Empty and full results have the same dtypes.
    for poses in (listed, empty):
        assert (poses.boxes.dtype, poses.box_scores.dtype, poses.keypoints.dtype) == (np.float32,) * 3
        assert poses.scores.dtype == np.float64

    class ReturnsArrays:
        def detect(self, image):
            return [[10, 10, 120, 300, 0.9], [200, 10, 320, 300, 0.1]]  # the second under det_score_thr

    class ReturnsNothing:
        def detect(self, image):
            return None

    with PoseEstimator(models["pose"], ReturnsArrays(), device="cpu", det_score_thr=0.5) as estimator:
        poses = estimator(image)
        assert len(poses) == 1 and poses.box_scores[0] == pytest.approx(0.9)
    class ReturnsBadScores:
        def detect(self, image):
            return Boxes([[10, 10, 120, 300], [50, 50, 50, 90]], [7.0, 0.9])  # the second has no area

    class ReturnsAnEmptyBox:
        def detect(self, image):
            return Boxes([[10, 10, 120, 300], [50, 50, 50, 90]], [0.9, 0.9])

    with PoseEstimator(models["pose"], ReturnsAnEmptyBox(), device="cpu") as estimator:
        assert len(estimator(image)) == 1  # a detector's box of no area is dropped, not an error
    with PoseEstimator(models["pose"], ReturnsBadScores(), device="cpu") as estimator:
        with pytest.raises(HrnextError, match=r"ReturnsBadScores\.detect\(\) returned boxes: box scores must be from 0 "
                                              r"to 1 \(a detector's confidence\), got 7"):
            estimator(image)
    with PoseEstimator(models["pose"], ReturnsNothing(), device="cpu") as estimator:
        with pytest.raises(HrnextError, match=r"ReturnsNothing\.detect\(\) returned boxes: boxes must be "
                                              r"\(N, 4\) .* got NoneType"):
            estimator(image)


def test_a_video_frame_of_another_size_gets_the_carried_boxes_scaled(models):
    big, small = cv2.imread(str(IMAGE)), cv2.resize(cv2.imread(str(IMAGE)), (160, 106))
    with PoseEstimator(models["pose"], models["detector"], device="cpu") as estimator:
        video = estimator.video(detect_every=5)
        first, second = video(big), video(small)  # the second carries the first's boxes, scaled to it
    assert len(first) == len(second) == 2 and second.track_ids.tolist() == first.track_ids.tolist()
    np.testing.assert_allclose(second.boxes, first.boxes * np.float32([160 / big.shape[1], 106 / big.shape[0]] * 2),
                               rtol=1e-5)


def test_a_checkpoint_estimator_leaves_torchs_threads_as_it_found_them(tmp_path):
    torch = pytest.importorskip("torch")
    from hrnext_trt.models import build_pose_model, make_checkpoint

    checkpoint = tmp_path / "tiny.pth"
    torch.save(make_checkpoint(build_pose_model("hrnext_tiny", 14), (64, 48), "crowdpose"), checkpoint)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        a = PoseEstimator(checkpoint, device="cpu", threads=1)
        assert torch.get_num_threads() == 1
        b = PoseEstimator(checkpoint, device="cpu")  # asks for no count: leaves the setting alone
        assert torch.get_num_threads() == 1
        a.close()
        assert torch.get_num_threads() == 2
        b.close()
        assert torch.get_num_threads() == 2
        # Two counts open at once, closed in the order they opened: the later applies while open.
        a, b = PoseEstimator(checkpoint, device="cpu", threads=1), PoseEstimator(checkpoint, device="cpu", threads=3)
        assert torch.get_num_threads() == 3
        a.close()
        assert torch.get_num_threads() == 3
        b.close()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_readmes_example_runs_as_written(tmp_path, models, monkeypatch):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(import cv2\nfrom hrnext_trt.predict import PoseEstimator\n.*?)```", readme,
                     re.S).group(1)
    (tmp_path / "engines" / "hrnext_s_crowdpose").mkdir(parents=True)
    shutil.copy(models["pose"], tmp_path / "engines" / "hrnext_s_crowdpose" / "model.onnx")
    shutil.copy(models["detector"], tmp_path / "yolox_m.onnx")
    shutil.copy(IMAGE, tmp_path / "crowd.jpg")
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert len(scope["poses"]) == 2 and len(scope["mine"]) == 1
    assert scope["tracked"].track_ids.tolist() == [1, 2]
    assert os.path.getsize(tmp_path / "drawn.jpg") > 0


def test_video_poses_equal_predicts_json_lines(tmp_path, models):
    """estimator.video() frame by frame gives what predict writes for the video: track ids, carried boxes
    between detections, smoothed joints."""
    from tests.test_predict_run import make_video

    video = make_video(tmp_path / "clip.mp4", frames=10)  # 10 frames/s
    run_predict(PredictConfig(str(video), models["pose"], detector=models["detector"], out=tmp_path / "o",
                              device="cpu", batch=4, detect_every=3, smooth=True, progress=False))
    lines = [json.loads(line) for line in (tmp_path / "o" / "clip.jsonl").read_text().splitlines()]
    capture = cv2.VideoCapture(str(video))
    with PoseEstimator(models["pose"], models["detector"], device="cpu") as estimator:
        frames = estimator.video(fps=10, detect_every=3, smooth=True)
        for line in lines:
            ok, image = capture.read()
            assert ok
            poses = frames(image)
            assert [p["track_id"] for p in line["people"]] == poses.track_ids.tolist() == [1, 2]
            for person, mine in zip(line["people"], poses.people()):
                assert person["bbox"] == mine["bbox"]
                np.testing.assert_allclose(person["keypoints"], mine["keypoints"], atol=0.011)
        assert frames.frames == 10
        with pytest.raises(HrnextError, match=r"fps must be the video's frame rate, a positive number, got 0 "
                                              r"\(OpenCV: capture\.get\(cv2\.CAP_PROP_FPS\); where a stream "
                                              r"reports 0, predict takes 30\)"):
            estimator.video(fps=0)
        with pytest.raises(HrnextError, match=r"detect_every must be a whole number of at least 1, got 0"):
            estimator.video(detect_every=0)


def test_a_pil_image_is_named_with_the_conversion_to_use(models):
    Image = pytest.importorskip("PIL.Image")
    picture = Image.open(IMAGE)
    with PoseEstimator(models["pose"], device="cpu", rgb=True) as estimator:
        with pytest.raises(HrnextError, match=r"got a JpegImageFile: np\.asarray\(image\) with rgb=True"):
            estimator(picture, boxes=[[50, 30, 200, 410]])
        from_pil = estimator(np.asarray(picture), boxes=[[50, 30, 200, 410]])  # read-only, RGB
    with PoseEstimator(models["pose"], device="cpu") as estimator:
        as_bgr = estimator(cv2.cvtColor(np.asarray(picture), cv2.COLOR_RGB2BGR), boxes=[[50, 30, 200, 410]])
    assert not np.asarray(picture).flags.writeable
    np.testing.assert_array_equal(from_pil.keypoints, as_bgr.keypoints)


def test_a_duplicate_box_suppressed_by_oks_nms_takes_no_track_id(models):
    """A detector's second box on one person is dropped by OKS-NMS; it must not become a track: the
    next round's box of that person, nearer the dropped duplicate, keeps the person's id, and ids
    count people shown (no gaps)."""
    image = cv2.imread(str(IMAGE))
    person, duplicate, moved = [100, 60, 260, 380], [104, 62, 264, 382], [110, 64, 270, 384]
    rounds = iter([Boxes([person, duplicate], [0.9, 0.8]), Boxes([moved], [0.9]),
                   Boxes([moved, [400, 60, 560, 380]], [0.9, 0.9])])

    class Scripted:
        def detect(self, frame):
            return next(rounds)

    def iou(a, b):
        w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
        inter = max(w, 0) * max(h, 0)
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    assert iou(moved, duplicate) > iou(moved, person)  # the duplicate would win the match
    with PoseEstimator(models["pose"], Scripted(), device="cpu") as estimator:
        assert len(estimator.predict_many([image], [[person, duplicate]])[0]) == 2  # given boxes: both kept
        video = estimator.video()
        first, second, third = video(image), video(image), video(image)
    assert len(first) == 1 and first.box_rows.tolist() == [0]  # the duplicate is suppressed
    assert first.track_ids.tolist() == second.track_ids.tolist() == [1]
    assert third.track_ids.tolist() == [1, 2]


def test_a_carried_frame_shows_the_people_of_its_detection_round(models):
    """Between detections a frame shows only the people its round kept, under the round's ids, even
    where OKS-NMS on that frame alone would keep a duplicate."""
    image = cv2.imread(str(IMAGE))
    boxes = Boxes([[100, 60, 260, 380], [104, 62, 264, 382]], [0.9, 0.8])

    class Fixed:
        def detect(self, frame):
            return boxes

    with PoseEstimator(models["pose"], Fixed(), device="cpu") as estimator:
        video = estimator.video(detect_every=2)
        first = video(image)
        # The next frame is another picture: its poses differ, yet it carries the round's one person.
        second = video(np.ascontiguousarray(image[::-1]))
        alone = estimator.estimate([estimator.prepare(np.ascontiguousarray(image[::-1]), boxes)])[0]
    assert len(first) == 1 and first.track_ids.tolist() == [1]
    assert second.track_ids.tolist() == [1] and second.box_rows.tolist() == [0]
    assert len(alone) in (1, 2)  # whatever NMS alone keeps there, the carried frame keeps the round's


class _Scripted:
    """A detector returning ``boxes(call number, image)``; ``fail_on``: the call that raises."""

    def __init__(self, boxes, fail_on=None):
        self.boxes, self.fail_on, self.calls = boxes, fail_on, 0

    def detect(self, image):
        self.calls += 1
        if self.calls == self.fail_on:
            raise MemoryError("out of memory (a stand-in)")
        return Boxes(*self.boxes(self.calls, image))


def test_carried_frames_never_lose_the_people_their_round_kept(models):
    """Between detections OKS-NMS does not run again over the round's boxes: a near-duplicate box it
    dropped at the round cannot win on a carried frame and take the person (and its id) away."""
    rng = np.random.default_rng(1)
    image = cv2.imread(str(IMAGE))
    frames = [np.clip(image.astype(int) + rng.integers(-60, 61, image.shape), 0, 255).astype(np.uint8)
              for _ in range(12)]
    duplicate = _Scripted(lambda n, im: ([[100, 60, 260, 380], [103, 61, 263, 381]], [0.9, 0.9]))
    with PoseEstimator(models["pose"], duplicate, device="cpu") as estimator:
        video = estimator.video(detect_every=2)
        poses = [video(frame) for frame in frames]
    for i in range(0, 12, 2):
        assert len(poses[i]) >= 1
        assert poses[i + 1].track_ids.tolist() == poses[i].track_ids.tolist()
        assert poses[i + 1].box_rows.tolist() == poses[i].box_rows.tolist()


def test_a_frame_of_another_size_keeps_ids_and_smoothing_in_its_pixels(models):
    """A sequence's odd-sized frame (the same scene scaled) on a detection round: the tracks and the
    smoothing move to its pixels (was: new ids for everyone, and joints pulled across scales)."""
    image = cv2.imread(str(IMAGE))
    people = np.float32([[40, 60, 200, 400], [300, 60, 460, 400]])

    def scaled(n, frame):
        s = frame.shape[1] / image.shape[1]
        return people * s, [0.9, 0.9]

    sizes = [1, 1, 0.5, 1, 1]
    frames = [cv2.resize(image, None, fx=s, fy=s) if s != 1 else image for s in sizes]
    for every in (1, 2):
        with PoseEstimator(models["pose"], _Scripted(scaled), device="cpu") as estimator:
            poses = [*map(estimator.video(detect_every=every, smooth=True), frames)]
        assert [p.track_ids.tolist() for p in poses] == [[1, 2]] * 5


def test_smoothing_follows_a_frame_of_another_size():
    """A still joint seen at full size, then in a half-size frame: moved to the new pixels, the
    smoothed joint is where the frame shows it (was: pulled halfway back toward full-size pixels)."""
    from hrnext_trt.predict.smoothing import OneEuroSmoother

    joints = np.array([[[300.0, 200.0, 0.9], [320.0, 260.0, 0.9]]], np.float32)
    box = np.float32([[250, 100, 400, 500]])
    smoother = OneEuroSmoother()
    for i in range(3):
        smoother([1], joints, box, i / 30)
    smoother.rescale(0.5, 0.5)
    half = joints.copy()
    half[..., :2] *= 0.5
    np.testing.assert_allclose(smoother([1], half, box * 0.5, 3 / 30), half, atol=1e-4)


def test_a_failed_video_call_leaves_no_trace(models):
    """A call that fails (out of memory; Ctrl-C in a notebook) moves no frame and no boxes: the next
    frames keep each person's id (was: the old round's ids given to the new boxes, people swapped)."""
    image = cv2.imread(str(IMAGE))
    left, right = [40, 60, 200, 400], [300, 60, 460, 400]
    order = _Scripted(lambda n, im: ([left, right] if n < 2 else [right, left], [0.9, 0.8]), fail_on=2)
    with PoseEstimator(models["pose"], order, device="cpu") as estimator:
        video = estimator.video(detect_every=2)
        first, carried = video(image), video(image)
        with pytest.raises(MemoryError):
            video(image)
        assert video.frames == 2
        after = [video(image) for _ in range(3)]
    ids = {tuple(box): track for box, track in zip(first.boxes.tolist(), first.track_ids.tolist())}
    for poses in [carried, *after]:
        assert {tuple(box): track for box, track in zip(poses.boxes.tolist(), poses.track_ids.tolist())} == ids


def test_a_time_lapse_is_smoothed_too(models):
    """At 0.5 frames/s every frame is 2 s after the last: tracks are kept for 3 frames, not 1 s (was:
    each track restarted every frame, --smooth silently doing nothing)."""
    rng = np.random.default_rng(0)
    image = cv2.imread(str(IMAGE))
    frames = [np.clip(image.astype(int) + rng.integers(-40, 41, image.shape), 0, 255).astype(np.uint8)
              for _ in range(4)]
    fixed = _Scripted(lambda n, im: ([[40, 60, 200, 400]], [0.9]))
    with PoseEstimator(models["pose"], fixed, device="cpu") as estimator:
        smooth = [p.keypoints for p in map(estimator.video(fps=0.5, smooth=True), frames)]
        raw = [p.keypoints for p in map(estimator.video(fps=0.5), frames)]
    np.testing.assert_array_equal(smooth[0], raw[0])  # a track's first frame passes through
    assert any(not np.array_equal(s, r) for s, r in zip(smooth[1:], raw[1:]))


def test_a_state_dict_of_any_name_is_a_checkpoint(tmp_path, fixtures_dir):
    """A .bin or .safetensors state_dict, which export-engine and trt-eval load, was refused by predict
    ("expected a checkpoint (.pth) ...") and with --arch told to drop it ("describes its own model")."""
    import torch

    from hrnext_trt.predict.model import load_pose_network

    state = torch.load(fixtures_dir / "hrnext_tiny_crowdpose.pth", weights_only=True)["state_dict"]
    path = tmp_path / "pytorch_model.bin"
    torch.save(state, path)
    network = load_pose_network(path, "cpu", arch="hrnext_tiny", num_joints=14, input_size=(64, 48))
    assert network.description.startswith("pytorch_model.bin (PyTorch fp32, hrnext_tiny")
    assert network.meta.num_joints == 14 and network.input_size == (64, 48)
    with pytest.raises(HrnextError, match=r"pytorch_model\.bin is an mmpose file, which does not record its "
                                          r"model: pass --arch, --joints, --input-size"):
        load_pose_network(path, "cpu")
