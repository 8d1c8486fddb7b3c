"""``hrnext-trt export-engine``: ONNX (FP32, FP16, INT8) and TensorRT engines from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from hrnext_trt.cli.params import (BATCH_PROFILE, COMPUTE_CAPABILITIES, DET_FAMILY, DET_FAMILY_HELP, INPUT_SIZE,
                                   POSITIVE_FLOAT, POSITIVE_INT, model_record_options)
from hrnext_trt.engines.builders import BUILDERS, RTX_COMPUTE_CAPABILITIES, RTX_DEFAULT_TARGETS
from hrnext_trt.errors import HrnextError
from hrnext_trt.export import ExportConfig, export_artifacts, summary
from hrnext_trt.export.config import CALIB_DATASETS, CALIB_METHODS, CALIB_SPLITS
from hrnext_trt.export.groups import LEVELS


@click.command("export-engine")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@model_record_options
@click.option("--input-size", type=INPUT_SIZE, default=None,
              help="Crop size, e.g. 256x192 (default: the checkpoint's, else 256x192).")
@click.option("--fp16", is_flag=True, help="Also write model_fp16.onnx (ModelOpt AutoCast) and its engine.")
@click.option("--int8", is_flag=True, help="Also write model_int8.onnx (ModelOpt INT8 Q/DQ) and its engine.")
@click.option("--calib-data", type=click.Path(path_type=Path), default=None,
              help="Dataset root whose training split gives the calibration and held-out check crops "
                   "(default: the bundled coco-mini sample); with --calib-dataset images, a folder of your own "
                   "pictures or a video.")
@click.option("--calib-dataset", type=click.Choice(CALIB_DATASETS), default="coco", show_default=True,
              help="Which dataset layout --calib-data has; images: your own unlabelled pictures (what the engine "
                   "will see), people found by --calib-detector, --calib-boxes or OpenCV's HOG.")
@click.option("--calib-detector", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --calib-dataset images: a person detector ONNX (as predict's --detector).")
@click.option("--calib-det-family", type=DET_FAMILY, default=None, help="The --calib-detector's " + DET_FAMILY_HELP)
@click.option("--calib-boxes", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --calib-dataset images: a COCO-format detections file (as predict's --boxes).")
@click.option("--calib-images", type=POSITIVE_INT, default=512, show_default=True, help="INT8 calibration crops.")
@click.option("--calib-method", type=click.Choice(CALIB_METHODS), default=None,
              help="INT8 activation calibration: entropy (KL clipping of the ranges later calibration batches "
                   "add; over one batch it equals max) or max (no clipping) [default: entropy].")
@click.option("--calib-split", type=click.Choice(CALIB_SPLITS), default=None,
              help="Split the calibration and held-out crops come from (default: train; OCHuman: val).")
@click.option("--calib-study", is_flag=True,
              help="First quantize with each calibration method at two crop counts and print each one's held-out error.")
@click.option("--int8-budget", type=POSITIVE_FLOAT, default=None, metavar="PX",
              help="Keep INT8's held-out keypoints within PX pixels of FP32 (mean): the most harmful groups move "
                   "to FP16 (FP32 where FP16 overflows); the plan goes into the manifest and the ONNX metadata.")
@click.option("--fp16-budget", type=POSITIVE_FLOAT, default=None, metavar="PX",
              help="FP16 file as a plan: groups whose FP16 drifts or overflows most stay FP32 until the held-out "
                   "keypoints are within PX pixels of FP32 (instead of AutoCast).")
@click.option("--sensitivity", is_flag=True,
              help="Write sensitivity.json/.png (per-group INT8 harm) even without --int8-budget.")
@click.option("--sensitivity-level", type=click.Choice(LEVELS), default=None,
              help="Groups of the sensitivity table and the plan: stage, branch, block or part "
                   "(attention/kernels/convs) [default: block].")
@click.option("--verify-images", type=POSITIVE_INT, default=16, show_default=True,
              help="Held-out crops (other images than calibration) every artifact is checked on.")
@click.option("--batch", type=BATCH_PROFILE, default="1,16,32", show_default=True,
              help="Batch range of the engines' optimisation profile.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: engines/<checkpoint name>).")
@click.option("--workspace", "workspace_gb", type=POSITIVE_FLOAT, default=4.0, show_default=True,
              help="TensorRT builder workspace, GB.")
@click.option("--timing-cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TensorRT timing cache file, reused across builds (default: <out>/timing.cache; "
                   "TensorRT for RTX has none).")
@click.option("--builder", type=click.Choice(BUILDERS), default=None,
              help="Engine builder (default: TensorRT where it and a GPU exist, else TensorRT for RTX, which builds "
                   "without a GPU).")
@click.option("--compute-capability", "compute_capabilities", type=COMPUTE_CAPABILITIES, default=None,
              help=f"TensorRT for RTX targets, of {', '.join(RTX_COMPUTE_CAPABILITIES)} (default: the GPU present, "
                   f"else {','.join(RTX_DEFAULT_TARGETS)}).")
@click.option("--no-engines", is_flag=True,
              help="ONNX files only, even where a builder is installed (e.g. a GPU TensorRT for RTX does not target).")
def command(checkpoint: Path, arch, num_joints, input_size, fp16, int8, calib_data, calib_dataset, calib_detector,
            calib_det_family, calib_boxes, calib_images, calib_method, calib_split, calib_study, int8_budget,
            fp16_budget, sensitivity, sensitivity_level, verify_images, batch, out_dir, workspace_gb, timing_cache,
            builder, compute_capabilities, no_engines) -> None:
    """Export CHECKPOINT to ONNX (FP32, and FP16/INT8 if asked), build an engine of each with TensorRT (on a GPU)
    or TensorRT for RTX (GPU or not), check every artifact against PyTorch and write manifest.json."""
    # Options of a step that will not run are refused, not silently ignored.
    if calib_method is not None and not int8:
        raise HrnextError(f"--calib-method {calib_method} chooses INT8's calibration: add --int8, or drop it")
    given = click.get_current_context().get_parameter_source("calib_images") != click.core.ParameterSource.DEFAULT
    if given and not int8:
        raise HrnextError(f"--calib-images {calib_images} counts INT8's calibration crops: add --int8, or drop it "
                          "(--verify-images counts the held-out crops every file is checked on)")
    if sensitivity_level is not None and int8_budget is None and fp16_budget is None and not sensitivity:
        raise HrnextError(f"--sensitivity-level {sensitivity_level} cuts the groups of a sensitivity table or a "
                          "precision plan: add --sensitivity, --int8-budget or --fp16-budget, or drop it")
    config = ExportConfig(
        checkpoint=checkpoint,
        out_dir=out_dir or Path("engines") / checkpoint.stem,
        arch=arch,
        num_joints=num_joints,
        input_size=input_size,
        precisions=("fp32",) + (("fp16",) if fp16 else ()) + (("int8",) if int8 else ()),
        calib_data=calib_data,
        calib_dataset=calib_dataset,
        calib_detector=calib_detector,
        calib_det_family=calib_det_family,
        calib_boxes=calib_boxes,
        calib_images=calib_images,
        calib_method=calib_method or "entropy",
        calib_split=calib_split,
        calib_study=calib_study,
        int8_budget=int8_budget,
        fp16_budget=fp16_budget,
        sensitivity=sensitivity,
        sensitivity_level=sensitivity_level or "block",
        verify_images=verify_images,
        batch=batch,
        workspace_gb=workspace_gb,
        timing_cache=timing_cache,
        builder=builder,
        compute_capabilities=compute_capabilities,
        build_engines=not no_engines,
    )
    click.echo(summary(export_artifacts(config), config.out_dir))
