"""A detections file given for one's own pictures (``predict --boxes``, ``trt-eval --det-file``,
``export-engine --calib-boxes``): every entry checked when the file is opened, one line per kind of
bad entry (was: a traceback, or a bad box found only when the run reached its image)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from hrnext_trt.errors import HrnextError
from hrnext_trt.predict.boxes_file import BoxesFile, open_boxes_file


def _file(tmp_path, entries) -> str:
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(entries))
    return str(path)


@pytest.mark.parametrize("entry, message", [
    ({"image_id": "abc", "bbox": [0, 0, 9, 9]}, r"box 1 \(image_id 'abc'\): image_id is a string .* JSON numbers"),
    ({"image_id": [1], "bbox": [0, 0, 9, 9]}, r"image_id must be an integer, got list"),
    ({"bbox": [0, 0, 9, 9]}, r"names no image: give it an image_id .* or a file_name"),
    ({"file_name": 7, "bbox": [0, 0, 9, 9]}, r"file_name must be an image's file name, got int 7"),
    ({"image_id": 1, "bbox": [0, 0, 9]}, r"bbox has 3 values, expected 4 \(x, y, width, height\)"),
    ({"image_id": 1, "bbox": None}, r"bbox must be a flat list of 4 numbers, got NoneType"),
    ({"image_id": 1}, r"has no 'bbox' field"),
    ({"image_id": 1, "bbox": [0, 0, -5, 9]}, r"negative width or height"),
    ({"image_id": 1, "bbox": [0, 0, 9, 9], "score": None}, r"score must be a number, got NoneType"),
    ({"image_id": 1, "bbox": [0, 0, 9, 9], "score": "high"}, r"score is a string \('high'\)"),
    ({"image_id": 1, "bbox": [0, 0, 9, 9], "score": 5}, r"score 5 is not a confidence from 0 to 1"),
    ("a box", r"box 1: must be an object, got str"),
])
def test_a_bad_entry_is_one_line_when_the_file_is_opened(tmp_path, entry, message):
    # The bad entry comes after a good one for another image: found at opening, not at its image.
    path = _file(tmp_path, [{"image_id": 0, "bbox": [0, 0, 9, 9], "score": 0.5}, entry])
    with pytest.raises(HrnextError, match=message) as info:
        BoxesFile(path)
    assert str(info.value).startswith(f"detections file {path}: box ") and "\n" not in str(info.value)


def test_nan_scores_are_refused_before_they_reach_results(tmp_path):
    # json.dump writes NaN by default; results.json must stay valid JSON.
    path = tmp_path / "dets.json"
    path.write_text('[{"image_id": 1, "bbox": [0, 0, 9, 9], "score": NaN}]')
    with pytest.raises(HrnextError, match=r"score is nan: write finite numbers"):
        BoxesFile(path)


def test_entries_match_by_id_or_file_name_and_only_people_are_read(tmp_path):
    path = _file(tmp_path, [
        {"image_id": 785, "bbox": [10, 20, 30, 40], "score": 0.9},
        {"image_id": 785.0, "bbox": [0, 0, 5, 5], "score": 0.2},  # below the threshold
        {"file_name": "cover.jpg", "bbox": [1, 2, 3, 4]},  # no score: a given box, 1
        {"image_id": 785, "bbox": [0, 0, 50, 50], "score": 0.99, "category_id": 3},  # a car
    ])
    boxes = BoxesFile(path, score_thr=0.3)
    np.testing.assert_allclose(boxes.boxes_for(785, "000000000785.jpg").xyxy, [[10, 20, 40, 60]])
    cover = boxes.boxes_for(40084, "cover.jpg")
    np.testing.assert_allclose(cover.xyxy, [[1, 2, 4, 6]])
    assert cover.scores.tolist() == [1.0] and len(boxes.boxes_for(3, "x.jpg")) == 0
    # A stream without a frame count accepts boxes for any frame; a 3-image folder none of these.
    assert open_boxes_file(path, 0.3, range(sys.maxsize)) is not None
    with pytest.raises(HrnextError, match="has no person boxes for this source"):
        open_boxes_file(path, 0.3, ["a.jpg", "b.jpg", "c.jpg", 0, 1, 2])


def test_a_stray_file_renumbers_no_image(tmp_path):
    """Images named by number keep their numbers as ids (results, detections files) whatever else the
    folder holds (was: one cover.jpg turned every id into a position, silently)."""
    from pathlib import Path

    from hrnext_trt.predict.sources import image_ids

    names = ["000000000785.jpg", "000000040083.jpg", "cover.jpg", "0785.png", "notes 2.jpg"]
    # 0785.png shares 785 with the first: numbered on, as the names that are no numbers.
    assert image_ids([Path(n) for n in names]) == [785, 40083, 40084, 40085, 40086]
    assert image_ids([Path("b.jpg"), Path("a.jpg")]) == [0, 1]
    path = _file(tmp_path, [{"image_id": 40083, "bbox": [1, 2, 3, 4], "score": 0.9}])
    assert open_boxes_file(path, 0.3, names + image_ids([Path(n) for n in names])) is not None
