"""``export_artifacts``: checkpoint -> ONNX (FP32, FP16, INT8) -> engines (TensorRT or TensorRT for RTX) ->
manifest, checked.

The order matters: the FP32 ``model.onnx`` is simplified first and every other precision starts
from it; each artifact is then compared with the PyTorch model on held-out crops, and the
numbers go into the manifest and the printed table.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from hrnext_trt.bundled import BUNDLED_ROOT
from hrnext_trt.contract import (DEFAULT_INPUT_SIZE, INPUT_SIZE_HINT, OWN_IMAGES, TRT_EVAL_BATCH,
                                 nvidia_gpu_present, resolve_input_size, unavailable_reason)
from hrnext_trt.data import TEST_SPLIT, HeatmapCodec
from hrnext_trt.engines import TensorRTEngine
from hrnext_trt.engines.builders import TENSORRT, TENSORRT_RTX, TITLES, choose_builder, rtx_targets
from hrnext_trt.engines.cuda_device import gpu_info, import_pycuda
from hrnext_trt.errors import HrnextError
from hrnext_trt.export.calibration import make_crop_sets, source_label
from hrnext_trt.export.config import ExportConfig
from hrnext_trt.export.folder import check_target, publish, staging_folder
from hrnext_trt.export.onnx_export import export_onnx, save_checked
from hrnext_trt.export.own_images import own_crop_sets
from hrnext_trt.export.calib_study import calibration_study, format_study, study_choices
from hrnext_trt.export.sensitivity import (HeldoutEvaluator, format_sensitivity, plan_fp16, plan_int8, plan_line,
                                           read_sensitivity)
from hrnext_trt.export.tensorrt_build import BuildFailed, build_engine
from hrnext_trt.export.verify import (agreement, engine_heatmaps, format_engine_table, format_table, onnx_heatmaps,
                                     torch_heatmaps)
from hrnext_trt.export.versions import package_versions
from hrnext_trt.export.workers import run_jobs
from hrnext_trt.keypoints import meta_for_joints
from hrnext_trt.manifest import Manifest
from hrnext_trt.model_spec import ModelSpec

log = logging.getLogger(__name__)

ONNX_FILES = {"fp32": "model.onnx", "fp16": "model_fp16.onnx", "int8": "model_int8.onnx"}
_WORKER_JOBS = {"fp16": "AutoCast FP16", "int8": "INT8 quantization"}


def engine_file(precision: str) -> str:
    return f"model_{precision}.engine"


def export_artifacts(config: ExportConfig) -> Manifest:
    """Write every artifact of ``config`` into ``config.out_dir``; returns the manifest (also saved).
    Each step is logged with its time; :func:`summary` is the table to show at the end.

    The folder appears whole or not at all (``hrnext_trt.export.folder``): an interrupted or failed
    export leaves the previous one untouched, a finished one replaces every file of it.
    """
    out = config.out_dir
    check_target(out)
    with staging_folder(out) as stage:
        cache = config.timing_cache_path
        if config.timing_cache is None and cache.is_file():  # the default cache lives in the folder: keep it
            shutil.copy2(cache, stage / cache.name)
        staged_cache = (config.timing_cache or stage / cache.name) if config.build_engines else None
        manifest = _export_into(replace(config, out_dir=stage, timing_cache=staged_cache), cache,
                                cache_given=config.timing_cache is not None)
        if (stage / cache.name).is_file() and not manifest["engines"].get("timing_cache"):
            (stage / cache.name).unlink()  # the old folder's cache, unused: a re-export replaces every file
        publish(stage, out)
    return manifest


def _export_into(config: ExportConfig, timing_cache: Path, cache_given: bool = False) -> Manifest:
    """The export itself, into the (staging) folder ``config.out_dir``; ``timing_cache`` is the path
    the manifest records, ``cache_given`` whether the user named it (--timing-cache)."""
    import numpy as np
    import onnx

    from hrnext_trt.models import (checkpoint_spec, load_pose_model, prepare_for_export,  # torch
                                   read_checkpoint, recipe_flip_test, recipe_val_root)

    timings: dict[str, float] = {}

    @contextmanager
    def step(name: str, what: str):
        start = time.perf_counter()
        yield
        timings[name] = round(time.perf_counter() - start, 2)
        log.info("%s (%.1f s)", what, timings[name])

    out = config.out_dir
    with step("load", f"loaded {config.checkpoint}"):
        ckpt = read_checkpoint(config.checkpoint)
        recorded = checkpoint_spec(ckpt)
        model = load_pose_model(ckpt, arch=config.arch, num_joints=config.num_joints, source=config.checkpoint)
    input_size = resolve_input_size(config.input_size, recorded.input_size, DEFAULT_INPUT_SIZE)
    spec = replace(ModelSpec.of(model.arch, model.num_joints, input_size,
                                recorded.dataset or meta_for_joints(model.num_joints).name),
                   flip_test=recipe_flip_test(ckpt))
    # Said once: the paper's files record no crop size, and a wrong one exports without complaint.
    default = recorded.input_size is None and config.input_size is None
    log.info("model: %s, %d joints (%s), input %dx%d%s", spec.arch, spec.num_joints, spec.dataset, *input_size,
             f" (the default: the checkpoint records no input size; pass --input-size, {INPUT_SIZE_HINT})"
             if default else "")

    builder, engines_reason = (None, "not asked for") if not config.build_engines else \
        choose_builder(config.builder, nvidia_gpu_present())
    if config.builder is not None and builder is None:  # asked for by name: no engine is an error, not a note
        gpu_too = ", and it builds only with an NVIDIA GPU" if config.builder == TENSORRT and \
            "not installed" in engines_reason else ""
        raise HrnextError(f"--builder {config.builder}: {engines_reason}{gpu_too}: install it, choose the other "
                          "builder, or leave --builder out")
    # Options the chosen builder would ignore (the builder named outright: ExportConfig refused them).
    if builder == TENSORRT and config.compute_capabilities is not None:
        raise HrnextError("--compute-capability picks TensorRT for RTX's targets, and TensorRT builds here, for this "
                          "GPU: pass --builder tensorrt-rtx, or drop --compute-capability")
    if builder == TENSORRT_RTX and cache_given:
        raise HrnextError("--timing-cache: TensorRT for RTX builds here and keeps no timing cache: drop it, or build "
                          "with TensorRT on a GPU (--builder tensorrt)")
    gpu = gpu_info() if nvidia_gpu_present() else None
    targets = _engine_targets(config, builder, gpu) if builder else ()
    manifest = Manifest.create(spec, config.checkpoint, config.batch, gpu, package_versions())
    data_root = _recipe_data_root(recipe_val_root(ckpt))
    if data_root is not None:  # where the printed trt-eval command finds the model's dataset
        manifest["source_checkpoint"]["data_root"] = data_root

    with step("crops", "cropped held-out and calibration images, ran PyTorch on the held-out ones"):
        calib_images = config.calib_images if "int8" in config.precisions else 0
        crops = own_crop_sets(config.calib_data, input_size, calib_images, config.verify_images,
                              config.calib_detector, config.calib_boxes, config.calib_det_family) \
            if config.calib_dataset == OWN_IMAGES else \
            make_crop_sets(config.calib_dataset, config.calib_data, input_size, calib_images, config.verify_images,
                           config.calib_split)
        reference = torch_heatmaps(model, crops.heldout)
    manifest.record("crops", {**crops.source,
                              "calibration_method": config.calib_method if "int8" in config.precisions else None})
    codec = HeatmapCodec(input_size)
    evaluate = HeldoutEvaluator(crops.heldout, reference, codec)
    if "int8" in config.precisions and crops.source["calibration_crops"] < config.calib_images:
        log.info(f"INT8 calibration uses {crops.source['calibration_crops']} crops, fewer than the "
                 f"{config.calib_images} asked: {source_label(crops.source)} hold no more")
    if "int8" in config.precisions and crops.source["split"] is not None and \
            crops.source["split"] == TEST_SPLIT[crops.source["dataset"]]:
        log.warning("INT8 is calibrated on the %s %s split, the one trt-eval scores by default: there its INT8 row "
                    "is measured on its own calibration images (optimistic); calibrate on a training split for an "
                    "honest figure", crops.source["dataset"], crops.source["split"])

    paths = {p: out / ONNX_FILES[p] for p in config.precisions}
    graphs = {}  # precision -> {"opset", "nodes", ...} of its ONNX file
    with step("onnx_fp32", f"exported {paths['fp32'].name} (FP32, simplified)"):
        graphs["fp32"] = export_onnx(prepare_for_export(model), paths["fp32"], spec, config.opset)
    low = [p for p in ("fp16", "int8") if p in paths]
    autocast = "fp16" in paths and config.fp16_budget is None  # a budget plans FP16 by groups instead
    if config.calib_study and "int8" in paths:
        with step("calib_study", "calibration study"):
            rows = calibration_study(paths["fp32"], crops.calibration, evaluate,
                                     study_choices(len(crops.calibration)))
        manifest.record("calibration_study", rows)
    if autocast or "int8" in paths:
        # AutoCast FP16 and INT8 calibration run side by side, each in a worker process (see workers.py).
        log.info("%s running in worker processes...",
                 " and ".join(_WORKER_JOBS[p] for p in low if p == "int8" or autocast))
        with tempfile.TemporaryDirectory(prefix="hrnext_workers_") as tmp:
            tmp = Path(tmp)
            jobs = {}
            if autocast:
                jobs["fp16"] = ["fp16", str(paths["fp32"]), str(tmp / "fp16.onnx")]
            if "int8" in paths:
                np.save(tmp / "calibration.npy", crops.calibration)
                jobs["int8"] = ["int8", str(paths["fp32"]), str(tmp / "calibration.npy"), str(tmp / "int8.onnx"),
                                config.calib_method]
            for precision, seconds in run_jobs(jobs, tmp).items():
                timings[f"onnx_{precision}"] = seconds
            if autocast:
                graphs["fp16"] = save_checked(onnx.load(str(tmp / "fp16.onnx")), paths["fp16"], spec, "fp16")
                log.info("converted %s (AutoCast FP16) (%.1f s)", paths["fp16"].name, timings["onnx_fp16"])
            if "int8" in paths:
                log.info("quantized %s (INT8 Q/DQ, %s calibration, %d crops) (%.1f s)", paths["int8"].name,
                         config.calib_method, len(crops.calibration), timings["onnx_int8"])
                graphs["int8"] = _finish_int8(config, manifest, paths, spec, crops, evaluate, model,
                                              onnx.load(str(tmp / "int8.onnx")), step)
    if config.fp16_budget is not None:
        with step("onnx_fp16", f"planned {paths['fp16'].name} (FP16 groups within {config.fp16_budget} px)"):
            graphs["fp16"] = _export_fp16_plan(config, manifest, paths, spec, evaluate)

    with step("verify_onnx", "checked every ONNX file with ONNX Runtime against PyTorch"):
        for precision, path in paths.items():
            check = agreement(reference, onnx_heatmaps(path, precision, crops.heldout), codec)
            manifest.add_file(path, "onnx", precision, **graphs[precision], accuracy=check)

    if builder is not None:
        _build_engines(config, builder, targets, manifest, paths, input_size, gpu, reference, crops.heldout, codec,
                       step)
        if builder == TENSORRT:
            manifest["engines"]["timing_cache"] = str(timing_cache)
    else:
        manifest.record("engines", {"built": False, "reason": engines_reason})
    manifest.record("timings_s", timings)
    manifest.write(out)
    return manifest


def _finish_int8(config: ExportConfig, manifest: Manifest, paths: dict, spec: ModelSpec, crops, evaluate, model,
                 int8_model, step) -> dict:
    """The quantized graph -> ``model_int8.onnx``: sensitivity and the budget's plan applied (if asked),
    with its calibration and plan in the metadata."""
    from hrnext_trt.models.complexity import model_complexity  # torch

    extra = {"calibration": {"method": config.calib_method, "crops": len(crops.calibration),
                             "split": crops.source["split"], "dataset": crops.source["dataset"]}}
    if config.int8_budget is not None or config.sensitivity:
        height, width = spec.input_size
        with step("int8_plan", f"measured INT8 sensitivity per {config.sensitivity_level}"
                               + (f" and chose a plan for {config.int8_budget} px" if config.int8_budget else "")):
            int8_model, plan = plan_int8(int8_model, config.sensitivity_level, config.int8_budget, evaluate,
                                         model_complexity(model, (height, width)), config.out_dir,
                                         f"{spec.arch} {height}x{width}")
        _record_plan(manifest, "int8", plan, (plan["sensitivity"], plan["chart"]), config.out_dir)
        extra["precision_plan"] = {k: plan[k] for k in ("level", "budget_px", "groups")}
    return save_checked(int8_model, paths["int8"], spec, "int8", extra)


def _export_fp16_plan(config: ExportConfig, manifest: Manifest, paths: dict, spec: ModelSpec, evaluate) -> dict:
    """``model_fp16.onnx`` as a plan: the groups that drift or overflow most in FP16 stay FP32."""
    import onnx

    model, plan = plan_fp16(onnx.load(str(paths["fp32"])), config.sensitivity_level, config.fp16_budget, evaluate,
                            config.out_dir)
    _record_plan(manifest, "fp16", plan, (plan["sensitivity"],), config.out_dir)
    return save_checked(model, paths["fp16"], spec, "fp16",
                        {"precision_plan": {k: plan[k] for k in ("level", "budget_px", "groups")}})


def _record_plan(manifest: Manifest, precision: str, plan: dict, reports: tuple, folder: Path) -> None:
    manifest.record("precision_plan", {**manifest.get("precision_plan", {}), precision: plan})
    for name in reports:
        manifest.add_file(folder / name, "report", precision)


def _engine_targets(config: ExportConfig, builder: str, gpu: dict | None) -> tuple[str, ...]:
    """Compute capabilities the engines run on: TensorRT's is the GPU present, TensorRT for RTX's are chosen."""
    if builder == TENSORRT:
        if gpu is None:
            import_pycuda()  # the GPU is there, so pycuda is what is missing: one line on how to get it
            raise HrnextError("TensorRT found no CUDA device to build for: check the NVIDIA driver (nvidia-smi)")
        return (gpu["compute_capability"],)
    return rtx_targets(config.compute_capabilities, gpu)


def _keep_log(log_path: Path) -> Path:
    """A copy of a failed build's log outside the export's staging folder, which the failure removes."""
    handle, kept = tempfile.mkstemp(prefix=f"hrnext-trt-{log_path.stem}-", suffix=".log")
    with open(handle, "wb") as f:
        f.write(log_path.read_bytes() if log_path.is_file() else b"")
    return Path(kept)


def _build_engines(config: ExportConfig, builder: str, targets: tuple[str, ...], manifest: Manifest, paths: dict,
                   input_size, gpu, reference, heldout, codec, step) -> None:
    out = config.out_dir
    timing_cache = config.timing_cache_path if builder == TENSORRT else None  # TensorRT for RTX has none
    run_reason = unavailable_reason("tensorrt", "cuda")
    if run_reason is None and gpu is None:  # a GPU pycuda does not see (CUDA_VISIBLE_DEVICES)
        run_reason = "no CUDA GPU is visible to pycuda"
    elif run_reason is None and gpu["compute_capability"] not in targets:
        run_reason = f"this GPU's compute capability {gpu['compute_capability']} is not a target"
    for precision, onnx_path in paths.items():
        engine_path, log_path = out / engine_file(precision), out / f"build_{precision}.log"
        with step(f"engine_{precision}", f"built {engine_path.name} ({TITLES[builder]}, log {log_path.name})"):
            # The FP32 engine is the accuracy reference among engines: true FP32, no TF32 rounding.
            try:
                info = build_engine(builder, onnx_path, engine_path, log_path, input_size, config.batch,
                                    config.workspace_gb, timing_cache, tf32=precision != "fp32", targets=targets)
            except BuildFailed as exc:  # the failed export's folder goes: its log, the builder's own words, stays
                raise HrnextError(f"{exc.text} (log: {_keep_log(log_path)})") from None
        manifest.add_file(log_path, "log", precision)
        build = {k: v for k, v in info.items() if k not in ("builder", "builder_version", "targets")}
        entry = manifest.add_file(engine_path, "tensorrt", precision, built_from=onnx_path.name, log=log_path.name,
                                  builder=builder, builder_version=info["builder_version"], targets=list(targets),
                                  gpu=gpu if builder == TENSORRT else None, build=build)
        if run_reason is None:
            # One activation: deserialising (and TensorRT for RTX's kernel compilation) is paid once.
            with TensorRTEngine(engine_path, manifest=manifest) as engine:
                entry["engine"] = engine.describe()  # what the engine itself declares
                entry["accuracy"] = agreement(reference, engine_heatmaps(engine, heldout), codec)
        else:
            entry["accuracy"] = f"not run: {run_reason}"
    manifest.record("engines", {"built": True, "builder": builder, "version": info["builder_version"],
                                "targets": list(targets), "timing_cache": None})


def summary(manifest: Manifest, folder: Path, evaluate_hint: bool = True) -> str:
    """The accuracy table of the export in ``folder``, its engines, and (``evaluate_hint``) the command
    that evaluates it: not for a temporary folder, gone when the user reads the command."""
    rows = [{"file": name, "precision": e["precision"], "size": e["size"], "check": e["accuracy"]}
            for name, e in manifest["artifacts"].items() if "accuracy" in e]
    lines = [format_table(rows, manifest["crops"]["heldout_crops"])]
    if "calibration_study" in manifest:
        lines += ["", format_study(manifest["calibration_study"], manifest["crops"]["heldout_crops"],
                                   source_label(manifest["crops"]))]
    for precision, plan in manifest.get("precision_plan", {}).items():
        if precision == "int8":
            lines += ["", format_sensitivity(read_sensitivity(folder / plan["sensitivity"]),
                                             manifest["crops"]["heldout_crops"])]
        lines.append(plan_line(precision, plan))
    engines = manifest["engines"]
    if engines["built"]:
        lines += ["", format_engine_table(manifest)]
    else:
        lines.append(f"engines not built: {engines['reason']}")
    if evaluate_hint:
        lines += ["", "evaluate what was made:", "  " + eval_command(manifest, folder)]
        if manifest["crops"]["dataset"] == OWN_IMAGES:  # calibrated on one's pictures: check on others of them
            lines += ["and on pictures of your own the calibration did not see (agreement with PyTorch, no labels):",
                      f"  hrnext-trt trt-eval --engines {shlex.quote(str(folder))} --dataset {OWN_IMAGES} "
                      "--data-root OTHER_PICTURES"]
    return "\n".join(lines)


def _recipe_data_root(root: str | None) -> str | None:
    """The training's validation root as a folder of this machine (absolute), or None where there is none."""
    if root is None:
        return None
    path = BUNDLED_ROOT / root[len("bundled:"):] if root.startswith("bundled:") else Path(root)
    return str(path.resolve()) if path.is_dir() else None


