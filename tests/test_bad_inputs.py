"""The bad-input matrix of docs/BAD_INPUTS.md for results, annotations and detector boxes.

Each case writes one realistic bad file (what buggy upstream tools make), runs the real command
(``evaluate``, ``visualize``) or loader, and asserts exit code 2 with ONE ``error:`` line that
names the file, the record and the field. Case ids are the matrix's row names.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from hrnext_trt.cli import main
from hrnext_trt.data import load_dataset
from hrnext_trt.errors import HrnextError

ANN = {
    "coco": "coco-mini/annotations/person_keypoints_val2017.json",
    "crowdpose": "crowdpose-mini/annotations/mmpose_crowdpose_test.json",
    "ochuman": "ochuman-mini/annotations/ochuman_coco_format_test_range_0.00_1.00.json",
}
NAN, INF = math.nan, math.inf


def _gt_results(ann_file: Path) -> list[dict]:
    """Ground truth as results: they score, so any damage below is the only thing wrong."""
    data = json.loads(ann_file.read_text())
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": list(a["keypoints"]), "score": 0.9}
            for a in data["annotations"]]


def _error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def _evaluate(dataset: str, ann_file: Path, results_file: Path):
    return CliRunner().invoke(main, ["evaluate", "--dataset", dataset, "--ann", str(ann_file),
                                     "--results", str(results_file), "--json"])


def _set(field, value, first_only=False):
    def mutate(results):
        for i, res in enumerate(results):
            if not first_only or i == 0:
                res[field] = value(res) if callable(value) else value
        return results
    return mutate


# id -> (dataset, how the results are damaged, what the one line must say)
RESULT_CASES = {
    "results-all-nan-keypoints-coco": ("coco", _set("keypoints", lambda r: [NAN] * 51), ["result 0", "keypoints[0] is nan"]),
    "results-all-nan-keypoints-ochuman": ("ochuman", _set("keypoints", lambda r: [NAN] * 51),
                                          ["result 0", "keypoints[0] is nan"]),
    "results-nan-keypoints-crowdpose": ("crowdpose", _set("keypoints", lambda r: [NAN] * 42),
                                        ["result 0", "keypoints[0] is nan"]),
    "results-one-inf-joint-crowdpose": ("crowdpose", _set("keypoints", lambda r: r["keypoints"][:3] + [INF]
                                                         + r["keypoints"][4:], first_only=True),
                                        ["result 0", "keypoints[3] is inf"]),
    "results-nan-score": ("coco", _set("score", NAN, first_only=True), ["result 0", "score is nan"]),
    "results-string-score": ("coco", _set("score", "0.9"), ["result 0", "score is a string"]),
    "results-bool-score": ("coco", _set("score", True), ["result 0", "score must be a number"]),
    "results-string-keypoints": ("coco", _set("keypoints", lambda r: [str(v) for v in r["keypoints"]]),
                                 ["result 0", "keypoints[0] is a string"]),
    "results-null-joint": ("coco", _set("keypoints", lambda r: [None] + r["keypoints"][1:]),
                           ["result 0", "keypoints[0] must be a number"]),
    "results-nested-keypoints": ("coco", _set("keypoints", lambda r: [r["keypoints"][i:i + 3] for i in range(0, 51, 3)]),
                                 ["result 0", "flat list"]),
    "results-null-keypoints": ("coco", _set("keypoints", None), ["result 0", "keypoints must be a flat list"]),
    "results-string-image-id": ("coco", _set("image_id", lambda r: str(r["image_id"])),
                                ["result 0", "image_id is a string", "write it as image_id: 785"]),
    "results-no-score": ("coco", lambda rs: [{k: v for k, v in r.items() if k != "score"} for r in rs],
                         ["result 0", "no 'score' field"]),
    "results-other-category": ("coco", _set("category_id", 2), ["result 0", "category_id 2", "would ignore"]),
    "results-not-objects": ("coco", lambda rs: [r["keypoints"] for r in rs], ["result 0", "must be an object"]),
    "results-empty-list": ("coco", lambda rs: [], ["holds no results"]),
    "results-object-not-list": ("coco", lambda rs: {"annotations": rs}, ["must be a JSON list"]),
}


@pytest.mark.parametrize("case", RESULT_CASES)
def test_bad_results_are_one_line(case, data_dir, tmp_path):
    dataset, damage, needles = RESULT_CASES[case]
    ann_file = data_dir / ANN[dataset]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(damage(_gt_results(ann_file))))  # json.dumps writes NaN/Infinity, as tools do
    line = _error_line(_evaluate(dataset, ann_file, path))
    for needle in [str(path), *needles]:
        assert needle in line, line


def test_nan_keypoints_never_score_through_the_library(data_dir):
    # The library path (a list, as the pipeline hands it over) is checked like a file.
    from hrnext_trt.evaluation import evaluate_results

    ann_file = data_dir / ANN["coco"]
    results = _set("keypoints", lambda r: [NAN] * 51)(_gt_results(ann_file))
    with pytest.raises(HrnextError, match="results list: result 0 .*keypoints\\[0\\] is nan"):
        evaluate_results("coco", ann_file, results)
    # The undamaged results do score (0.89: coco-mini val has people without visible joints): the check refuses.
    assert evaluate_results("coco", ann_file, _gt_results(ann_file))["AP"] > 0.85


def test_results_made_in_memory_with_numpy_values_score_as_plain_numbers(data_dir):
    """NumPy scalars and arrays (results built in memory) were refused: "image_id must be an integer, got
    int64 np.int64(785)"."""
    import numpy as np

    from hrnext_trt.evaluation import evaluate_results

    ann_file = data_dir / ANN["crowdpose"]
    plain = _gt_results(ann_file)
    for i, res in enumerate(plain):
        res["score"] = 0.5 + 0.4 * ((i * 7) % 5) / 5  # unequal scores: the ranking is part of what is compared
        res["keypoints"] = [v + 4.0 * (i % 3) if k % 3 < 2 else v for k, v in enumerate(res["keypoints"])]
    numpy_made = [{"image_id": np.int64(r["image_id"]), "category_id": np.int32(1),
                   "keypoints": np.asarray(r["keypoints"], dtype=np.float64), "score": np.float32(r["score"])}
                  for r in plain]
    expected = evaluate_results("crowdpose", ann_file, plain)
    assert 0.3 < expected["AP"] < 1.0
    assert evaluate_results("crowdpose", ann_file, numpy_made) == pytest.approx(expected, abs=1e-7)
    with pytest.raises(HrnextError, match="result 0 .*image_id must be an integer, got float64"):
        evaluate_results("crowdpose", ann_file, [{**numpy_made[0], "image_id": np.float64(1.5)}])


