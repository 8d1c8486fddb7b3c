"""trt-eval on one's own unlabelled pictures (``--dataset images``): each row's poses against the
PyTorch FP32 poses of the same people (OKS, agree, kpt px), latency as on a dataset."""

from __future__ import annotations

import json
import re
import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from hrnext_trt.agreement import agreement
from hrnext_trt.cli import main
from hrnext_trt.errors import HrnextError
from hrnext_trt.evaluation import oks_matrix
from hrnext_trt.evaluation.nms import oks_pairs
from hrnext_trt.keypoints import CROWDPOSE
from hrnext_trt.trt_eval import TrtEvalConfig


@pytest.fixture(scope="module")
def pictures(tmp_path_factory, data_dir):
    """The crowd pictures of the OCHuman and CrowdPose samples in one folder, and their people's
    annotated boxes as a detector's COCO-format detections (keyed by file name)."""
    from hrnext_trt.data import load_dataset

    folder = tmp_path_factory.mktemp("pictures") / "site"
    folder.mkdir()
    detections = []
    for name, root in (("ochuman", "ochuman-mini"), ("crowdpose", "crowdpose-mini")):
        for inst in load_dataset(name, data_dir / root, "test", boxes="gt").instances:
            shutil.copy(inst.image_path, folder)
            detections.append({"file_name": inst.image_path.name, "bbox": [float(v) for v in inst.box],
                               "score": 1.0, "category_id": 1})
    boxes = folder.parent / "detections.json"
    boxes.write_text(json.dumps(detections))
    return folder, boxes, len(detections)


