"""hrnext-trt convert: MPII (release .mat, HRNet JSON) and PoseTrack (2018, 2017) -> COCO format,
loaded back into the datasets with joint order, visibility and coordinates preserved.

Convention kept: the converted MPII file is 0-based (the release's 1-based values minus 1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hrnext_trt.cli import main
from hrnext_trt.converters import convert_mpii, convert_posetrack
from hrnext_trt.data import PROTOCOL_BOXES, box_to_center_scale, load_dataset
from hrnext_trt.errors import HrnextError
from hrnext_trt.keypoints import MPII, POSETRACK
from tests.mini_roots import mpii_root, posetrack_root


def _kpts(ann, joints):
    return np.asarray(ann["keypoints"], dtype=np.float64).reshape(joints, 3)


def test_mpii_json_and_release_mat_agree_and_are_zero_based(data_dir):
    hrnet = json.loads((data_dir / "mpii-mini" / "annot" / "valid.json").read_text())
    from_json = convert_mpii(data_dir / "mpii-mini" / "annot" / "valid.json")
    from_mat = convert_mpii(data_dir / "mpii-mini" / "original_format" / "mpii_human_pose_release_subset.mat")
    assert from_json["categories"][0]["keypoints"] == list(MPII.keypoint_names)
    assert len(from_json["annotations"]) == len(from_mat["annotations"]) == len(hrnet) == 5
    from scipy.io import loadmat

    gt = loadmat(str(data_dir / "mpii-mini" / "annot" / "gt_valid.mat"))
    for n, (a, b, record) in enumerate(zip(from_json["annotations"], from_mat["annotations"], hrnet)):
        ka, kb = _kpts(a, 16), _kpts(b, 16)
        labelled = np.array(record["joints_vis"]) > 0
        # 1-based release values minus one, in the release's joint order, both sources alike.
        np.testing.assert_array_equal(ka[labelled, :2], np.array(record["joints"])[labelled] - 1)
        np.testing.assert_allclose(kb[:, :2], ka[:, :2], atol=1e-9)
        np.testing.assert_array_equal(ka[~labelled], 0)
        assert ((ka[:, 2] > 0) == labelled).all() and ((kb[:, 2] > 0) == labelled).all()
        assert ((ka[:, 2] > 0) == (gt["jnt_missing"][:, n] == 0)).all()
        np.testing.assert_allclose(a["head_box"], gt["headboxes_src"][:, :, n].reshape(-1) - 1)
        np.testing.assert_allclose(b["head_box"], a["head_box"], atol=1e-4)
        assert a["center"] == b["center"] == [c - 1 for c in record["center"]]
        assert a["scale"] == pytest.approx(b["scale"], abs=1e-6)
        assert from_json["images"][a["image_id"] - 1]["file_name"] == record["image"]
    # The release keeps occlusion: its occluded joints are 1, HRNet's JSON (no such field) 2.
    occluded = [_kpts(b, 16)[:, 2] for b in from_mat["annotations"]]
    assert any((v == 1).any() for v in occluded) and all(set(v) <= {0, 1, 2} for v in occluded)
    assert from_json["images"][0] == {"id": 1, "file_name": "005808361.jpg", "width": 1280, "height": 720}


def test_mpii_loads_back_with_hrnet_center_and_scale(data_dir, tmp_path):
    root = mpii_root(data_dir, tmp_path)
    data = json.loads((root / "annotations" / "mpii_val.json").read_text())
    dataset = load_dataset("mpii", root, "val")
    assert dataset.meta is MPII and len(dataset) == 5
    for inst, ann in zip(dataset.instances, data["annotations"]):
        assert inst.ann_id == ann["id"]
        np.testing.assert_array_equal(inst.keypoints, _kpts(ann, 16).astype(np.float32))
        # HRNet: center y + 15 px x scale, crop side 200 px x scale x 1.25 (0-based center).
        center, scale = box_to_center_scale(inst.box, (256, 256))
        s = ann["scale"]
        np.testing.assert_allclose(center, [ann["center"][0], ann["center"][1] + 15 * s], atol=1e-3)
        np.testing.assert_allclose(scale, [200 * s * 1.25] * 2, rtol=1e-6)


def test_posetrack_2018_converts_and_loads_back(data_dir, tmp_path):
    src = data_dir / "posetrack18-mini" / "annotations" / "val"
    root = posetrack_root(data_dir, tmp_path)
    data = json.loads((root / "annotations" / "posetrack18_val.json").read_text())
    originals = [json.loads(p.read_text()) for p in sorted(src.glob("*.json"))]
    assert [im["id"] for im in data["images"]] == [im["id"] for o in originals for im in o["images"]]
    for image in data["images"]:
        assert (image["width"], image["height"]) == (1920, 1080) and image["is_labeled"]
        assert {"frame_id", "vid_id", "nframes", "ignore_regions_x", "ignore_regions_y"} <= image.keys()
    source_anns = [a for o in originals for a in o["annotations"]]
    assert len(data["annotations"]) == len(source_anns) == 14
    for ann, orig in zip(data["annotations"], source_anns):
        for key in ("id", "image_id", "track_id", "keypoints", "bbox", "bbox_head"):
            assert ann[key] == orig[key], key
    assert data["categories"][0]["keypoints"] == list(POSETRACK.keypoint_names)

    gt = load_dataset("posetrack", root, "val", boxes="gt")
    labelled = [a for a in data["annotations"] if max(a["keypoints"][2::3]) > 0]
    assert len(gt) == len(labelled)
    np.testing.assert_array_equal(gt.instances[0].keypoints, _kpts(labelled[0], 17).astype(np.float32))
    det = load_dataset("posetrack", root, "val", boxes=PROTOCOL_BOXES["posetrack"])
    dets = json.loads((root / "dets" / "human_detection.json").read_text())
    # The protocol's boxes: the detector's, score >= 0.4 (mmpose's det_bbox_thr for PoseTrack18).
    assert det.boxes == "det" and len(det) == sum(d["score"] >= 0.4 and d["bbox"][2] > 0 for d in dets) < len(dets)
    assert len(load_dataset("posetrack", root, "val", boxes="det", det_score_thr=0.0)) == len(dets)


def _as_2017(video: dict) -> dict:
    """A PoseTrack 2018 video written in the 2017 annolist layout (poseval's joint ids)."""
    from hrnext_trt.converters.posetrack import POSEVAL_JOINTS

    frames = []
    for image in video["images"]:
        rects = []
        for ann in (a for a in video["annotations"] if a["image_id"] == image["id"]):
            k = _kpts(ann, 17)
            points = [{"id": [i], "x": [k[j, 0]], "y": [k[j, 1]], "is_visible": [int(k[j, 2])]}
                      for i, name in enumerate(POSEVAL_JOINTS)
                      for j in [POSETRACK.keypoint_names.index(name)] if k[j].any()]
            x, y, w, h = ann["bbox_head"]
            rects.append({"track_id": [ann["track_id"]], "x1": [x], "y1": [y], "x2": [x + w], "y2": [y + h],
                          "annopoints": [{"point": points}]})
        regions = [{"point": [{"x": [px], "y": [py]} for px, py in zip(xs, ys)]}
                   for xs, ys in zip(image["ignore_regions_x"], image["ignore_regions_y"])]
        frames.append({"image": [{"name": image["file_name"]}], "annorect": rects, "ignore_regions": regions,
                       "is_labeled": [1]})
    return {"annolist": frames}


def test_posetrack_2017_layout_gives_the_same_people(data_dir, tmp_path):
    src = data_dir / "posetrack18-mini" / "annotations" / "val" / "012834_mpii_test.json"
    video = json.loads(src.read_text())
    old = tmp_path / "annotations" / "val" / "012834_mpii_test.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps(_as_2017(video)))
    converted = convert_posetrack(old, image_root=data_dir / "posetrack18-mini")
    assert len(converted["annotations"]) == len(video["annotations"]) == 11
    for ann, orig in zip(converted["annotations"], video["annotations"]):
        assert ann["keypoints"] == pytest.approx(orig["keypoints"])
        assert ann["bbox_head"] == pytest.approx(orig["bbox_head"]) and ann["track_id"] == orig["track_id"]
    image = converted["images"][0]
    assert image["ignore_regions_x"] == video["images"][0]["ignore_regions_x"]
    assert image["file_name"] == video["images"][0]["file_name"] and image["width"] == 1920

    # 2017 files list some people by their head box only: converted without a body box, they load
    # and score as the others do (were refused by the loader, "has no 'bbox' field").
    from hrnext_trt.converters import write_coco_file
    from hrnext_trt.evaluation import evaluate_results

    document = _as_2017(video)
    document["annolist"][0]["annorect"][0].pop("annopoints")
    old.write_text(json.dumps(document))
    root = tmp_path / "root"
    (root / "annotations").mkdir(parents=True)
    (root / "images").symlink_to(data_dir / "posetrack18-mini" / "images")
    ann_file = write_coco_file(convert_posetrack(old.parent, image_root=data_dir / "posetrack18-mini"),
                               root / "annotations" / "posetrack18_val.json")
    people = load_dataset("posetrack", root, "val", boxes="gt")
    assert len(people) == 10  # the head-box-only person has no joints to crop for
    results = [{"image_id": inst.image_id, "category_id": 1, "keypoints": inst.keypoints.ravel().tolist(),
                "score": 1.0} for inst in people.instances]
    assert evaluate_results("posetrack", ann_file, results)["mAP"] == pytest.approx(100)


def test_convert_command_and_its_one_line_errors(data_dir, tmp_path):
    out = tmp_path / "mpii_val.json"
    result = CliRunner().invoke(main, ["convert", "mpii", str(data_dir / "mpii-mini" / "annot" / "valid.json"),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "5 people in 5 images" in result.output and len(json.loads(out.read_text())["annotations"]) == 5
    before = out.read_bytes()
    bad = tmp_path / "notes.txt"
    bad.write_text("x")
    for args in (["mpii", str(bad)], ["mpii", str(tmp_path / "missing.json")],
                 ["posetrack", str(data_dir / "mpii-mini" / "annot" / "valid.json")],
                 ["mpii", str(data_dir / "mpii-mini" / "annot" / "valid.json"), "--image-root", str(tmp_path)]):
        result = CliRunner().invoke(main, ["convert", *args, "--out", str(out)])
        assert result.exit_code == 2 and result.output.startswith("error: ") \
            and result.output.count("\n") == 1, result.output
    assert out.read_bytes() == before  # a failed conversion leaves the earlier file whole
    # An --out that cannot be written: one line (was a FileExistsError / FileNotFoundError traceback),
    # below a file before any reading, where the file system refuses (/proc) at the write.
    source = str(data_dir / "mpii-mini" / "annot" / "valid.json")
    for target, needle in ((bad / "x.json", f"--out {bad / 'x.json'}: {bad} is a file, not a folder"),
                           (Path("/proc/hrnext_x.json"), "cannot write /proc/hrnext_x.json: ")):
        result = CliRunner().invoke(main, ["convert", "mpii", source, "--out", str(target)])
        errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
        assert result.exit_code == 2 and len(errors) == 1 and errors[0].startswith(f"error: {needle}") \
            and "Traceback" not in result.output, result.output
    with pytest.raises(HrnextError, match="disagree on which joints"):
        wrong = tmp_path / "valid.json"
        records = json.loads((data_dir / "mpii-mini" / "annot" / "valid.json").read_text())
        records[0]["joints_vis"][0] = 0
        wrong.write_text(json.dumps(records))
        convert_mpii(wrong, head_boxes=data_dir / "mpii-mini" / "annot" / "gt_valid.mat")


def test_an_out_that_would_replace_or_join_the_source_is_refused_before_reading(data_dir, tmp_path):
    """`convert mpii annot/valid.json --out annot/valid.json` replaced the release file with its own
    conversion; an --out inside a PoseTrack folder would be read as one more video next time."""
    import shutil

    mpii = shutil.copytree(data_dir / "mpii-mini", tmp_path / "mpii")
    source = mpii / "annot" / "valid.json"
    before = source.read_bytes()
    for out in (source, mpii / "annot" / ".." / "annot" / "valid.json", mpii / "annot" / "gt_valid.mat"):
        result = CliRunner().invoke(main, ["convert", "mpii", str(source), "--out", str(out)])
        assert result.exit_code == 2 and result.output == (
            f"error: --out {out} is the source file {source if out.suffix == '.json' else out}: the conversion "
            "would replace it; write the COCO file elsewhere, e.g. into the dataset's annotations/ folder\n"), \
            result.output
    assert source.read_bytes() == before and (mpii / "annot" / "gt_valid.mat").is_file()

    videos = shutil.copytree(data_dir / "posetrack18-mini" / "annotations" / "val", tmp_path / "val")
    listed = sorted(videos.iterdir())
    result = CliRunner().invoke(main, ["convert", "posetrack", str(videos), "--out", str(videos / "all.json")])
    assert result.exit_code == 2 and "is inside the source folder" in result.output
    assert sorted(videos.iterdir()) == listed
    # A folder as --out: the command's own line (was click's three-line usage error).
    result = CliRunner().invoke(main, ["convert", "mpii", str(source), "--out", str(mpii)])
    assert result.exit_code == 2 and result.output == \
        f"error: --out {mpii} is a folder: give a file name, e.g. {mpii / 'keypoints.json'}\n", result.output


def test_evaluate_on_a_release_file_names_its_conversion(data_dir, tmp_path):
    results = tmp_path / "results.json"
    results.write_text("[]")
    mpii, posetrack = data_dir / "mpii-mini", data_dir / "posetrack18-mini"
    for dataset, ann, command in [
        ("mpii", mpii / "annot" / "valid.json",
         f"hrnext-trt convert mpii {mpii / 'annot' / 'valid.json'} --out {mpii / 'annotations' / 'mpii_val.json'}"),
        ("posetrack", posetrack / "annotations" / "val" / "003418_mpii_test.json",
         f"hrnext-trt convert posetrack {posetrack / 'annotations' / 'val'} --out "
         f"{posetrack / 'annotations' / 'posetrack18_val.json'}"),
    ]:
        result = CliRunner().invoke(main, ["evaluate", "--dataset", dataset, "--ann", str(ann), "--results",
                                           str(results)])
        assert result.exit_code == 2 and "release format, not a converted file" in result.output \
            and command in result.output, result.output