def _drop(field):
    def mutate(data):
        for ann in data["annotations"]:
            ann.pop(field, None)
        return data
    return mutate


def _ann_set(field, value):
    def mutate(data):
        data["annotations"][0][field] = value(data["annotations"][0]) if callable(value) else value
        return data
    return mutate


def _image_ids_as_strings(data):
    for image in data["images"]:
        image["id"] = str(image["id"])
    return data


# id -> (dataset, how the annotation file is damaged, what the one line must say)
ANNOTATION_CASES = {
    "annotations-missing-key-coco": ("coco", lambda d: {k: v for k, v in d.items() if k != "annotations"},
                                     ["no 'annotations' list"]),
    "annotations-missing-key-crowdpose": ("crowdpose", lambda d: {k: v for k, v in d.items() if k != "annotations"},
                                          ["no 'annotations' list"]),
    "annotations-empty-list": ("coco", lambda d: {**d, "annotations": []}, ["no annotated people"]),
    "annotations-no-bbox-coco": ("coco", _drop("bbox"), ["annotation 0 (id", "no 'bbox' field"]),
    "annotations-no-bbox-crowdpose": ("crowdpose", _drop("bbox"), ["annotation 0 (id", "no 'bbox' field"]),
    "annotations-no-area-coco": ("coco", _drop("area"), ["annotation 0 (id", "no 'area' field"]),
    "annotations-nan-bbox": ("coco", _ann_set("bbox", [NAN] * 4), ["annotation 0 (id", "bbox[0] is nan"]),
    "annotations-nan-keypoint": ("ochuman", _ann_set("keypoints", lambda a: [NAN] + a["keypoints"][1:]),
                                 ["annotation 0 (id", "keypoints[0] is nan"]),
    "annotations-short-keypoints": ("coco", _ann_set("keypoints", lambda a: a["keypoints"][:-3]),
                                    ["annotation 0 (id", "48 values", "coco has 17"]),
    "annotations-string-image-id": ("coco", _image_ids_as_strings, ["image 0 (id '", "id is a string"]),
    "annotations-unknown-image": ("coco", _ann_set("image_id", 1), ["annotation 0 (id", "refers to image 1"]),
    # The COCO tools key people by id (one repeated id scored the ground truth AP 0.007) and read
    # num_keypoints (a KeyError traceback without it); a repeated image id cropped people from the other photo.
    "annotations-repeated-id": ("coco", lambda d: {**d, "annotations": [{**a, "id": 1} for a in d["annotations"]]},
                                ["annotation 1 (id 1)", "annotation ids must be unique"]),
    "annotations-no-id-crowdpose": ("crowdpose", _drop("id"), ["annotation 0", "no 'id' field"]),
    "annotations-no-num-keypoints": ("coco", _drop("num_keypoints"), ["annotation 0 (id", "no 'num_keypoints'"]),
    "annotations-repeated-image-id": ("coco", lambda d: {**d, "images": d["images"] + d["images"][:1]},
                                      ["image 4 (id", "is another image's id too: image ids must be unique"]),
    # The COCO tools' loadRes copies 'categories' (a KeyError traceback), and ignore crowd regions and
    # people without labelled keypoints (every metric -1, exit 0).
    "annotations-no-categories-coco": ("coco", lambda d: {k: v for k, v in d.items() if k != "categories"},
                                       ["no 'categories' list", '"categories": [{"id": 1']),
    "annotations-no-categories-crowdpose": ("crowdpose", lambda d: {k: v for k, v in d.items() if k != "categories"},
                                            ["no 'categories' list"]),
    "annotations-nobody-labelled-ochuman": ("ochuman", lambda d: {**d, "annotations": [
        {**a, "num_keypoints": 0} for a in d["annotations"]]}, ["none of its", "people is scored"]),
    "annotations-all-crowd-coco": ("coco", lambda d: {**d, "annotations": [{**a, "iscrowd": 1} for a in d["annotations"]]},
                                   ["none of its", "people is scored", "crowd region"]),
}


