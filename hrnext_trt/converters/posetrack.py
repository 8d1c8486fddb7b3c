"""PoseTrack per-video annotation files -> one COCO-format keypoint file.

PoseTrack 2018 files are COCO-like already (``images`` with ``file_name``, ``frame_id``,
``vid_id``, ``nframes``, ``is_labeled``, ``ignore_regions_x/y``; ``annotations`` with 17
keypoints, ``bbox``, ``bbox_head``, ``track_id``): the videos are merged, every field is kept
as it is (coordinates 0-based, as released; keypoints untouched, so an annotated joint stays
``(x, y, v)`` and an unannotated one ``(0, 0, 0)``), and the image sizes the files lack are read
from the frames. PoseTrack 2017 ``annolist`` files (``image[0].name``, ``annorect`` with the
head box ``x1, y1, x2, y2``, ``track_id``, ``annopoints[0].point`` with poseval's 15 joint ids)
are mapped onto the same fields: joints by name into the 2018 order (ears stay unannotated),
the head box to ``bbox_head`` (x, y, w, h), the person box as poseval's converter derives it
(the joints' extent x 1.3 about its middle), ``ignore_regions`` to ``ignore_regions_x/y``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hrnext_trt.converters.common import category, find_root, image_size, keypoint_box
from hrnext_trt.data.files import read_json
from hrnext_trt.errors import HrnextError
from hrnext_trt.keypoints import POSETRACK

logger = logging.getLogger(__name__)

# poseval's joint ids of the 2017 format (eval_helpers.Joint), by this toolkit's joint names.
POSEVAL_JOINTS = ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
                  "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "head_bottom",
                  "nose", "head_top")
PERSON_BOX_EXTENT = 1.3  # poseval's convert.py: the box spans 0.65 x the joints' extent each side


def convert_posetrack(src: str | Path, image_root: str | Path | None = None) -> dict:
    """The COCO-format dict of a PoseTrack per-video file or a folder of them (sorted by name).

    ``image_root``: the folder the ``file_name`` paths are relative to (default: found at or
    above ``src``, PoseTrack's own layout has it two levels above ``annotations/val/``).
    """
    src = Path(src)
    if src.is_dir():
        files = sorted(src.glob("*.json"))
        if not files:
            raise HrnextError(f"{src} holds no .json file: give a PoseTrack annotation file or folder of them")
    elif src.is_file():
        files = [src]
    else:
        raise HrnextError(f"PoseTrack source not found: {src}")
    images, annotations = [], []
    for path in files:
        data = read_json(path, "PoseTrack annotation file")
        if isinstance(data, dict) and "annolist" in data:
            video_images, video_anns = _from_2017(data, path, first_image_id=len(images) + 1,
                                                  first_ann_id=len(annotations) + 1)
        elif isinstance(data, dict) and isinstance(data.get("images"), list) \
                and isinstance(data.get("annotations"), list):
            video_images, video_anns = _from_2018(data, path)
        else:
            raise HrnextError(f"{path} is not a PoseTrack annotation file (2018: images/annotations; 2017: annolist)")
        images += video_images
        annotations += video_anns
    ids = [im["id"] for im in images]
    if len(set(ids)) != len(ids):
        raise HrnextError(f"{src}: two frames share an image id: are two copies of one video among the files?")
    if not images:
        raise HrnextError(f"{src} holds no frame")
    root = Path(image_root) if image_root is not None else find_root(
        files[0], images[0]["file_name"], "the frames' file_name paths are relative to")
    for image in images:
        image["width"], image["height"] = image_size(root / image["file_name"])
    logger.info("PoseTrack %s: %d videos, %d frames (%d labelled), %d people", src.name, len(files), len(images),
                sum(bool(im.get("is_labeled")) for im in images), len(annotations))
    return {"info": {"description": f"PoseTrack from {src.name}, converted by hrnext-trt",
                     "coordinates": "0-based pixels, as released"},
            "images": images, "annotations": annotations, "categories": [category(POSETRACK)]}


def _from_2018(data: dict, path: Path) -> tuple[list[dict], list[dict]]:
    names = ((data.get("categories") or [{}])[0]).get("keypoints")
    if names is not None and tuple(names) != POSETRACK.keypoint_names:
        raise HrnextError(f"{path}: keypoints {names} are not PoseTrack 2018's ({', '.join(POSETRACK.keypoint_names)})")
    images = [dict(im) for im in data["images"]]
    annotations = []
    for ann in data["annotations"]:
        ann = dict(ann)
        keypoints = ann.get("keypoints") or []
        if keypoints and len(keypoints) != 3 * POSETRACK.num_joints:
            raise HrnextError(f"{path}: annotation {ann.get('id')} has {len(keypoints) // 3} keypoints, "
                              f"PoseTrack has {POSETRACK.num_joints}")
        ann.setdefault("iscrowd", 0)
        ann["num_keypoints"] = sum(1 for v in keypoints[2::3] if v > 0)
        if "bbox" in ann:
            ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
        annotations.append(ann)
    return images, annotations


def _from_2017(data: dict, path: Path, first_image_id: int, first_ann_id: int) -> tuple[list[dict], list[dict]]:
    index = {name: i for i, name in enumerate(POSETRACK.keypoint_names)}
    images, annotations = [], []
    frames = data["annolist"]
    try:
        for frame in frames:
            image_id = first_image_id + len(images)
            name = frame["image"][0]["name"]
            image = {"id": image_id, "file_name": name, "vid_id": Path(name).parent.name.split("_")[0],
                     "nframes": len(frames), "frame_id": image_id,
                     "is_labeled": bool((frame.get("is_labeled") or [bool(frame.get("annorect"))])[0])}
            regions = frame.get("ignore_regions") or []
            if regions:
                image["ignore_regions_x"] = [[p["x"][0] for p in r["point"]] for r in regions]
                image["ignore_regions_y"] = [[p["y"][0] for p in r["point"]] for r in regions]
            images.append(image)
            for rect in frame.get("annorect") or []:
                keypoints = [0.0] * (3 * POSETRACK.num_joints)
                points = rect["annopoints"][0]["point"] if rect.get("annopoints") else []
                for point in points:
                    j = index[POSEVAL_JOINTS[point["id"][0]]]
                    visible = point.get("is_visible", [1])[0]
                    keypoints[3 * j:3 * j + 3] = [point["x"][0], point["y"][0], int(visible)]
                ann = {"id": first_ann_id + len(annotations), "image_id": image_id, "category_id": 1, "iscrowd": 0,
                       "track_id": rect.get("track_id", [len(annotations)])[0], "keypoints": keypoints,
                       "num_keypoints": len(points)}
                if "x1" in rect:
                    x1, y1, x2, y2 = (rect[k][0] for k in ("x1", "y1", "x2", "y2"))
                    ann["bbox_head"] = [x1, y1, x2 - x1, y2 - y1]
                if points:
                    x, y, w, h = keypoint_box(_labelled(keypoints))
                    grow = (PERSON_BOX_EXTENT - 1) / 2
                    ann["bbox"] = [x - w * grow, y - h * grow, w * PERSON_BOX_EXTENT, h * PERSON_BOX_EXTENT]
                    ann["area"] = ann["bbox"][2] * ann["bbox"][3]
                annotations.append(ann)
    except (KeyError, IndexError, TypeError) as exc:
        raise HrnextError(f"{path} is a malformed PoseTrack 2017 file: missing or bad field {exc}") from None
    return images, annotations


def _labelled(keypoints: list[float]) -> list[float]:
    """Keypoints with every point the 2017 file lists counted as labelled (its occluded ones too)."""
    out = list(keypoints)
    for i in range(0, len(out), 3):
        if out[i] != 0 or out[i + 1] != 0 or out[i + 2] != 0:
            out[i + 2] = 1
    return out