def test_each_precision_is_scored_against_pytorch_on_own_pictures(fixture_export, pictures, tmp_path):
    folder, boxes, people = pictures
    export, _ = fixture_export
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["trt-eval", "--engines", str(export), "--dataset", "images", "--data-root",
                                       str(folder), "--det-file", str(boxes), "--batch", "8", "--iters", "2",
                                       "--warmup", "1", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "trt_eval.json").read_text())
    assert report["meta"]["dataset"] == "images" and report["meta"]["persons"] == people
    assert report["meta"]["reference"] == "pytorch fp32" and report["meta"]["metric"] == "OKS"
    rows = {(r["backend"], r["precision"]): r for r in report["rows"] if r["status"] == "ok"}
    torch_row = rows[("pytorch", "fp32")]
    assert (torch_row["OKS"], torch_row["agree"], torch_row["kpt_px"]) == (1.0, 1.0, 0.0)
    fp32, int8 = rows[("onnxruntime", "fp32")], rows[("onnxruntime", "int8")]
    # The fixture's weights are random (flat heatmaps): FP32 ONNX keeps nearly every pose, INT8 moves more.
    assert fp32["OKS"] > 0.98 and fp32["agree"] > 0.9 and int8["OKS"] <= fp32["OKS"]
    assert fp32["delta_AP"] == pytest.approx(fp32["OKS"] - 1.0) and fp32["speedup"] > 0
    assert "no labels: each row's pose of every person is compared with the pytorch fp32's" in result.output
    assert (out / "trt_eval.png").is_file() and not list(out.glob("results_*.json"))
    # The people each row changed most, drawn beside the reference's poses: one sheet per row but the reference.
    assert sorted(p.name for p in out.glob("agreement_*.jpg")) == [
        f"agreement_onnxruntime_{p}.jpg" for p in ("fp16", "fp32", "int8")]
    assert "sheet" not in torch_row and int8["sheet"] == str(out / "agreement_onnxruntime_int8.jpg")
    sheet = cv2.imread(int8["sheet"])
    pairs = min(8, people)  # 4 pairs of 256x192 crops (reference | row) a row of the sheet, captioned
    assert sheet.shape == (22 + -(-pairs // 4) * (256 + 22), min(pairs, 4) * (2 * 192 + 2 + 10), 3)


def test_agreement_is_oks_as_oks_nms_computes_it():
    rng = np.random.default_rng(0)
    reference = rng.uniform(0, 200, (5, 14, 3))
    moved = reference + np.array([3.0, -4.0, 0.0])  # every joint 5 px away
    scales = rng.uniform(50, 150, (5, 2))
    areas = scales.prod(axis=1)
    pairs = oks_pairs(moved, reference, areas, CROWDPOSE.sigmas)
    for i in range(5):
        both = np.stack([moved[i], reference[i]])
        assert pairs[i] == pytest.approx(oks_matrix(both, np.array([areas[i]] * 2), CROWDPOSE.sigmas)[0, 1])
    same = agreement(reference, reference, scales, CROWDPOSE.sigmas)
    assert same == {"OKS": 1.0, "agree": 1.0, "kpt_px": 0.0}
    shifted = agreement(moved, reference, scales, CROWDPOSE.sigmas)
    assert shifted["kpt_px"] == pytest.approx(5.0) and shifted["OKS"] == pytest.approx(pairs.mean())
    assert shifted["agree"] == pytest.approx((pairs > 0.9).mean())


@pytest.mark.parametrize("extra, message", [
    (["--dataset", "images", "--data-root", "{folder}", "--split", "test"], "--split and --boxes choose a dataset's"),
    (["--dataset", "images", "--data-root", "{folder}", "--detector", "{boxes}", "--det-file", "{boxes}"],
     "pass --detector or --det-file, not both"),
    (["--dataset", "images", "--data-root", "{missing}"], "--data-root .*missing not found"),
    (["--dataset", "images", "--data-root", "{one}"], "is one image, and the backends are compared over many people"),
    (["--dataset", "crowdpose", "--data-root", "{folder}", "--detector", "{boxes}"],
     "--detector finds the people of your own pictures"),
    (["--dataset", "crowdpose", "--data-root", "{folder}", "--det-family", "rtmdet"],
     "--det-family rtmdet picks the preprocessing of --detector, which finds the people of your own pictures "
     r"\(--dataset images\): drop it"),
    (["--dataset", "images", "--data-root", "{folder}", "--det-family", "rtmdet"],
     "--det-family rtmdet picks a --detector ONNX's preprocessing, and none is given: pass --detector, or drop it"),
    (["--dataset", "images", "--data-root", "{folder}", "--out", "{folder}"],
     "--out .*site is the folder of the pictures: the next run would read its sheets and charts as pictures"),
])
def test_own_picture_options_are_one_line(extra, message, pictures, fixture_export, tmp_path):
    folder, boxes, _ = pictures
    export, _ = fixture_export
    values = {"folder": folder, "boxes": boxes, "missing": tmp_path / "missing", "one": next(folder.iterdir())}
    result = CliRunner().invoke(main, ["trt-eval", "--engines", str(export), "--device", "cpu",
                                       *(a.format(**values) for a in extra)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert re.search(message, lines[0]), lines[0]


def test_pictures_where_nobody_is_found_are_one_line(tmp_path, fixture_export):
    from hrnext_trt.trt_eval import run_trt_eval

    blank = tmp_path / "blank"
    blank.mkdir()
    for i in range(2):
        cv2.imwrite(str(blank / f"{i}.png"), np.zeros((240, 320, 3), np.uint8))
    export, _ = fixture_export
    config = TrtEvalConfig(None, export, "images", blank, device="cpu", progress=False)
    with pytest.raises(HrnextError, match=r"found no person in the 2 images of .*blank \(OpenCV HOG"):
        run_trt_eval(config)


def test_a_damaged_video_counts_the_frames_it_gave(tmp_path, data_dir, caplog):
    from hrnext_trt.agreement import gather_people

    picture = cv2.resize(cv2.imread(str(data_dir / "crowdpose-mini" / "images" / "103319.jpg")), (320, 240))
    full, cut = tmp_path / "full.avi", tmp_path / "cut.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for _ in range(12):
        writer.write(picture)
    writer.release()
    cut.write_bytes(full.read_bytes()[:full.stat().st_size // 4])  # the header still counts 12
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"image_id": i, "bbox": [40, 30, 120, 180], "score": 0.9} for i in range(12)]))
    assert gather_people(full, (64, 48), boxes=boxes).source["pictures"] == 12
    with caplog.at_level("WARNING"):
        people = gather_people(cut, (64, 48), boxes=boxes)
    frames = people.source["pictures"]
    assert 0 < frames < 12 and people.source["persons"] == frames
    assert f"gave {frames} of the 12 frames sampled over the length its header states" in caplog.text


def test_the_detector_takes_the_family_given(tmp_path, pictures):
    from hrnext_trt.agreement import gather_people
    from tests.predict_graphs import end_to_end_detector

    folder, _, _ = pictures
    detector = end_to_end_detector(tmp_path / "end2end.onnx", [[40, 60, 300, 600, 0.9]], [0])
    assert "(yolox, 640x640)" in gather_people(folder, (64, 48), detector).source["people_from"]
    assert "(rtmdet, 640x640)" in gather_people(folder, (64, 48), detector, det_family="rtmdet").source["people_from"]


def test_without_a_pytorch_row_the_first_row_is_the_reference_of_every_column(fixture_export, pictures):
    """The agreement's reference is the first row measured; dOKS and speed-up compare with it too
    (was: both columns empty on every row while the title named that reference)."""
    from hrnext_trt.trt_eval import run_trt_eval

    folder, boxes, _ = pictures
    export, _ = fixture_export
    report = run_trt_eval(TrtEvalConfig(None, export, "images", folder, det_file=boxes, backends=("onnxruntime",),
                                        batch=8, iters=2, warmup=1, device="cpu", progress=False))
    rows = [r for r in report.rows if r.status == "ok"]
    assert len(rows) >= 2 and report.meta["reference"] == "onnxruntime fp32"
    assert (rows[0].delta_AP, rows[0].speedup) == (0.0, 1.0)
    assert all(r.delta_AP == pytest.approx(r.OKS - 1.0) and r.speedup > 0 for r in rows[1:])
    assert "speed-up = onnxruntime fp32 p50 / row p50" in report.table()
