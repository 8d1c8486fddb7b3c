"""``predict --smooth`` against the raw joints, on a real network, where the truth is known.

A camera pan over a bundled OCHuman picture (the demo's clip, longer): the picture's annotated
joints and boxes, moved by each frame's pan, are the true path of every joint and the person
boxes predict is given (so the jitter is the pose network's alone). For the raw joints, for
``--smooth`` and for a few other One-Euro settings (applied to the raw run's joints), it prints the
mean joint error against the truth (px) and the jitter (mean |second difference| of a joint's
path, px; a pan at constant speed has none), in one run. Joints the picture annotates as visible.

    python scripts/smoothing_study.py --model demo_out/engines/model.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hrnext_trt.bundled import bundled_dataset_root  # noqa: E402
from hrnext_trt.demo import PREDICT_CLIP, make_pan_clip  # noqa: E402
from hrnext_trt.predict import PredictConfig, run_predict  # noqa: E402
from hrnext_trt.predict.boxes import xywh_to_xyxy  # noqa: E402
from hrnext_trt.predict.smoothing import BETA, MIN_CUTOFF_HZ, OneEuroSmoother  # noqa: E402

VARIANTS = [(0.5, 5.0), (2.0, 5.0), (1.0, 2.0), (1.0, 10.0), (1.0, 30.0)]  # (min cutoff Hz, beta), beside the default


def pan_truth(frames: int, side: int) -> tuple[list[np.ndarray], list[dict]]:
    """Per frame, the annotated people's joints (P, 17, 3) in that frame's pixels (make_pan_clip's pan),
    and their boxes as a detections file (image_id: the frame index)."""
    root = bundled_dataset_root(PREDICT_CLIP[0])
    data = json.loads(next((root / "annotations").glob("*.json")).read_text())
    image = next(im for im in data["images"] if im["file_name"] == Path(PREDICT_CLIP[1]).name)
    anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
    people = np.array([np.reshape(a["keypoints"], (-1, 3)) for a in anns], dtype=np.float64)
    width, height = image["width"], image["height"]
    win_w, win_h = 0.9 * width, 0.9 * height
    scale = side / max(win_w, win_h)
    joints, boxes = [], []
    for i in range(frames):
        t = i / max(frames - 1, 1)
        shift = np.array([(width - win_w) * t, (height - win_h) * t])
        moved = people.copy()
        moved[..., :2] = (people[..., :2] - shift) * scale
        joints.append(moved)
        boxes += [{"image_id": i, "category_id": 1, "score": 1.0,
                   "bbox": [*((np.array(a["bbox"][:2]) - shift) * scale).tolist(),
                            *(np.array(a["bbox"][2:]) * scale).tolist()]} for a in anns]
    return joints, boxes


def paths(lines: list[dict], truth: list[np.ndarray]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per annotated person: predicted (T, 17, 2) and true (T, 17, 3) joints over the frames where a
    track's pose lies nearest to it (NaN where none)."""
    n_people = truth[0].shape[0]
    pred = np.full((n_people, len(lines), 17, 2), np.nan)
    for f, line in enumerate(lines):
        for person in line["people"]:
            joints = np.reshape(person["keypoints"], (-1, 3))[:, :2]
            visible = truth[f][..., 2] > 0
            dist = [np.linalg.norm(joints[v] - truth[f][p, v, :2], axis=1).mean() for p, v in enumerate(visible)]
            pred[int(np.argmin(dist)), f] = joints
    return {p: (pred[p], np.stack([t[p] for t in truth])) for p in range(n_people)}


def measure(lines: list[dict], truth: list[np.ndarray]) -> tuple[float, float]:
    errors, jitter = [], []
    for pred, true in paths(lines, truth).values():
        visible = true[..., 2] > 0
        err = np.linalg.norm(pred - true[..., :2], axis=-1)
        errors.append(err[visible & np.isfinite(err)])
        second = np.linalg.norm(pred[2:] - 2 * pred[1:-1] + pred[:-2], axis=-1)
        jitter.append(second[visible[1:-1] & np.isfinite(second)])
    return float(np.concatenate(errors).mean()), float(np.concatenate(jitter).mean())


def smoothed_offline(lines: list[dict], min_cutoff: float, beta: float) -> list[dict]:
    smoother, out = OneEuroSmoother(min_cutoff=min_cutoff, beta=beta), []
    for line in lines:
        people = line["people"]
        if people:
            keypoints = np.array([np.reshape(p["keypoints"], (-1, 3)) for p in people], np.float32)
            boxes = xywh_to_xyxy([p["bbox"] for p in people])
            keypoints = smoother(np.array([p["track_id"] for p in people]), keypoints, boxes, line["time_s"])
            people = [{**p, "keypoints": k.reshape(-1).tolist()} for p, k in zip(people, keypoints)]
        out.append({**line, "people": people})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a 17-joint (COCO) model: checkpoint or ONNX")
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--side", type=int, default=480)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    joints, boxes = pan_truth(args.frames, args.side)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        clip = make_pan_clip(bundled_dataset_root(PREDICT_CLIP[0]) / PREDICT_CLIP[1], work / "pan.mp4",
                             frames=args.frames, side=args.side, fps=args.fps)
        (work / "boxes.json").write_text(json.dumps(boxes))  # the true boxes: the pose network's jitter alone
        runs = {}
        for name, smooth in (("raw", False), ("smooth", True)):
            run_predict(PredictConfig(str(clip), args.model, out=work / name, smooth=smooth, device="cpu",
                                      boxes=work / "boxes.json", threads=args.threads, progress=False))
            runs[name] = [json.loads(line) for line in (work / name / "pan.jsonl").read_text().splitlines()]
    rows = [("raw joints", *measure(runs["raw"], joints)),
            (f"--smooth (One-Euro {MIN_CUTOFF_HZ:g} Hz, beta {BETA:g})", *measure(runs["smooth"], joints))]
    rows += [(f"One-Euro {c:g} Hz, beta {b:g} (offline)", *measure(smoothed_offline(runs["raw"], c, b), joints))
             for c, b in VARIANTS]
    print(f"{args.model}: pan over {PREDICT_CLIP[1]}, {args.frames} frames at {args.fps} frames/s, {args.side} px")
    print(f"| {'joints':44} | error vs truth (px) | jitter (px) |\n|{'-' * 46}|---:|---:|")
    for name, error, jitter in rows:
        print(f"| {name:44} | {error:.2f} | {jitter:.2f} |")


if __name__ == "__main__":
    main()
