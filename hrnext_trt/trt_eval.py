"""Accuracy and latency of the PyTorch model and of every exported artifact, side by side.

Every backend runs the same pipeline (``hrnext_trt.pipeline.predict``) on the same person boxes;
only the network call differs, so an accuracy gap between rows belongs to the backend.

Latency, two numbers per row:
- model only: the runner's ``infer`` on one batch of ``batch`` real crops of the dataset, timed
  by ``hrnext_trt.runners.timing`` (warm-up excluded; host clock on the CPU, CUDA events on the GPU);
  p50 / p95 per batch, images/s = batch / p50, speed-up = PyTorch p50 / row p50.
- end to end: persons per second of the whole evaluation run (read images, crop, infer with
  flip test, decode, NMS), wall clock.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hrnext_trt.contract import BACKENDS, resolve_device, unavailable_reason
from hrnext_trt.data import PROTOCOL_BOXES, TEST_SPLIT, load_dataset
from hrnext_trt.engines import check_engine_input_shape
from hrnext_trt.errors import HrnextError
from hrnext_trt.evaluation import evaluate_results
from hrnext_trt.pipeline import iter_batches, predict
from hrnext_trt.reports import Column, Report, plot_accuracy_latency
from hrnext_trt.runners import (CPU_LOW_PRECISION_FOOTNOTE, CPU_LOW_PRECISION_NOTE, BackendUnavailable, PyTorchRunner,
                                Runner, low_precision_note)
from hrnext_trt.runners.export_folder import discover_artifacts, no_engine_reason
from hrnext_trt.runners.timing import time_runner

LATENCY_FOOTNOTE = ("latency: model-only runner.infer on one batch of {batch} real crops, {iters} timed calls after "
                    "{warmup} warm-up ({clock}); p50/p95 per batch; img/s = batch / p50; speed-up = PyTorch p50 / "
                    "row p50. e2e persons/s: the whole evaluation run (read, crop, infer{flip}, decode, NMS), "
                    "wall clock.")
METRIC_KEYS = ("AP", "AP50", "AP75", "AR", "AP_easy", "AP_medium", "AP_hard")


@dataclass(frozen=True)
class TrtEvalConfig:
    checkpoint: Path | None  # None: no PyTorch row (and no reference for delta / speed-up)
    engines: Path | None  # export folder; None: PyTorch only
    dataset: str
    data_root: Path
    split: str | None = None  # None: the dataset's test split
    boxes: str | None = None  # "gt" | "det"; None: the dataset's test protocol
    det_file: Path | None = None
    backends: tuple[str, ...] = BACKENDS
    batch: int = 32
    device: str = "auto"  # for PyTorch and ONNX Runtime; TensorRT is always CUDA
    threads: int | None = None
    flip_test: bool | None = None  # None: as the checkpoint's recipe validates (flip test unless it says not)
    iters: int = 20
    warmup: int = 3
    out: Path | None = None  # report folder: trt_eval.{json,csv,md,png}
    json: Path | None = None  # an extra copy of the JSON report
    notes: tuple[str, ...] = ()  # extra footnotes (what the numbers mean for this data)
    progress: bool = True

    def __post_init__(self):
        if self.checkpoint is None and self.engines is None:
            raise HrnextError("nothing to evaluate: pass --checkpoint and/or --engines")
        if self.batch < 1:
            raise HrnextError(f"--batch must be at least 1, got {self.batch}")
        resolve_device(self.device)


def run_trt_eval(config: TrtEvalConfig) -> Report:
    """Evaluate every backend, print nothing, write the reports when ``config.out`` / ``json`` say so."""
    device = resolve_device(config.device)
    artifacts = discover_artifacts(config.engines) if config.engines is not None else []
    model, model_input_size, recipe_flip = _load_model(config, artifacts)
    config = replace(config, flip_test=recipe_flip if config.flip_test is None else config.flip_test)
    input_size = model_input_size or (artifacts[0].input_size if artifacts else None)
    if input_size is None:
        raise HrnextError("the input size is unknown: the checkpoint does not record it and the engines folder has "
                          "no manifest; export with `hrnext-trt export-engine`")
    for artifact in artifacts:
        artifact.check_input_size(input_size, "the checkpoint" if model_input_size else artifacts[0].path.name)
        if artifact.backend == "tensorrt" and artifact.manifest is not None and "tensorrt" in config.backends:
            check_engine_input_shape(artifact.manifest, (config.batch, 3, *input_size))  # --batch inside the profile

    dataset = load_dataset(config.dataset, config.data_root, config.split or TEST_SPLIT[config.dataset],
                           boxes=config.boxes or PROTOCOL_BOXES[config.dataset], det_file=config.det_file)
    if not len(dataset):
        raise HrnextError(f"{config.dataset} {dataset.split} has no person boxes to evaluate")
    crops = latency_batch(dataset, input_size, config.batch)

    rows = []
    if "pytorch" in config.backends and model is not None:
        rows.append(_evaluate(PyTorchRunner(model, "fp32", device, threads=config.threads), None, dataset,
                              input_size, crops, config))
    for artifact in artifacts:
        if artifact.backend in config.backends:
            rows.append(_evaluate(artifact.runner(device, config.threads), artifact.path, dataset, input_size, crops,
                                  config))
    reason = no_engine_reason(artifacts)
    if "tensorrt" in config.backends and reason:
        rows.append(_unavailable_row("tensorrt", "-", "cuda", None, reason))
    _compare_with_pytorch(rows)

    clock = "CUDA events" if device == "cuda" else "host clock"
    footnotes = [LATENCY_FOOTNOTE.format(batch=config.batch, iters=config.iters, warmup=config.warmup, clock=clock,
                                         flip=" with flip test" if config.flip_test else "")]
    if any(r["notes"] == CPU_LOW_PRECISION_NOTE for r in rows):
        footnotes.append(CPU_LOW_PRECISION_FOOTNOTE)
    footnotes += list(config.notes)
    meta = {"dataset": config.dataset, "split": dataset.split, "boxes": dataset.boxes, "persons": len(dataset),
            "images": len(dataset.images), "input_size": list(input_size), "batch": config.batch, "device": device,
            "flip_test": config.flip_test, "checkpoint": str(config.checkpoint) if config.checkpoint else None,
            "engines": str(config.engines) if config.engines else None}
    report = Report(f"trt-eval: {config.dataset} {dataset.split} ({dataset.boxes} boxes, {len(dataset)} persons, "
                    f"{len(dataset.images)} images), input {input_size[0]}x{input_size[1]}, batch {config.batch}",
                    _columns(dataset.meta.eval_mode == "crowdpose"), rows, footnotes, meta)
    write_reports(report, config.out, config.json)
    return report


def write_reports(report: Report, out: Path | None, json_path: Path | None) -> dict[str, Path]:
    """trt_eval.{json,csv,md} and the accuracy-vs-latency plot in ``out``; a JSON copy at ``json_path``."""
    written = {}
    if out is not None:
        written = report.write_all(out, "trt_eval")
        meta = report.meta
        rows = [{**r, "label": f"{r['backend']} {r['precision']}{' *' if r['notes'] == CPU_LOW_PRECISION_NOTE else ''}"}
                for r in report.rows]
        caption = f"* {CPU_LOW_PRECISION_NOTE}" if any(r["label"].endswith(" *") for r in rows) else ""
        written["plot"] = plot_accuracy_latency(
            rows, Path(out) / "trt_eval.png", x="p50_ms", y="AP", label="label",
            x_label=f"model latency p50 per batch of {meta['batch']} (ms, {meta['device']})", y_label="AP",
            title=f"{meta['dataset']} {meta['split']} ({meta['boxes']} boxes): accuracy vs latency", caption=caption)
    if json_path is not None:
        written["json_copy"] = report.write_json(json_path)
    return written


def _load_model(config: TrtEvalConfig, artifacts: list):
    """The PyTorch model (None when there is no PyTorch row), the checkpoint's input size (or None) and
    whether its recipe scores with flip test (True when it does not say: the paper's protocol)."""
    if config.checkpoint is None:
        return None, None, True
    from hrnext_trt.models import checkpoint_meta, load_pose_model, read_checkpoint  # torch side

    ckpt = read_checkpoint(config.checkpoint)
    meta = checkpoint_meta(ckpt)
    size = tuple(meta["input_size"]) if meta.get("input_size") else None
    # A model trained without mirrored crops (the coco-mini demo preset) is blurred by flip test.
    flip = bool((ckpt.get("config") or {}).get("runtime", {}).get("flip_test", True))
    if "pytorch" not in config.backends:
        return None, size, flip
    model_info = (artifacts[0].manifest or {}).get("model", {}) if artifacts else {}
    # The paper's mmpose files do not record their model; the export manifest does.
    arch = None if meta.get("arch") else model_info.get("arch")
    joints = None if meta.get("num_joints") else model_info.get("num_joints")
    return load_pose_model(ckpt, arch=arch, num_joints=joints), size, flip


def latency_batch(dataset, input_size: tuple[int, int], batch: int) -> np.ndarray:
    """``batch`` real crops of the dataset (its first persons, repeated if it has fewer)."""
    crops = next(iter_batches(dataset, input_size, batch)).images
    return np.ascontiguousarray(np.resize(crops, (batch,) + crops.shape[1:]))


def _evaluate(runner: Runner, path: Path | None, dataset, input_size, crops: np.ndarray,
              config: TrtEvalConfig) -> dict:
    """One row; with ``config.out``, the backend's COCO-format results go to results_<backend>_<precision>.json."""
    reason = unavailable_reason(runner.backend, runner.device)
    if reason:
        return _unavailable_row(runner.backend, runner.precision, runner.device, path, reason)
    try:
        runner.activate()
    except BackendUnavailable as exc:
        return _unavailable_row(runner.backend, runner.precision, runner.device, path, str(exc))
    try:
        start = time.perf_counter()
        results = predict(dataset, runner.heatmap_fn(), input_size, batch_size=config.batch,
                          flip_test=config.flip_test, progress=config.progress)
        e2e_s = time.perf_counter() - start
        stats = time_runner(runner, crops, iters=config.iters, warmup=config.warmup)
    finally:
        runner.deactivate()
    metrics = evaluate_results(dataset.name, dataset.ann_file, results)
    row = _row(runner.backend, runner.precision, runner.device, path, "ok")
    if config.out is not None:
        results_path = Path(config.out) / f"results_{runner.backend}_{runner.precision}.json"
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results), encoding="utf-8")
        row["results"] = str(results_path)
    row.update({k: metrics[k] for k in METRIC_KEYS if k in metrics})
    row.update(p50_ms=stats.median_ms, p95_ms=stats.p95_ms, images_per_s=stats.images_per_s,
               e2e_persons_per_s=len(dataset) / e2e_s, e2e_s=e2e_s, latency=stats.to_dict())
    row["notes"] = low_precision_note(runner)
    return row


