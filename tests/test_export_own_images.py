"""INT8 calibration on one's own unlabelled pictures (``--calib-dataset images``): a folder of
images or a video, people from a detections file, a detector ONNX or OpenCV's HOG."""

from __future__ import annotations

import json
import re
import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from hrnext_trt.errors import HrnextError
from hrnext_trt.export import ExportConfig
from hrnext_trt.export.calibration import make_crop_sets
from hrnext_trt.export.own_images import own_crop_sets
from hrnext_trt.predict.pictures import Folder, Video
from hrnext_trt.predict.sources import open_source

INPUT = (128, 96)
FIXTURE = "hrnext_tiny_crowdpose.pth"


@pytest.fixture(scope="module")
def coco_train(data_dir):
    from hrnext_trt.data import load_dataset

    return load_dataset("coco", data_dir / "coco-mini", "train", boxes="gt")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory, coco_train):
    """coco-mini's training images as a folder of one's own pictures, and their people's boxes as a
    detector's COCO-format detections file."""
    folder = tmp_path_factory.mktemp("own") / "pictures"
    folder.mkdir()
    for path in {inst.image_path for inst in coco_train.instances}:
        shutil.copy(path, folder)
    detections = folder.parent / "detections.json"
    detections.write_text(json.dumps([{"image_id": inst.image_id, "bbox": [float(v) for v in inst.box],
                                       "score": 1.0, "category_id": 1} for inst in coco_train.instances]))
    return folder, detections


def _signature(crops: np.ndarray) -> np.ndarray:
    """Each crop's mean and spread, sorted: equal for the same crops in any order."""
    flat = crops.reshape(len(crops), -1).astype(np.float64)
    return np.sort(np.stack([flat.mean(axis=1), flat.std(axis=1)], axis=1), axis=0)


def test_own_pictures_with_their_people_s_boxes_give_the_dataset_s_crops(pictures, coco_train, data_dir):
    """Named by number like COCO's files, the folder's images are taken in the dataset's seeded order:
    the same images are held out, and the calibration crops are the dataset's, cropped alike."""
    folder, detections = pictures
    own = own_crop_sets(folder, INPUT, calib_images=10 ** 6, verify_images=8, boxes=detections)
    dataset = make_crop_sets("coco", data_dir / "coco-mini", INPUT, 10 ** 6, 8)
    assert own.source["dataset"] == "images" and own.source["split"] is None
    assert own.source["people_from"] == f"detections file {detections.name}"
    assert own.heldout.shape == (8, 3, *INPUT) and own.calibration.dtype == np.float32
    for key in ("heldout_images", "calibration_images", "calibration_crops"):
        assert own.source[key] == dataset.source[key], key
    assert own.source["images_looked_at"] == len(list(folder.iterdir()))
    assert own.source["images_without_people"] == 0 and own.source["unreadable"] == []
    np.testing.assert_allclose(_signature(own.calibration), _signature(dataset.calibration), atol=1e-4)


def _clip(path, frames: int, picture: np.ndarray) -> None:
    """A short video of ``picture``, a frame's brightness rising with its index."""
    height, width = picture.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
    for i in range(frames):
        writer.write(cv2.add(picture, np.full_like(picture, i * 4)))
    writer.release()


def test_a_video_is_sampled_over_its_whole_length(tmp_path, coco_train, monkeypatch):
    from hrnext_trt.predict import pictures

    monkeypatch.setattr(pictures, "VIDEO_SAMPLES", 10)
    person = coco_train.instances[0]
    picture = cv2.resize(cv2.imread(str(person.image_path)), (320, 240))
    clip = tmp_path / "clip.avi"
    _clip(clip, 40, picture)
    assert Video(clip).box_keys == [0, 4, 9, 13, 17, 22, 26, 30, 35, 39]  # first to last, evenly
    detections = tmp_path / "detections.json"
    detections.write_text(json.dumps([{"image_id": i, "bbox": [100, 40, 80, 180], "score": 0.9}
                                      for i in range(40)]))
    sets = own_crop_sets(clip, INPUT, calib_images=100, verify_images=3, detector=None, boxes=detections)
    assert sets.source["frames_looked_at"] == 10 and sets.source["heldout_images"] == 3
    assert sets.source["calibration_crops"] == sets.source["calibration_images"] == 7
    # Each sampled frame once, in either set: their brightness steps are those of frames 0, 4, 9 ... 39.
    means = np.sort(np.concatenate([sets.heldout, sets.calibration]).mean(axis=(1, 2, 3)))
    steps = np.diff(means) / np.diff([0, 4, 9, 13, 17, 22, 26, 30, 35, 39])
    assert steps.min() > 0 and steps.max() / steps.min() < 1.5