def eval_command(manifest: Manifest, folder: Path) -> str:
    """``hrnext-trt trt-eval`` on the model's own dataset: the calibration root if it is that dataset,
    else the root its training validated on, else the bundled sample of it."""
    dataset = manifest.model.dataset
    crops = manifest["crops"]
    if crops["dataset"] == dataset:
        root = crops["root"]
    elif manifest["source_checkpoint"].get("data_root"):  # where the model was validated in training
        root = manifest["source_checkpoint"]["data_root"]
    else:  # a bundled sample where there is one (coco, crowdpose, ochuman), else the layout's usual root
        root = BUNDLED_ROOT / f"{dataset}-mini"
        root = str(root) if root.is_dir() else f"data/{dataset}"
    # trt-eval's default batch (32) must fit the engines' profile.
    largest = manifest.batch_profile["max"] if manifest["engines"].get("built") else TRT_EVAL_BATCH
    batch = f" --batch {largest}" if largest < TRT_EVAL_BATCH else ""
    # Quoted: a path with spaces (or a shell's special characters) pastes as one argument.
    return (f"hrnext-trt trt-eval --checkpoint {shlex.quote(str(manifest['source_checkpoint']['path']))} "
            f"--engines {shlex.quote(str(folder))} --dataset {dataset} --data-root {shlex.quote(str(root))}{batch}")
