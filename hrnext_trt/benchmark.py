"""The ``bench`` command's library: model-only and end-to-end latency of every backend and batch size.

Every row is timed by ``hrnext_trt.runners.timing`` (the same harness for every backend).
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from hrnext_trt.bundled import bundled_dataset_root
from hrnext_trt.compare import Row, check_backends_can_run, compare, comparison_footnotes
from hrnext_trt.contract import BACKENDS, DEFAULT_INPUT_SIZE, check_export_precisions, check_threads, resolve_device
from hrnext_trt.data import load_dataset
from hrnext_trt.errors import HrnextError
from hrnext_trt.export import ExportConfig, export_artifacts
from hrnext_trt.export.exporter import summary
from hrnext_trt.keypoints import get_meta, meta_for_joints
from hrnext_trt.pipeline import PersonBatch
from hrnext_trt.progress import progress_bar
from hrnext_trt.reports import Column, Report, check_writable
from hrnext_trt.runners import PyTorchRunner, Runner
from hrnext_trt.runners.pytorch import TorchMode
from hrnext_trt.runners.export_folder import check_outside_export, discover_artifacts, run_input_size
from hrnext_trt.runners.timing import clock_note, time_fn, time_runner

log = logging.getLogger(__name__)

E2E_FOOTNOTE = ("model: runner.infer on a fixed batch of crops. e2e: crop the batch's people from decoded images in "
                "memory (bundled coco-mini), infer, decode to image pixels; no flip test, image reading excluded. "
                "{clock}; warm-up {warmup}, {iters} timed calls; cpu ms: median process CPU time of a model call "
                "(all threads; steadier than wall time on a busy machine); speed-up = PyTorch FP32 eager p50 (its "
                "plain mode, where timed; else the first PyTorch row) / row p50 at the same batch.")


@dataclass(frozen=True)
class BenchConfig:
    model: str  # a checkpoint path or an arch name (random weights)
    arch: str | None = None  # for checkpoints that do not record their model (the paper's mmpose files)
    num_joints: int | None = None
    engines: Path | None = None  # export folder; None: export a temporary one
    backends: tuple[str, ...] = BACKENDS
    batches: tuple[int, ...] = (1, 8, 32)
    input_size: tuple[int, int] | None = None  # None: the checkpoint's, else 256x192
    dataset: str = "crowdpose"  # joints of an arch's head
    export_precisions: tuple[str, ...] = ("fp32",)  # of the temporary export
    # PyTorch rows, each a TorchMode ("fp16+channels_last+compile"); None: fp32 on the CPU, +fp16 on CUDA
    torch_precisions: tuple[str, ...] | None = None
    torch_compile: bool = False  # every PyTorch row through torch.compile (unless its mode names one)
    iters: int = 50
    warmup: int = 10
    device: str = "auto"
    threads: int | None = None
    json: Path | None = None
    progress: bool = True

    def __post_init__(self):
        if not self.batches or min(self.batches) < 1:
            raise HrnextError(f"batches needs positive batch sizes, got {','.join(map(str, self.batches))}")
        if self.iters < 1 or self.warmup < 0:
            raise HrnextError(f"iters must be >= 1 and warmup >= 0 (got {self.iters} and {self.warmup})")
        check_export_precisions(self.export_precisions, "export_precisions")
        check_threads(self.threads)
        for text in self.torch_precisions or ():
            TorchMode.parse(text)


def person_batches(input_size: tuple[int, int], batches) -> dict[int, PersonBatch]:
    """One ``PersonBatch`` per batch size, from the bundled coco-mini training people."""
    people = load_dataset("coco", bundled_dataset_root("coco-mini"), "train", boxes="gt").instances
    return {b: PersonBatch([people[i % len(people)] for i in range(b)], input_size) for b in batches}


def run_bench(config: BenchConfig) -> Report:
    """Model-only and end-to-end latency of every backend x batch; rows of unavailable backends say why."""
    check_writable(config.json, "--json", folder=False)
    check_outside_export(config.json, "--json", config.engines)
    device = resolve_device(config.device)
    artifacts = discover_artifacts(config.engines) if config.engines is not None else None
    check_backends_can_run(config.backends, device, model=True, artifacts=artifacts)
    with tempfile.TemporaryDirectory(prefix="hrnext_bench_") as tmp:
        checkpoint, input_size, timed = _bench_checkpoint(config, Path(tmp), artifacts)
        if artifacts is None:
            artifacts = []
            if set(config.backends) & {"onnxruntime", "tensorrt"}:
                artifacts = discover_artifacts(_temporary_export(config, checkpoint, input_size,
                                                                 Path(tmp) / "engines", device))
        for artifact in artifacts:  # their input size was checked with the timed model's
            artifact.check_model(*timed, f"the timed model ({config.model})")
        runners = _bench_runners(config, checkpoint, artifacts, device)
        people = person_batches(input_size, config.batches)
        rows = compare(runners, lambda runner: _bench_runner(runner, people, config), BenchRow, artifacts,
                       config.backends)
    clock = clock_note(device) + ("; end to end: host clock" if device == "cuda" else "")
    footnotes = [E2E_FOOTNOTE.format(clock=clock, warmup=config.warmup, iters=config.iters),
                 *comparison_footnotes(rows)]
    meta = {"model": config.model, "input_size": list(input_size), "batches": list(config.batches),
            "device": device, "threads": config.threads, "iters": config.iters, "warmup": config.warmup,
            "engines": str(config.engines) if config.engines else "temporary export", "machine": machine_info()}
    report = Report(f"bench: {Path(config.model).stem if Path(config.model).suffix else config.model} "
                    f"{input_size[0]}x{input_size[1]} on {device}", BENCH_COLUMNS, rows, footnotes, meta)
    if config.json is not None:
        report.write_json(config.json)
    return report


BENCH_COLUMNS = [
    Column("backend", "backend"), Column("precision", "precision"), Column("device", "device"),
    Column("batch", "batch", "d"), Column("p50_ms", "p50 ms", ".2f"), Column("p90_ms", "p90 ms", ".2f"),
    Column("p99_ms", "p99 ms", ".2f"), Column("cpu_ms", "cpu ms", ".2f"), Column("images_per_s", "img/s", ".1f"),
    Column("speedup", "speed-up", ".2f"), Column("e2e_p50_ms", "e2e p50 ms", ".2f"),
    Column("e2e_p99_ms", "e2e p99 ms", ".2f"), Column("e2e_images_per_s", "e2e img/s", ".1f"),
    Column("e2e_speedup", "e2e speed-up", ".2f"), Column("status", "status"), Column("notes", "notes"),
]


def machine_info() -> dict:
    import onnxruntime
    import torch

    return {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "python": platform.python_version()}


def _bench_checkpoint(config: BenchConfig, tmp: Path, artifacts) -> tuple[Path, tuple[int, int], tuple[str, int]]:
    """The checkpoint to time, the input size and the timed model's (arch, joints). An arch name is timed
    with random weights; a file that records no model (the paper's) as the project checkpoint of the
    model ``--arch/--joints`` or the export's manifest name. Both are written to ``tmp``."""
    import torch

    from hrnext_trt.models import (ARCHS, checkpoint_spec, load_pose_model, make_checkpoint, read_checkpoint,
                                   write_arch_checkpoint)  # torch side

    if config.model in ARCHS:
        if config.arch is not None or config.num_joints is not None:
            raise HrnextError(f"--arch and --joints are for checkpoints that do not record their model; "
                              f"{config.model} is an arch (its joints come from --dataset): drop them")
        input_size = run_input_size(config.input_size, None, artifacts or [], DEFAULT_INPUT_SIZE)
        joints = get_meta(config.dataset).num_joints
        path = write_arch_checkpoint(config.model, joints, input_size, config.dataset, tmp / f"{config.model}.pth")
        return path, input_size, (config.model, joints)
    path = Path(config.model)
    if not path.is_file():
        raise HrnextError(f"{config.model} is neither a checkpoint file nor an arch: pass a .pth file or one of "
                          f"{', '.join(ARCHS)}")
    ckpt = read_checkpoint(path)
    recorded = checkpoint_spec(ckpt)
    manifest = artifacts[0].manifest if artifacts else None
    exported = manifest.model if manifest is not None else None
    input_size = run_input_size(config.input_size, recorded.input_size, artifacts or [], DEFAULT_INPUT_SIZE)
    # Loaded now also when it records its model: a file that does not fit fails before the export.
    model = load_pose_model(ckpt, arch=config.arch, num_joints=config.num_joints, source=path, exported=exported)
    if recorded.arch is not None:
        return path, input_size, (model.arch, model.num_joints)
    dataset = exported.dataset if exported is not None and exported.dataset else \
        meta_for_joints(model.num_joints).name
    converted = tmp / path.name
    torch.save(make_checkpoint(model, input_size, dataset), converted)
    return converted, input_size, (model.arch, model.num_joints)


def _temporary_export(config: BenchConfig, checkpoint: Path, input_size, out: Path, device: str) -> Path:
    """ONNX files (and engines where TensorRT runs) of ``checkpoint`` in ``out``, by the export library."""
    log.info("bench: exporting %s to a temporary folder", checkpoint.name)
    manifest = export_artifacts(ExportConfig(
        checkpoint=checkpoint, out_dir=out, input_size=input_size, precisions=config.export_precisions,
        batch=(1, max(config.batches), max(config.batches)),
        build_engines="tensorrt" in config.backends and device == "cuda"))
    log.info("%s", summary(manifest, out, evaluate_hint=False))
    return out


def _bench_runners(config: BenchConfig, checkpoint: Path, artifacts: list, device: str) -> list[Runner]:
    runners: list[Runner] = []
    if "pytorch" in config.backends:
        texts = config.torch_precisions or (("fp32", "fp16") if device == "cuda" else ("fp32",))
        modes = [TorchMode.parse(t) for t in texts]
        if config.torch_compile:
            modes = [m if m.compile else replace(m, compile="default") for m in modes]
        runners += [PyTorchRunner.from_mode(checkpoint, m, device, config.threads) for m in modes]
    runners += [a.runner(device, config.threads) for a in artifacts if a.backend in config.backends]
    return runners


@dataclass
class BenchRow(Row):
    """One backend x precision x batch size: model-only and end-to-end latency (ms, images/s)."""

    batch: int | None = None
    status: str = "ok"  # "ok" | "unavailable" | "skipped" (batch outside an engine's profile)
    p50_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    cpu_ms: float | None = None
    images_per_s: float | None = None
    speedup: float | None = None
    e2e_p50_ms: float | None = None
    e2e_p99_ms: float | None = None
    e2e_images_per_s: float | None = None
    e2e_speedup: float | None = None
    notes: str = ""
    clock: str | None = None

    OPTIONAL = ("clock",)

    @property
    def group(self):
        return self.batch

    def compare_with(self, reference: "BenchRow") -> None:
        # Against the PyTorch FP32 eager row of the same batch size (same run, same machine state).
        self.speedup = reference.p50_ms / self.p50_ms
        self.e2e_speedup = reference.e2e_p50_ms / self.e2e_p50_ms


def _bench_runner(runner: Runner, people: dict[int, PersonBatch], config: BenchConfig) -> list[BenchRow]:
    """One row per batch size of an active runner."""
    rows = []
    notes = runner.mode.description if isinstance(runner, PyTorchRunner) else ""
    for batch, persons in progress_bar(people.items(), desc=f"bench {runner.name}", unit="batch size",
                                       disable=not config.progress):
        try:
            runner.check_batch(batch)
        except HrnextError as exc:
            rows.append(BenchRow(runner.backend, runner.precision, runner.device, batch, "skipped", notes=str(exc)))
            continue
        model = time_runner(runner, persons.crops(), iters=config.iters, warmup=config.warmup)
        infer = runner.heatmap_fn()
        e2e = time_fn(lambda: persons.run(infer), batch=batch, iters=config.iters, warmup=config.warmup)
        rows.append(BenchRow.for_runner(
            runner, batch=batch, notes=notes, p50_ms=model.median_ms, p90_ms=model.p90_ms, p95_ms=model.p95_ms,
            p99_ms=model.p99_ms, mean_ms=model.mean_ms, cpu_ms=model.cpu_median_ms, images_per_s=model.images_per_s,
            e2e_p50_ms=e2e.median_ms, e2e_p99_ms=e2e.p99_ms, e2e_images_per_s=e2e.images_per_s, clock=model.clock))
    return rows