def test_a_folder_is_read_in_predict_s_order(tmp_path):
    """ffmpeg's frame2.jpg comes before frame10.jpg, as predict reads the same folder."""
    picture = np.full((8, 8, 3), 128, np.uint8)
    for name in ("frame10.jpg", "frame2.jpg", "frame1.jpg", "frame9.png"):
        cv2.imwrite(str(tmp_path / name), picture)
    folder = Folder(tmp_path)
    assert [p.name for p in folder.files] == ["frame1.jpg", "frame2.jpg", "frame9.png", "frame10.jpg"]
    source = open_source(tmp_path)
    assert [p.name for p in source.paths] == [p.name for p in folder.files]
    assert folder.ids == list(source.image_ids) == [0, 1, 2, 3]


def test_the_hog_default_finds_people_in_crowd_pictures(tmp_path, data_dir):
    folder = tmp_path / "crowd"
    folder.mkdir()
    for dataset in ("ochuman-mini", "crowdpose-mini"):  # 5 pictures, HOG finds 9 people here
        for path in (data_dir / dataset / "images").iterdir():
            shutil.copy(path, folder)
    sets = own_crop_sets(folder, INPUT, calib_images=4, verify_images=2)
    assert sets.source["people_from"].startswith("OpenCV HOG")
    assert len(sets.heldout) == 2 and 1 <= len(sets.calibration) <= 4
    assert sets.source["images_looked_at"] <= 5


def test_export_calibrates_on_own_pictures(pictures, tmp_path, fixtures_dir):
    """The CLI end to end: the manifest and the INT8 file's metadata say where calibration came from."""
    from hrnext_trt.cli import main
    from hrnext_trt.engines import load_manifest
    from hrnext_trt.runners.onnxruntime import read_onnx_metadata

    pytest.importorskip("modelopt")
    folder, detections = pictures
    out = tmp_path / "exp"
    args = [str(fixtures_dir / FIXTURE), "--arch", "hrnext_tiny", "--joints", "14", "--input-size",
            f"{INPUT[0]}x{INPUT[1]}", "--int8", "--calib-images", "8",
            "--verify-images", "4", "--calib-dataset", "images", "--calib-data", str(folder),
            "--calib-boxes", str(detections), "--no-engines", "--out", str(out)]
    result = CliRunner().invoke(main, ["export-engine", *args])
    assert result.exit_code == 0, result.output
    crops = load_manifest(out)["crops"]
    assert crops["dataset"] == "images" and crops["root"] == str(folder)
    assert crops["calibration_crops"] == 8 and crops["heldout_crops"] == 4
    calibration = read_onnx_metadata(out / "model_int8.onnx")["calibration"]
    assert calibration["dataset"] == "images" and calibration["crops"] == 8
    # Said in the quantizing worker process, passed on to the user (was: lost with the worker's log).
    assert "warning: entropy calibration over one batch of 8 crops equals max calibration" in result.output
    # The next command the export suggests scores on the model's own dataset, not on the pictures.
    assert "--dataset crowdpose" in result.output and str(folder) not in result.output.split("trt-eval")[1]
    # ... and the next check on one's own pictures, those the calibration did not see.
    assert f"hrnext-trt trt-eval --engines {out} --dataset images --data-root OTHER_PICTURES" in result.output


