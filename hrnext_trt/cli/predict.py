"""``hrnext-trt predict``: poses on an image, a folder, a video or a camera, through any backend."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hrnext_trt import interrupts
from hrnext_trt.cli.params import (DET_FAMILY, DET_FAMILY_HELP, DEVICE, FRACTION, INPUT_SIZE, POSITIVE_FLOAT,
                                   POSITIVE_INT, model_record_options)
from hrnext_trt.contract import INPUT_SIZE_HINT
from hrnext_trt.predict.boxes import DET_IOU_THR, DET_SCORE_THR
from hrnext_trt.predict.hog import HOG_LIMITS
from hrnext_trt.predict.run import SEQUENCE_FPS


HELP = f"""Poses on SOURCE: an image, a folder of images, a video file or a camera index (0, 1, ...;
a number that names a file or folder here is that file or folder).

Writes annotated images and results.json (COCO keypoint results), or an annotated .mp4 and a .jsonl
of per-frame results with track ids, and summary.json; prints per-stage timing. A folder whose
images are a video's frames (a PoseTrack sequence, frames from ffmpeg) is tracked and written as a
video with --sequence. Ctrl-C stops cleanly with every file complete.

Without --detector or --boxes, people are found by the embedded default, the {HOG_LIMITS}. Bring a
detector ONNX for crowds, sitting people or speed.
"""


@click.command("predict", help=HELP)
@click.argument("source")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Pose network: a checkpoint (.pth, PyTorch), model*.onnx (ONNX Runtime) or model*.engine "
                   "(TensorRT, with the export folder's manifest.json beside it).")
@model_record_options
@click.option("--input-size", type=INPUT_SIZE, default=None,
              help=f"Crop size of such a checkpoint ({INPUT_SIZE_HINT}).")
@click.option("--detector", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Person detector ONNX, run in ONNX Runtime: mmdeploy/rtmlib YOLOX or RTMDet end-to-end exports "
                   "(dets + labels) or Ultralytics YOLOv8/11 exports (1, 4+classes, anchors).")
@click.option("--boxes", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="COCO-format person detections [{image_id, bbox, score}] instead of a detector: image_id is an "
                   "image's numeric file stem (or give file_name), or a video's 0-based frame index; scores 0..1.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("predict_out"),
              show_default=True, help="Output folder (must be empty, or hold a previous run and --overwrite).")
@click.option("--overwrite", is_flag=True, help="Replace the files of a previous predict run in --out.")
@click.option("--device", type=DEVICE, default="auto", show_default=True,
              help="Device of PyTorch, ONNX Runtime and the detector (TensorRT is always the GPU).")
@click.option("--batch", type=POSITIVE_INT, default=16, show_default=True,
              help="Crops per pose-network call, gathered across the people of several frames.")
@click.option("--detect-every", type=POSITIVE_INT, default=1, show_default=True,
              help="Video: run the detector every N frames; boxes and track ids are carried in between.")
@click.option("--sequence", is_flag=True,
              help="SOURCE is a folder of one video's frames (sorted by name): track people across them and "
                   "write an .mp4 and per-frame JSON lines, as for a video file.")
@click.option("--fps", type=POSITIVE_FLOAT, default=None,
              help=f"Frame rate of a --sequence folder's video [default: {SEQUENCE_FPS:g}].")
@click.option("--show-fps", is_flag=True, help="Draw the running frames/s on the output.")
@click.option("--smooth", is_flag=True,
              help="Video: smooth each person's keypoints over the frames (One-Euro filter per track): still joints "
                   "stop jittering, moving ones lag a little.")
@click.option("--det-score-thr", type=FRACTION, default=DET_SCORE_THR, show_default=True,
              help="Keep person boxes above this.")
@click.option("--det-iou-thr", type=FRACTION, default=DET_IOU_THR, show_default=True,
              help="NMS IoU of raw detector outputs.")
@click.option("--det-family", type=DET_FAMILY, default=None, help="The --detector's " + DET_FAMILY_HELP)
@click.option("--kpt-thr", type=FRACTION, default=0.3, show_default=True, help="Draw joints scored above this.")
@click.option("--flip/--no-flip", "flip_test", default=False, show_default=True, help="Flip test (2x network).")
@click.option("--threads", type=POSITIVE_INT, default=None, help="Intra-op threads of PyTorch and ONNX Runtime.")
@click.option("--max-frames", type=POSITIVE_INT, default=None,
              help="Stop after this many frames (camera, quick looks).")
def command(source, model, arch, num_joints, input_size, detector, boxes, out, overwrite, device, batch, detect_every,
            sequence, fps, show_fps, smooth, det_score_thr, det_iou_thr, det_family, kpt_thr, flip_test, threads,
            max_frames) -> None:
    from hrnext_trt.predict import PredictConfig, run_predict

    config = PredictConfig(source=source, model=model, arch=arch, num_joints=num_joints, input_size=input_size,
                           detector=detector, boxes=boxes, out=out, overwrite=overwrite,
                           device=device, batch=batch, detect_every=detect_every, sequence=sequence, fps=fps,
                           show_fps=show_fps, smooth=smooth,
                           det_score_thr=det_score_thr, det_iou_thr=det_iou_thr, det_family=det_family,
                           kpt_thr=kpt_thr, flip_test=flip_test, threads=threads, max_frames=max_frames)
    result = run_predict(config)
    click.echo(result.timing.table())
    if result.interrupted:
        click.echo(f"interrupted after {result.frames} frames; the files hold those frames")
    skipped = result.summary["skipped_unreadable"]
    if skipped:
        click.echo(f"skipped {len(skipped)} unreadable image{'s' if len(skipped) > 1 else ''} ("
                   + ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "") + "; summary.json lists them)")
    click.echo(f"wrote {len(result.files)} files to {result.out}: " + ", ".join(f.name for f in result.files[:6])
               + (", ..." if len(result.files) > 6 else ""))
    if result.interrupted and interrupts.by_sigterm():
        sys.exit(interrupts.exit_code())  # the files are whole; whoever sent SIGTERM sees its exit code