@pytest.mark.parametrize("case", ANNOTATION_CASES)
def test_bad_annotation_files_are_one_line(case, data_dir, tmp_path):
    dataset, damage, needles = ANNOTATION_CASES[case]
    good = data_dir / ANN[dataset]
    results = tmp_path / "results.json"
    results.write_text(json.dumps(_gt_results(good)))
    ann_file = tmp_path / "ann.json"
    ann_file.write_text(json.dumps(damage(json.loads(good.read_text()))))
    line = _error_line(_evaluate(dataset, ann_file, results))
    for needle in [str(ann_file), *needles]:
        assert needle in line, line


@pytest.fixture()
def crowdpose_root(data_dir, tmp_path) -> Path:
    root = tmp_path / "crowdpose"
    shutil.copytree(data_dir / "crowdpose-mini", root)
    return root


def _damage_detections(root: Path, damage) -> Path:
    det_file = root / "annotations" / "det_for_crowd_test_0.1_0.5.json"
    dets = json.loads(det_file.read_text())
    det_file.write_text(json.dumps(damage(dets)))
    return det_file


DETECTION_CASES = {
    "detections-nan-box": (lambda ds: [{**ds[0], "bbox": [NAN] * 4}, *ds[1:]], ["box 0", "bbox[0] is nan"]),
    "detections-inf-box": (lambda ds: [*ds[:1], {**ds[1], "bbox": ds[1]["bbox"][:3] + [INF]}, *ds[2:]],
                           ["box 1", "bbox[3] is inf"]),
    "detections-nan-score": (lambda ds: [{**ds[0], "score": NAN}, *ds[1:]], ["box 0", "score is nan"]),
    "detections-string-image-id": (lambda ds: [{**d, "image_id": str(d["image_id"])} for d in ds],
                                   ["box 0", "image_id is a string"]),
    "detections-all-zero-boxes": (lambda ds: [{**d, "bbox": [0, 0, 0, 0]} for d in ds],
                                  ["zero width or height"]),
    "detections-no-bbox": (lambda ds: [{k: v for k, v in d.items() if k != "bbox"} for d in ds],
                           ["box 0", "no 'bbox' field"]),
}


@pytest.mark.parametrize("case", DETECTION_CASES)
def test_bad_detector_files_are_one_line(case, crowdpose_root):
    damage, needles = DETECTION_CASES[case]
    det_file = _damage_detections(crowdpose_root, damage)
    with pytest.raises(HrnextError) as exc:
        load_dataset("crowdpose", crowdpose_root, "test", boxes="det")
    line = str(exc.value)
    assert "\n" not in line
    for needle in [str(det_file), *needles]:
        assert needle in line, line
    assert "another dataset" not in line  # the boxes are broken, not foreign