@pytest.mark.parametrize("extra, message", [
    ([], "--calib-dataset images calibrates on your own pictures: pass --calib-data"),
    (["--calib-data", "{missing}"], r"\(.*missing not found\)"),
    (["--calib-data", "{folder}", "--calib-split", "train"], "--calib-split train picks a dataset's split"),
    (["--calib-data", "{folder}", "--calib-boxes", "{boxes}", "--calib-detector", "{boxes}"],
     "pass --calib-detector or --calib-boxes, not both"),
    (["--calib-data", "{folder}", "--calib-detector", "{missing}"], "--calib-detector .* not found"),
    (["--calib-data", "{folder}", "--calib-det-family", "rtmdet"],
     "--calib-det-family rtmdet picks a --calib-detector ONNX's preprocessing, and none is given"),
])
def test_own_picture_options_are_checked_first(extra, message, tmp_path, fixtures_dir, pictures):
    from hrnext_trt.cli import main

    folder, detections = pictures
    values = {"folder": folder, "boxes": detections, "missing": tmp_path / "missing"}
    args = [str(fixtures_dir / FIXTURE), "--int8", "--calib-dataset", "images",
            *(a.format(**values) for a in extra), "--out", str(tmp_path / "exp")]
    result = CliRunner().invoke(main, ["export-engine", *args])
    assert result.exit_code == 2 and not (tmp_path / "exp").exists()
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert re.search(message, lines[0]), lines[0]


def test_detector_options_belong_to_own_pictures(tmp_path, fixtures_dir, pictures):
    folder, detections = pictures
    with pytest.raises(HrnextError, match="--calib-detector and --calib-boxes find the people of unlabelled"):
        ExportConfig(checkpoint=fixtures_dir / FIXTURE, out_dir=tmp_path, calib_dataset="coco",
                     calib_boxes=detections)
    with pytest.raises(HrnextError, match=r"--calib-det-family yolox picks the preprocessing of --calib-detector, "
                                          r"which finds the people of your own pictures \(--calib-dataset images\)"):
        ExportConfig(checkpoint=fixtures_dir / FIXTURE, out_dir=tmp_path, calib_dataset="coco", calib_det_family="yolox")
    with pytest.raises(HrnextError, match="not a folder: pass the dataset root \\(or --calib-dataset images"):
        ExportConfig(checkpoint=fixtures_dir / FIXTURE, out_dir=tmp_path, calib_dataset="coco",
                     calib_data=detections)


def test_pictures_that_cannot_calibrate_are_one_line(tmp_path, pictures):
    folder, detections = pictures
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no pictures")
    with pytest.raises(HrnextError, match=r"holds no images \(\.jpg.*\): pass a folder that holds images$"):
        own_crop_sets(empty, INPUT, 8, 4)
    one = next(folder.iterdir())
    with pytest.raises(HrnextError, match="is one image, and calibration splits pictures"):
        own_crop_sets(one, INPUT, 8, 4)
    with pytest.raises(HrnextError, match=r"cannot open video .*; pass a folder of images or a video file$"):
        own_crop_sets(detections, INPUT, 8, 4)
    blank = tmp_path / "blank"
    blank.mkdir()
    for i in range(3):
        cv2.imwrite(str(blank / f"{i}.png"), np.zeros((240, 320, 3), np.uint8))
    (blank / "3.png").write_bytes(b"not a png")
    with pytest.raises(HrnextError, match=r"found no person in the 4 images of .*blank \(OpenCV HOG"):
        own_crop_sets(blank, INPUT, 8, 4)
    with pytest.raises(HrnextError, match="has no person boxes for this source"):
        own_crop_sets(blank, INPUT, 8, 4, boxes=detections)
    few = tmp_path / "few"
    few.mkdir()
    for path in sorted(folder.iterdir())[:2]:
        shutil.copy(path, few)
    with pytest.raises(HrnextError, match="held-out crops took them all, leaving none to calibrate on"):
        own_crop_sets(few, INPUT, 8, 100, boxes=detections)


def test_the_calibration_detector_takes_the_family_given(tmp_path, pictures):
    """--calib-det-family sets the detector's preprocessing, as predict's --det-family (a YOLOX-named
    export of RTMDet would otherwise be fed unnormalised pixels)."""
    from tests.predict_graphs import end_to_end_detector

    folder, _ = pictures
    detector = end_to_end_detector(tmp_path / "yolox_s.onnx", [[40, 60, 300, 600, 0.9]], [0])
    guessed = own_crop_sets(folder, INPUT, 4, 2, detector=detector)
    chosen = own_crop_sets(folder, INPUT, 4, 2, detector=detector, det_family="rtmdet")
    assert "(yolox, 640x640)" in guessed.source["people_from"]
    assert "(rtmdet, 640x640)" in chosen.source["people_from"]
