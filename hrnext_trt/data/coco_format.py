"""Checks of COCO-format keypoint files at the edge: annotation files, results and detector boxes.

The COCO tools check neither types nor finiteness (a NaN keypoint's similarity compares as a
perfect match, so all-NaN results score AP 1.0), so every record is checked here, before a
scorer, a cropper or a drawing sees it. A bad record is one line naming the file, the record
(its index and id) and the field.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from hrnext_trt.errors import HrnextError

# Python's json.dump writes NaN and Infinity by default, so buggy tools make such files.
_NUMBER_TYPES = {int, float}
_NON_FINITE_FIX = "write finite numbers (json.dump(..., allow_nan=False) catches this in the tool that made the file)"


class _Record:
    """One record of a file, for messages: '<source>: <kind> <index> (<id>)'."""

    def __init__(self, source: str, kind: str, index: int, record: Any):
        self.source, self.kind, self.index, self.record = source, kind, index, record

    def fail(self, message: str) -> HrnextError:
        ident = ""
        if isinstance(self.record, dict):
            key = "id" if self.kind in ("annotation", "image") else "image_id"
            value = self.record.get(key)
            if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                ident = f" ({key} {value!r})"
        return HrnextError(f"{self.source}: {self.kind} {self.index}{ident}: {message}")

    def get(self, field: str) -> Any:
        if field not in self.record:
            raise self.fail(f"has no '{field}' field")
        return self.record[field]


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '...' if len(text) > 40 else text}"


def _check_number(rec: _Record, name: str, value: Any) -> None:
    """Raise for ``value`` (named ``name`` in the message) unless it is a finite int or float."""
    if isinstance(value, str):
        raise rec.fail(f"{name} is a string ({value!r}), not a number: write it as a JSON number")
    # numbers.Real: NumPy's scalars too (results made in memory), never a bool.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise rec.fail(f"{name} must be a number, got {_describe(value)}")
    if not math.isfinite(value):
        raise rec.fail(f"{name} is {value}: {_NON_FINITE_FIX}")


def _number(rec: _Record, field: str) -> float:
    value = rec.get(field)
    _check_number(rec, field, value)
    return value


def _integer_id(rec: _Record, field: str) -> int:
    value = rec.get(field)
    if isinstance(value, str):
        raise rec.fail(f"{field} is a string ({value!r}) but ids are JSON numbers: write it as {field}: "
                       f"{value.strip() if value.strip().isdigit() else 'N'}")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise rec.fail(f"{field} must be an integer, got {_describe(value)}")
    if isinstance(value, numbers.Integral) or float(value).is_integer():  # 785.0 from some tools is image 785
        return int(value)
    raise rec.fail(f"{field} must be an integer, got {_describe(value)}")


def _numbers(rec: _Record, field: str, length: int, hint: str = "") -> list:
    """``field`` as a flat list of ``length`` finite numbers."""
    values = rec.get(field)
    if isinstance(values, np.ndarray) and values.ndim == 1:  # results made in memory
        values = values.tolist()
    if not isinstance(values, list):
        raise rec.fail(f"{field} must be a flat list of {length} numbers, got {_describe(values)}")
    if len(values) != length:
        raise rec.fail(f"{field} has {len(values)} values, expected {length}{hint}")
    # Fast path first (results files hold millions of numbers); find the culprit only on failure.
    if set(map(type, values)) <= _NUMBER_TYPES and all(map(math.isfinite, values)):
        return values
    for i, value in enumerate(values):
        _check_number(rec, f"{field}[{i}]", value)
    return values  # finite numbers of other float/int subclasses (numpy scalars from in-memory results)


def _keypoints(rec: _Record, num_joints: int, dataset: str) -> list:
    values = rec.get("keypoints")
    if isinstance(values, list) and values and isinstance(values[0], list):
        raise rec.fail(f"keypoints must be a flat list [x1, y1, v1, x2, ...] of {3 * num_joints} numbers, "
                       "got a nested list")
    if isinstance(values, list) and len(values) != 3 * num_joints:
        n = len(values)
        people = f"{n // 3}" if n % 3 == 0 else f"{n / 3:.3g}"
        raise rec.fail(f"keypoints has {n} values ({people} keypoints of x, y, v) but {dataset} has {num_joints} "
                       "keypoints per person: is it made for another dataset?")
    return _numbers(rec, "keypoints", 3 * num_joints)


# Checks of the annotation fields this project and the COCO tools read, by name.
def _check_annotation_field(rec: _Record, field: str, num_joints: int, dataset: str) -> None:
    if field == "keypoints":
        _keypoints(rec, num_joints, dataset)
    elif field == "bbox":
        box = _numbers(rec, "bbox", 4, " (x, y, width, height)")
        if box[2] < 0 or box[3] < 0:
            raise rec.fail(f"bbox {rec.record['bbox']} has a negative width or height: boxes are x, y, width, height")
    elif field in ("area", "num_keypoints"):
        if _number(rec, field) < 0:
            raise rec.fail(f"{field} is negative ({rec.record[field]})")
    elif field == "iscrowd":
        if rec.get("iscrowd") not in (0, 1):  # True/False compare equal to 1/0
            raise rec.fail(f"iscrowd must be 0 or 1, got {_describe(rec.record['iscrowd'])}")


def check_annotation_file(data: Any, path: str | Path, num_joints: int, dataset: str, *,
                          image_fields: Iterable[str] = (),
                          annotation_fields: Iterable[str] = ("bbox", "keypoints"),
                          unlabelled_need_fields: bool = True) -> None:
    """Check a COCO keypoint annotation file's dict: an ``images`` and an ``annotations`` list, each
    image's integer ``id`` and ``image_fields`` (of file_name, width, height), each annotation's
    ``image_id`` (an image of the file) and ``annotation_fields`` (of people without labelled joints
    too unless ``unlabelled_need_fields`` is false), and wherever present the other
    fields the scorers and loaders read (bbox, keypoints, area, iscrowd, num_keypoints)."""
    source = f"annotation file {path}"
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise HrnextError(f"{source} is not a COCO keypoint file: it needs an 'images' list "
                          f"(found {_describe(data) if not isinstance(data, dict) else 'keys ' + ', '.join(data)})")
    if not isinstance(data.get("annotations"), list):
        raise HrnextError(f"{source} has no 'annotations' list, so no ground truth to score against or train on "
                          "(an image-info file?): give the dataset's keypoint annotation file")
    image_fields = tuple(image_fields)
    ids = set()
    for i, image in enumerate(data["images"]):
        rec = _Record(source, "image", i, image)
        if not isinstance(image, dict):
            raise rec.fail(f"must be an object, got {_describe(image)}")
        image_id = _integer_id(rec, "id")
        if image_id in ids:  # a dict by id would keep the last: its people cropped from the other photo
            raise rec.fail(f"id {image_id} is another image's id too: image ids must be unique")
        ids.add(image_id)
        for field in image_fields:
            if field == "file_name":
                if not isinstance(rec.get("file_name"), str) or not image["file_name"]:
                    raise rec.fail(f"file_name must be a file name, got {_describe(image['file_name'])}")
            elif field in ("width", "height"):
                if _number(rec, field) <= 0:
                    raise rec.fail(f"{field} must be positive, got {image[field]}")
    required = tuple(annotation_fields)
    optional = [f for f in ("iscrowd", "area", "num_keypoints", "bbox", "keypoints") if f not in required]
    annotation_ids = set()
    for i, ann in enumerate(data["annotations"]):
        rec = _Record(source, "annotation", i, ann)
        if not isinstance(ann, dict):
            raise rec.fail(f"must be an object, got {_describe(ann)}")
        if "id" in ann or "id" in required:  # the COCO tools key people by it: a repeat scores one for many
            ann_id = _integer_id(rec, "id")
            if ann_id in annotation_ids:
                raise rec.fail(f"id {ann_id} is another annotation's id too: annotation ids must be unique")
            annotation_ids.add(ann_id)
        # A loader that skips people without labelled joints needs nothing of them (PoseTrack 2017
        # lists some with a head box only): their fields are checked only where present.
        unlabelled = not ann.get("keypoints") or ann.get("num_keypoints", 1) == 0
        for field in required:
            if field != "id" and (unlabelled_need_fields or not unlabelled or field in ann):
                _check_annotation_field(rec, field, num_joints, dataset)
        for field in optional:
            # An empty keypoints list is COCO's way of saying "no keypoints" (e.g. some crowd regions).
            if field in ann and not (field == "keypoints" and ann["keypoints"] in ([], None)):
                _check_annotation_field(rec, field, num_joints, dataset)
        if _integer_id(rec, "image_id") not in ids:
            raise rec.fail(f"refers to image {ann['image_id']}, which the file's 'images' list lacks")


def check_categories(data: dict, path: str | Path) -> None:
    """The ``categories`` list the COCO tools read (their loadRes copies it): one line when it is missing."""
    if not isinstance(data.get("categories"), list) or not data["categories"]:
        raise HrnextError(f"annotation file {path} has no 'categories' list, which the COCO tools read: add "
                          '"categories": [{"id": 1, "name": "person"}] (the keypoint file of the split has it)')


def check_results(results: Any, source: str, num_joints: int, dataset: str, image_ids: set[int],
                  category_ids: set[int] | None = None) -> list[dict]:
    """A checked copy of COCO-format keypoint results: a non-empty list of objects with an integer
    ``image_id`` of the annotation file, ``3 * num_joints`` finite keypoint numbers and a finite
    ``score`` (``category_id`` defaults to 1 and must be one of ``category_ids``); an integer
    ``annotation_id`` where given. Other fields are left out of the copy."""
    if not isinstance(results, list):
        raise HrnextError(f"{source} must be a JSON list of {{image_id, category_id, keypoints, score}} objects, "
                          f"got {_describe(results) if not isinstance(results, dict) else 'an object'}")
    if not results:
        raise HrnextError(f"{source} holds no results: nothing to score or draw (did the tool that wrote it "
                          "find no people, or fail before writing?)")
    checked = []
    for i, res in enumerate(results):
        rec = _Record(source, "result", i, res)
        if not isinstance(res, dict):
            raise rec.fail(f"must be an object, got {_describe(res)}")
        image_id = _integer_id(rec, "image_id")
        keypoints = _keypoints(rec, num_joints, dataset)
        score = _number(rec, "score")
        category_id = res.get("category_id", 1)
        if isinstance(category_id, numbers.Integral) and not isinstance(category_id, (bool, np.bool_)):
            category_id = int(category_id)  # NumPy's from results made in memory: JSON's int
        if category_ids and category_id not in category_ids:
            raise rec.fail(f"category_id {category_id!r} is not a category of the annotation file "
                           f"({', '.join(map(str, sorted(category_ids)))}): the scorer would ignore it")
        if image_id not in image_ids:
            raise rec.fail(f"image_id {image_id} is not in the annotation file: were these results made for "
                           "another dataset or split?")
        # A fresh record of the scored fields only: the COCO tools add fields to every result they
        # score, and a result's bbox (predict writes one) would switch loadRes to detection areas,
        # changing AP_M and AP_L (a bad bbox was a traceback inside it).
        record = {"image_id": image_id, "category_id": category_id, "keypoints": list(keypoints),
                  "score": float(score)}
        if "annotation_id" in res:  # MPII scores per annotated person
            record["annotation_id"] = _integer_id(rec, "annotation_id")
        checked.append(record)
    return checked


def check_detection(det: Any, source: str, index: int) -> tuple[int, np.ndarray, float] | None:
    """(image id, box (4,) x y w h, score) of one detector record, or None for a non-person category."""
    rec = _Record(source, "box", index, det)
    if not isinstance(det, dict):
        raise rec.fail(f"must be an object, got {_describe(det)}")
    if det.get("category_id", 1) != 1:
        return None
    image_id = _integer_id(rec, "image_id")
    box = _numbers(rec, "bbox", 4, " (x, y, width, height)")
    return image_id, np.asarray(box, dtype=np.float32), float(_number(rec, "score"))


def check_person_box(det: Any, source: str, index: int) -> tuple[int | None, str | None, np.ndarray, float] | None:
    """(image id, file name, box (4,) x y w h, score) of one record of a detections file given for
    one's own pictures, or None for a non-person category. An image is named by an integer
    ``image_id`` (its numeric file stem, or a video's frame index), a ``file_name``, or both; the
    score is optional (1) and, where given, a confidence from 0 to 1."""
    rec = _Record(source, "box", index, det)
    if not isinstance(det, dict):
        raise rec.fail(f"must be an object, got {_describe(det)}")
    if det.get("category_id", 1) != 1:
        return None
    if "image_id" not in det and "file_name" not in det:
        raise rec.fail("names no image: give it an image_id (a numeric file stem or a video's frame index) or a "
                       "file_name")
    image_id = _integer_id(rec, "image_id") if "image_id" in det else None
    file_name = det.get("file_name")
    if file_name is not None and (not isinstance(file_name, str) or not file_name):
        raise rec.fail(f"file_name must be an image's file name, got {_describe(file_name)}")
    box = _numbers(rec, "bbox", 4, " (x, y, width, height)")
    if box[2] < 0 or box[3] < 0:
        raise rec.fail(f"bbox {det['bbox']} has a negative width or height: boxes are x, y, width, height")
    score = float(_number(rec, "score")) if "score" in det else 1.0
    if not 0 <= score <= 1:
        raise rec.fail(f"score {score:g} is not a confidence from 0 to 1: rescale the detector's scores")
    return image_id, file_name, np.asarray(box, dtype=np.float32), score