def test_detector_threshold_above_every_box_is_one_line(crowdpose_root):
    with pytest.raises(HrnextError, match="none of the 6 boxes of this split scores >= 2"):
        load_dataset("crowdpose", crowdpose_root, "test", boxes="det", det_score_thr=2.0)


def test_all_zero_ground_truth_boxes_are_one_line(crowdpose_root):
    ann_file = crowdpose_root / "annotations" / "mmpose_crowdpose_test.json"
    data = json.loads(ann_file.read_text())
    for ann in data["annotations"]:
        ann["bbox"] = [0, 0, 0, 0]
    ann_file.write_text(json.dumps(data))
    with pytest.raises(HrnextError, match="nothing to crop"):
        load_dataset("crowdpose", crowdpose_root, "test")


def _visualize(data_dir, tmp_path, *extra):
    return CliRunner().invoke(main, ["visualize", "--dataset", "coco", "--data-root", str(data_dir / "coco-mini"),
                                     "--split", "val", "--out", str(tmp_path / "vis"), *extra])


def test_visualize_refuses_nan_keypoints_in_one_line(data_dir, tmp_path):
    results = _gt_results(data_dir / ANN["coco"])
    results[0]["keypoints"][0] = NAN  # one NaN joint of a well-scored person: OverflowError when drawn
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    line = _error_line(_visualize(data_dir, tmp_path, "--results", str(path)))
    assert str(path) in line and "result 0" in line and "keypoints[0] is nan" in line
    assert not (tmp_path / "vis").exists()  # refused before anything is drawn


def test_visualize_refuses_empty_results(data_dir, tmp_path):
    path = tmp_path / "results.json"
    path.write_text("[]")
    assert "holds no results" in _error_line(_visualize(data_dir, tmp_path, "--results", str(path)))


@pytest.mark.parametrize("value", ["-1", "0"])
def test_visualize_max_images_must_be_positive(data_dir, tmp_path, value):
    # -1 used to draw n-1 images (a Python slice); "all images" is the option left out.
    result = _visualize(data_dir, tmp_path, "--max-images", value)
    assert result.exit_code == 2 and "--max-images" in result.stderr
    assert not (tmp_path / "vis").exists()


@pytest.mark.parametrize("value", ["nan", "2"])
@pytest.mark.parametrize("option", ["--score-thr", "--kpt-thr"])
def test_visualize_thresholds_must_be_scores(data_dir, tmp_path, option, value):
    line = _error_line(_visualize(data_dir, tmp_path, option, value))
    assert f"{option} must be a number from 0 to 1, got {value}" in line
    assert not (tmp_path / "vis").exists()


