"""Person boxes from a COCO-format detections file: ``[{"image_id", "bbox": [x, y, w, h], "score",
"category_id"}, ...]`` (the format of COCO's and CrowdPose's published detector results).

An image matches entries whose ``image_id`` is its id (its numeric file stem, as COCO and
CrowdPose name files; ``sources.image_ids``) or, for any name, entries that carry its
``file_name``; a video frame matches entries whose ``image_id`` is its 0-based frame index. Only
person entries (category 1, or none given) are read. Every entry is checked when the file is
opened (``check_person_box``): a bad one found at its image would end a long run half done.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from hrnext_trt.data.coco_format import check_person_box
from hrnext_trt.data.files import read_json
from hrnext_trt.errors import HrnextError
from hrnext_trt.predict.boxes import Boxes, xywh_to_xyxy


class BoxesFile:
    name = "detections file"

    def __init__(self, path: str | Path, score_thr: float = 0.0):
        self.path = Path(path)
        entries = read_json(self.path, "detections file")
        if not isinstance(entries, list):
            raise HrnextError(f"detections file {self.path} is not a COCO-format list of detections")
        self._by_key: dict[object, list[tuple]] = defaultdict(list)
        for i, det in enumerate(entries):
            checked = check_person_box(det, f"detections file {self.path}", i)
            if checked is None or checked[3] < score_thr:
                continue
            image_id, file_name, box, score = checked
            if file_name is not None:
                self._by_key[file_name].append((box, score))
            if image_id is not None:
                self._by_key[image_id].append((box, score))
        self.name = f"detections file {self.path.name}"

    def boxes_for(self, image_id: int, file_name: str, image_shape=None) -> Boxes:
        """The person boxes of an image, cut to it where its ``image_shape`` (H, W, ...) is given."""
        items = self._by_key.get(file_name) or self._by_key.get(image_id) or []
        if not items:
            return Boxes.empty()
        boxes = Boxes(xywh_to_xyxy([b for b, _ in items]), np.array([s for _, s in items]))
        return boxes if image_shape is None else boxes.clipped(image_shape[1], image_shape[0])

    def matches_any(self, keys) -> bool:
        keys = keys if isinstance(keys, range) else set(keys)  # a range answers `in` without a walk
        return any(k in keys for k in self._by_key)


def open_boxes_file(path: str | Path, score_thr: float, keys) -> BoxesFile:
    """The detections file at ``path``, which must hold person boxes for one of ``keys`` at least (a
    source's file names and image ids, or its frame indices: ``box_keys()``)."""
    boxes = BoxesFile(path, score_thr)
    if not boxes.matches_any(keys):
        raise HrnextError(f"detections file {path} has no person boxes for this source: entries match an image by "
                          "its numeric file stem or file_name, a video frame by its 0-based index")
    return boxes
