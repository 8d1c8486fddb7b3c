"""The comparison loop that ``bench`` and ``trt-eval`` share (Polygraphy's Comparator, in small).

``compare`` owns a row's lifecycle: it activates each runner (a backend this machine cannot run
becomes an "unavailable" row with the reason, not a crash), hands the active runner to the
command's ``measure`` (which returns that runner's rows and knows only *what* it measures),
frees it, adds the "no engine" row when TensorRT was asked for and nothing can run it, and
compares every row with the PyTorch row of its group (``Row.compare_with``). Rows of FP16 / INT8
ONNX files on ONNX Runtime's CPU provider carry a flag and a note; ``comparison_footnotes``
explains them under the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

from hrnext_trt.contract import unavailable_reason
from hrnext_trt.errors import HrnextError
from hrnext_trt.runners import BackendUnavailable, Runner
from hrnext_trt.runners.export_folder import Artifact, no_engine_reason
from hrnext_trt.runners.pytorch import TorchMode

# What a comparison table says beside FP16 / INT8 ONNX rows timed on ONNX Runtime's CPU provider,
# and under the table when it has such rows.
CPU_LOW_PRECISION_NOTE = "CPU: accuracy check only; fast path is TensorRT on GPU"
CPU_LOW_PRECISION_FOOTNOTE = ("FP16 and INT8 ONNX files are made for TensorRT's kernels: ONNX Runtime's CPU provider "
                              "gains nothing dependable from them over FP32 (slower on some CPUs), so on the CPU "
                              "they answer the accuracy question only.")


@dataclass
class Row:
    """One row of a comparison: typed fields in their serialised order (``to_dict``, what the
    reports write), read by key like the JSON it becomes (``row["p50_ms"]``). Subclasses add the
    measured fields; ``OPTIONAL`` fields are left out of ``to_dict`` while None."""

    backend: str
    precision: str
    device: str

    OPTIONAL = ()
    cpu_low_precision = False  # FP16 / INT8 ONNX on ONNX Runtime's CPU provider (set by for_runner)
    plain_fp32 = False  # PyTorch FP32 eager without flags: the row others are compared with (set by for_runner)

    @classmethod
    def for_runner(cls, runner: Runner, **values) -> "Row":
        row = cls(runner.backend, runner.precision, runner.device, **values)
        row.cpu_low_precision = is_cpu_low_precision(runner)
        row.plain_fp32 = getattr(runner, "mode", None) == TorchMode()
        if row.cpu_low_precision:
            row.notes = " ".join(n for n in (CPU_LOW_PRECISION_NOTE, row.notes) if n)
        return row

    @classmethod
    def unavailable(cls, backend: str, precision: str, device: str, reason: str, runner: Runner | None = None) -> "Row":
        """The row of a backend this machine cannot run, saying why."""
        return cls(backend, precision, device, status="unavailable", notes=reason)

    @property
    def group(self):
        """Rows of one group are compared with the same PyTorch row (e.g. one batch size)."""
        return None

    def compare_with(self, reference: "Row") -> None:
        """Fill the fields that compare this row with the PyTorch ``reference`` row of its group."""

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if not (f.name in self.OPTIONAL and getattr(self, f.name) is None)}

    def __getitem__(self, key: str):
        return self.to_dict()[key]

    def get(self, key: str, default=None):
        return self.to_dict().get(key, default)


def is_cpu_low_precision(runner: Runner) -> bool:
    """FP16 / INT8 ONNX on ONNX Runtime's CPU provider: no dependable speed-up there, an accuracy check only."""
    return runner.backend == "onnxruntime" and runner.device == "cpu" and runner.precision in ("fp16", "int8")


def compare(runners: Iterable[Runner], measure: Callable[[Runner], list[Row]], row_type: type[Row],
            artifacts: list[Artifact], backends: Iterable[str], first_row_reference: bool = False) -> list[Row]:
    """Every runner's rows (``measure(active runner)``, or ``row_type.unavailable``), the "no engine"
    row, then each row compared with the PyTorch row of its group (``first_row_reference``: else with
    the group's first row measured)."""
    rows: list[Row] = []
    for runner in runners:
        try:
            runner.activate()
        except BackendUnavailable as exc:
            rows.append(row_type.unavailable(runner.backend, runner.precision, runner.device, exc.reason, runner))
            continue
        try:
            rows += measure(runner)
        finally:
            runner.deactivate()
    reason = no_engine_reason(artifacts)
    if "tensorrt" in backends and reason:
        rows.append(row_type.unavailable("tensorrt", "-", "cuda", reason))
    if not any(row.status == "ok" for row in rows):  # an explicit request that yields nothing is an error
        raise HrnextError("nothing was measured: " + "; ".join(f"{r.backend} {r.precision}: {r.notes}" for r in rows))
    # Each group's reference: its plain FP32 eager PyTorch row (bench may time several modes, in
    # any order), else its first PyTorch row.
    references: dict = {}
    torch_rows = [r for r in rows if r.backend == "pytorch" and r.status == "ok"]
    for row in sorted(torch_rows, key=lambda r: not r.plain_fp32):  # stable: the first of each kind
        references.setdefault(row.group, row)
    if first_row_reference:
        for row in rows:
            if row.status == "ok":
                references.setdefault(row.group, row)
    for row in rows:
        if row.status == "ok" and row.group in references:
            row.compare_with(references[row.group])
    return rows


def check_backends_can_run(backends: Iterable[str], device: str, model: bool, artifacts: list[Artifact] | None) -> None:
    """Fail before any work when none of the requested backends can produce a row here. ``model``:
    a PyTorch model was given; ``artifacts``: the export's files (None: an export will make them)."""
    reasons = []
    for backend in backends:
        if backend == "pytorch":
            reason = None if model else "no --checkpoint"
        elif artifacts is not None and not any(a.backend == backend for a in artifacts):
            reason = f"no {'ONNX file' if backend == 'onnxruntime' else 'engine'} in the export folder"
        else:
            reason = None
        reason = reason or unavailable_reason(backend, "cuda" if backend == "tensorrt" else device)
        if reason is None:
            return
        reasons.append(f"{backend}: {reason}")
    raise HrnextError(f"none of --backends {','.join(backends)} can run here ({'; '.join(reasons)}): install what "
                      "is missing, or choose other backends")


def comparison_footnotes(rows: list[Row]) -> list[str]:
    """What the table's flagged rows need said under it."""
    return [CPU_LOW_PRECISION_FOOTNOTE] if any(row.cpu_low_precision for row in rows) else []