def test_visualize_unwritable_out_is_one_line(data_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder is needed")
    result = CliRunner().invoke(main, ["visualize", "--dataset", "coco", "--data-root", str(data_dir / "coco-mini"),
                                       "--split", "val", "--out", str(blocker / "vis")])
    assert f"--out {blocker / 'vis'}: {blocker} is a file, not a folder" in _error_line(result)


@pytest.mark.parametrize("image_format", ["jpg", "png"])
def test_visualize_never_draws_into_the_datasets_image_folder(data_dir, tmp_path, image_format):
    # --out the images folder: jpg drawings replaced the photos themselves, png ones mixed with them.
    import shutil

    root = shutil.copytree(data_dir / "crowdpose-mini", tmp_path / "crowdpose")
    images = root / "images"
    before = {p.name: p.read_bytes() for p in images.iterdir()}
    result = CliRunner().invoke(main, ["visualize", "--dataset", "crowdpose", "--data-root", str(root), "--out",
                                       str(images), "--format", image_format])
    assert result.exit_code == 2 and _error_line(result) == (
        f"error: --out {images} is the folder of the dataset's images: the drawings would replace or mix with them; "
        "choose another folder")
    assert {p.name: p.read_bytes() for p in images.iterdir()} == before


def test_in_memory_results_with_numpy_floats_pass_the_check():
    # Results made in memory may hold numpy scalars (float subclasses): finite ones are numbers too.
    import numpy as np

    from hrnext_trt.data.coco_format import check_results

    keypoints = [np.float64(v) for v in range(3 * 17)]
    checked = check_results([{"image_id": 1, "category_id": 1, "keypoints": keypoints, "score": np.float64(0.9)}],
                            "results", 17, "coco", {1})
    assert len(checked) == 1 and checked[0]["keypoints"][5] == 5.0
    with pytest.raises(HrnextError, match=r"keypoints\[2\] is nan"):
        check_results([{"image_id": 1, "category_id": 1, "keypoints": keypoints[:2] + [np.float64("nan")] + keypoints[3:],
                        "score": 0.9}], "results", 17, "coco", {1})


def test_a_full_disk_deep_in_a_save_is_one_line():
    """torch.save on a full disk raises a RuntimeError over the OSError (a 71-line chained traceback
    from train): the CLI finds the storage error in the chain and says it in one line."""
    import errno

    from hrnext_trt.errors import storage_error as _storage_error

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/runs/a/best.pth")
        except OSError as exc:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0") from exc
    except RuntimeError as exc:
        wrapped = exc
    assert _storage_error(wrapped) == ("cannot write /runs/a/best.pth: No space left on device: free some space (or "
                                       "pick a writable place) and run again")
    assert _storage_error(OSError(errno.EROFS, "Read-only file system")).startswith("cannot write: Read-only")
    assert _storage_error(RuntimeError("a bug")) is None
    assert _storage_error(OSError(errno.ENOENT, "No such file or directory", "x")) is None


def test_another_librarys_error_is_cut_to_its_first_line():
    """ONNX Runtime's and YAML's errors run to pages, and some say nothing at all (an empty message
    made the detector's load error an IndexError traceback): one line, cut after 400 characters."""
    from hrnext_trt.errors import first_line

    assert first_line(RuntimeError("")) == "RuntimeError"
    assert first_line(RuntimeError("  \n ")) == "RuntimeError"
    assert first_line(RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Load model failed\nstack line")) == (
        "[ONNXRuntimeError] : 1 : FAIL : Load model failed")
    long = "x" * 401
    assert first_line(ValueError(long)) == "x" * 400 + " ..."
    assert first_line(ValueError(long[:400])) == "x" * 400


def test_a_checkpoint_save_on_a_full_disk_names_the_checkpoint(tmp_path):
    """torch.save's OSError carries no file name: the save names its checkpoint itself, and leaves no
    temporary file (was: "cannot write: No space left on device", the path unsaid)."""
    import subprocess
    import sys

    from tests.test_predict_run import _can_mount_tmpfs

    if not _can_mount_tmpfs():
        pytest.skip("needs user namespaces to mount a small tmpfs (a full disk)")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = (f"import torch\nfrom hrnext_trt.training.checkpointing import atomic_torch_save\n"
              f"atomic_torch_save({{'w': torch.zeros(200_000)}}, '{disk}/run/best.pth')")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=256k tmpfs {disk} && "
                           f"{sys.executable} -c \"$0\"; ls -a {disk}/run", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert f"HrnextError: cannot write {disk}/run/best.pth: No space left on device: free some space" in done.stderr, \
        done.stderr[-2000:]
    assert done.stdout.split() == [".", ".."]  # no temporary file left


def test_a_full_disk_under_tensorboard_is_one_line_and_leaves_no_empty_events_file(tmp_path):
    """A resume on a full disk: TensorBoard's writer thread printed its own traceback beside the
    one-line error, the error named no file, and each attempt left one more empty events file."""
    import subprocess
    import sys

    from tests.test_predict_run import _can_mount_tmpfs

    if not _can_mount_tmpfs():
        pytest.skip("needs user namespaces to mount a small tmpfs (a full disk)")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = (f"from hrnext_trt.training.logging import TrainLogger\n"
              f"import os\nos.makedirs('{disk}/run/tensorboard')\n"
              f"try:\n    f = open('{disk}/fill', 'wb')\n    while True: f.write(bytes(4096)); f.flush()\n"
              f"except OSError: pass\n"
              f"TrainLogger('{disk}/run', start_step=5)")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=256k tmpfs {disk} && "
                           f"{sys.executable} -c \"$0\"; ls -a {disk}/run/tensorboard", script], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert (f"HrnextError: cannot write {disk}/run/tensorboard: No space left on device: free some space"
            in done.stderr), done.stderr[-2000:]
    assert "Exception in thread" not in done.stderr, done.stderr[-2000:]
    assert done.stdout.split() == [".", ".."]  # no empty events file left