def _row(backend: str, precision: str, device: str, path: Path | None, status: str) -> dict:
    return {"backend": backend, "precision": precision, "device": device, "file": path.name if path else None,
            "status": status, **{k: None for k in METRIC_KEYS}, "delta_AP": None, "p50_ms": None, "p95_ms": None,
            "images_per_s": None, "speedup": None, "e2e_persons_per_s": None, "e2e_s": None, "results": None,
            "notes": ""}


def _unavailable_row(backend: str, precision: str, device: str, path: Path | None, reason: str) -> dict:
    return {**_row(backend, precision, device, path, "unavailable"), "notes": reason}


def _compare_with_pytorch(rows: list[dict]) -> None:
    ref = next((r for r in rows if r["backend"] == "pytorch" and r["status"] == "ok"), None)
    if ref is None:
        return
    for row in rows:
        if row["status"] == "ok":
            row["delta_AP"] = row["AP"] - ref["AP"]
            row["speedup"] = ref["p50_ms"] / row["p50_ms"]


def _columns(crowdpose: bool) -> list[Column]:
    metrics = [Column("AP", "AP", ".3f"), Column("AP50", "AP50", ".3f"), Column("AP75", "AP75", ".3f"),
               Column("AR", "AR", ".3f")]
    if crowdpose:
        metrics += [Column("AP_easy", "AP easy", ".3f"), Column("AP_medium", "AP med", ".3f"),
                    Column("AP_hard", "AP hard", ".3f")]
    return [Column("backend", "backend"), Column("precision", "precision"), Column("device", "device"),
            *metrics, Column("delta_AP", "dAP", "+.4f"), Column("p50_ms", "p50 ms", ".2f"),
            Column("p95_ms", "p95 ms", ".2f"), Column("images_per_s", "img/s", ".1f"),
            Column("speedup", "speed-up", ".2f"), Column("e2e_persons_per_s", "e2e persons/s", ".1f"),
            Column("status", "status"), Column("notes", "notes")]
