"""``hrnext-trt trt-eval``: accuracy and latency of PyTorch vs every exported artifact."""

from __future__ import annotations

from pathlib import Path

import click

from hrnext_trt.cli.params import (BACKEND_LIST, COUNT, DET_FAMILY, DET_FAMILY_HELP, DEVICE, INPUT_SIZE, POSITIVE_INT,
                                   model_record_options)
from hrnext_trt.contract import BACKENDS, INPUT_SIZE_HINT, OWN_IMAGES, TRT_EVAL_BATCH
from hrnext_trt.keypoints import DATASETS
from hrnext_trt.trt_eval import TrtEvalConfig, run_trt_eval


@click.command("trt-eval")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The PyTorch checkpoint (the reference row; default: the one the export's manifest.json "
                   "records, while it is there unchanged).")
@click.option("--engines", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Export folder of `hrnext-trt export-engine` (manifest.json, *.onnx, *.engine).")
@click.option("--other-checkpoint", is_flag=True,
              help="Compare a --checkpoint other than the one the export was made from (the report says so).")
@model_record_options
@click.option("--input-size", type=INPUT_SIZE, default=None,
              help=f"Crop size of such a checkpoint without --engines ({INPUT_SIZE_HINT}).")
@click.option("--dataset", type=click.Choice(sorted(DATASETS) + [OWN_IMAGES]), required=True,
              help=f"The dataset layout of --data-root; {OWN_IMAGES}: your own unlabelled pictures, each row "
                   "compared with PyTorch's poses of the same people (OKS, no AP).")
@click.option("--data-root", type=click.Path(path_type=Path), required=True,
              help=f"The dataset's root; with --dataset {OWN_IMAGES}, a folder of pictures or a video.")
@click.option("--split", default=None, help="Default: the dataset's test split (crowdpose test, coco/mpii/posetrack val).")
@click.option("--boxes", type=click.Choice(["det", "gt"]), default=None,
              help="Person boxes (default: the dataset's test protocol: detector boxes; gt for OCHuman, MPII's "
                   "annotated center/scale).")
@click.option("--det-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Detector boxes, COCO-format (default: the dataset layout's file).")
@click.option("--detector", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"With --dataset {OWN_IMAGES}: a person detector ONNX, as predict's (default: --det-file, else "
                   "OpenCV's HOG).")
@click.option("--det-family", type=DET_FAMILY, default=None, help="The --detector's " + DET_FAMILY_HELP)
@click.option("--backends", type=BACKEND_LIST, default=None,
              help="Comma-separated: pytorch,onnxruntime,tensorrt (default: all).")
@click.option("--batch", type=POSITIVE_INT, default=TRT_EVAL_BATCH, show_default=True, help="Crops per network call.")
@click.option("--device", type=DEVICE, default="auto", show_default=True,
              help="Device of PyTorch and ONNX Runtime (TensorRT is always the GPU).")
@click.option("--threads", type=POSITIVE_INT, default=None, help="Intra-op threads of PyTorch and ONNX Runtime.")
@click.option("--flip/--no-flip", "flip_test", default=None,
              help="Flip test on or off (default: as the checkpoint's recipe validates; on for the paper's files).")
@click.option("--iters", type=POSITIVE_INT, default=20, show_default=True,
              help="Timed calls of the latency measurement.")
@click.option("--warmup", type=COUNT, default=3, show_default=True, help="Untimed calls before them.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write trt_eval.{json,csv,md,png} here.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Write the JSON report here too.")
def command(checkpoint, engines, other_checkpoint, arch, num_joints, input_size, dataset, data_root, split, boxes,
            det_file, detector, det_family, backends, batch, device, threads, flip_test, iters, warmup, out,
            json_path) -> None:
    """Evaluate the PyTorch model and every artifact of an export folder on the same person boxes."""
    config = TrtEvalConfig(
        checkpoint=checkpoint, engines=engines, dataset=dataset, data_root=data_root, split=split, boxes=boxes,
        det_file=det_file, detector=detector, det_family=det_family, backends=backends or BACKENDS, batch=batch,
        device=device, threads=threads, flip_test=flip_test, iters=iters, warmup=warmup, out=out, json=json_path,
        arch=arch,
        num_joints=num_joints, input_size=input_size, other_checkpoint=other_checkpoint)
    report = run_trt_eval(config)
    click.echo(report.table())
    for path in (out, json_path):
        if path:
            click.echo(f"wrote {path}")
