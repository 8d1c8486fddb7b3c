"""End-to-end speed of ``hrnext-trt predict``: frames/s, people/s and the per-stage breakdown.

    python scripts/bench_predict.py --work /tmp/bench_predict [--arch hrnext_s] [--threads 2]

Exports ``--arch`` (random weights: the graph, hence the speed, is that of a trained model) to
FP32 ONNX once into ``--work``, then runs predict through ONNX Runtime on:
1. the bundled CrowdPose images with their bundled detector boxes (``--boxes``),
2. the same images with the default HOG detector,
3. a video made from the five consecutive PoseTrack test frames in ``../shared/data/posetrack18-mini``
   (played forwards and back, ``--clip-frames`` frames), HOG on every frame,
4. the same video with the detector every 5th frame (``--detect-every 5``),
and prints one table: frames/s, people/s and ms per frame of every stage for each run.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HRNEXT_SHARED", REPO.parent / "shared"))  # as the tests find it
POSETRACK = SHARED / "data" / "posetrack18-mini" / "images" / "test" / "000001_mpiinew_test"


def export_model(arch: str, work: Path) -> Path:
    import torch

    from hrnext_trt.export import ExportConfig, export_artifacts
    from hrnext_trt.models import build_pose_model, make_checkpoint

    folder = work / f"{arch}_fp32"
    if (folder / "model.onnx").is_file():
        return folder / "model.onnx"
    torch.manual_seed(0)
    checkpoint = work / f"{arch}_random.pth"
    torch.save(make_checkpoint(build_pose_model(arch, 14), (256, 192), "crowdpose"), checkpoint)
    export_artifacts(ExportConfig(checkpoint=checkpoint, out_dir=folder))
    return folder / "model.onnx"


def make_clip(work: Path, frames: int) -> Path:
    """The PoseTrack frames forwards and back (a smooth clip), mp4v at 25 frames/s."""
    paths = sorted(POSETRACK.glob("*.jpg"))
    if not paths:
        raise SystemExit(f"no PoseTrack frames in {POSETRACK}")
    images = [cv2.imread(str(p)) for p in paths]
    order = list(range(len(images))) + list(range(len(images) - 2, 0, -1))
    path = work / "posetrack_clip.mp4"
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (width, height))
    for i in range(frames):
        writer.write(images[order[i % len(order)]])
    writer.release()
    return path


def main() -> None:
    from hrnext_trt.bundled import bundled_dataset_root
    from hrnext_trt.predict import PredictConfig, run_predict
    from hrnext_trt.predict.timing import STAGE_LABELS
    from hrnext_trt.reports import Column, Report

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--arch", default="hrnext_s")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--clip-frames", type=int, default=40)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    model = export_model(args.arch, args.work)
    crowd = bundled_dataset_root("crowdpose-mini")
    clip = make_clip(args.work, args.clip_frames)
    runs = [("CrowdPose images, bundled boxes", dict(source=str(crowd / "images"),
                                                     boxes=crowd / "annotations" / "det_for_crowd_test_0.1_0.5.json")),
            ("CrowdPose images, HOG", dict(source=str(crowd / "images"))),
            ("PoseTrack clip, HOG every frame", dict(source=str(clip))),
            ("PoseTrack clip, HOG every 5th", dict(source=str(clip), detect_every=5))]
    rows = []
    for i, (label, kwargs) in enumerate(runs):
        started = time.perf_counter()
        result = run_predict(PredictConfig(model=model, out=args.work / f"run{i}", overwrite=True, device="cpu",
                                           batch=args.batch, threads=args.threads, progress=False, **kwargs))
        meta = result.timing.meta
        row = {"run": label, "frames": meta["frames"], "people": meta["people"], "fps": meta["frames_per_s"],
               "pps": meta["people_per_s"], "setup_s": meta["setup_s"], "total_s": time.perf_counter() - started}
        row.update({r["stage"]: r["ms_per_frame"] for r in result.timing.rows})
        rows.append(row)
    stage_columns = [Column(label, f"{label} ms", ".1f") for label in STAGE_LABELS.values()]
    report = Report(f"predict end to end: {args.arch} 256x192 ONNX Runtime FP32 on the CPU, batch {args.batch}",
                    [Column("run", "run"), Column("frames", "frames"), Column("people", "people"),
                     Column("fps", "frames/s", ".2f"), Column("pps", "people/s", ".2f"), *stage_columns],
                    rows, ["ms = ms per frame of each stage of the loop (set-up not included); the video is "
                           f"{args.clip_frames} frames of PoseTrack test video 000001 (1280x720)"])
    print(report.table())


if __name__ == "__main__":
    main()
