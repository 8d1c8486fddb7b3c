"""INT8 sensitivity by network structure: what quantizing each part of the network costs, on held-out crops.

For every group of ``groups.group_nodes`` (stem, stages, branches, blocks, DKA attention vs kernel
banks, fusions, head) two graphs are cut from the one full INT8 file (``precision_plan.restrict_int8``):
only that group quantized (its harm) and everything but that group (what keeping it in float
buys back). Each runs through ONNX Runtime with Q/DQ unfused (TensorRT's arithmetic on any CPU)
and is compared with the PyTorch FP32 heatmaps: relative heatmap error, mean keypoint distance in
pixels and the share of joints within 2 px. Rows are sorted by harm: mean keypoint distance,
then relative error (random weights give flat heatmaps whose peaks are noise; the relative
error still orders them).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hrnext_trt.data import HeatmapCodec
from hrnext_trt.export.groups import group_nodes
from hrnext_trt.export.precision_plan import (cast_fp16, choose_fp16_plan, choose_plan, quantized_nodes,
                                              restrict_int8)
from hrnext_trt.export.verify import agreement, onnx_heatmaps
from hrnext_trt.reports import json_safe

log = logging.getLogger(__name__)

SENSITIVITY_JSON = "sensitivity.json"
SENSITIVITY_PNG = "sensitivity.png"
SENSITIVITY_FP16_JSON = "sensitivity_fp16.json"


class HeldoutEvaluator:
    """Accuracy of an in-memory ONNX graph on the held-out crops, against the PyTorch reference."""

    def __init__(self, images: np.ndarray, reference: np.ndarray, codec: HeatmapCodec):
        self.images, self.reference, self.codec = images, reference, codec
        self.runs = 0

    def __call__(self, model) -> dict:
        import onnx

        with tempfile.TemporaryDirectory(prefix="hrnext_plan_") as tmp:
            path = Path(tmp) / "candidate.onnx"
            onnx.save(model, str(path))
            heatmaps = onnx_heatmaps(path, "int8", self.images)
        self.runs += 1
        if not np.isfinite(heatmaps).all():  # float16 overflow: no decodable keypoints
            return {"max_abs_err": math.inf, "rel_err": math.inf, "mean_px": math.inf, "within_2px": 0.0}
        return agreement(self.reference, heatmaps, self.codec)


def harm(row: dict) -> tuple[float, float]:
    return row["kpt_px"], row["rel_err"]


def measure_sensitivity(int8_model, groups: dict[str, list[str]], evaluate: Callable[[object], dict]) -> list[dict]:
    """One row per group, worst first: ``name``, ``nodes``, ``rel_err``, ``kpt_px``, ``within_2px`` of the
    graph with only that group quantized, and ``without`` (the same three with every group but it)."""
    every = set(quantized_nodes(int8_model))
    rows = []
    for i, (name, nodes) in enumerate(groups.items(), 1):
        only = evaluate(restrict_int8(int8_model, set(nodes)))
        rest = evaluate(restrict_int8(int8_model, every - set(nodes)))
        rows.append({"name": name, "nodes": list(nodes), **_numbers(only), "without": _numbers(rest)})
        log.info("sensitivity %d/%d %-32s only: %.3f px, rel %.2e | all but: %.3f px", i, len(groups), name,
                 only["mean_px"], only["rel_err"], rest["mean_px"])
    return sorted(rows, key=harm, reverse=True)


def _numbers(check: dict) -> dict:
    return {"rel_err": check["rel_err"], "kpt_px": check["mean_px"], "within_2px": check["within_2px"]}


def _px(value, width: int, fmt: str = ".3f") -> str:
    """A distance, or "overflow" where the graph's outputs overflowed (infinite here, null in the JSON)."""
    return f"{'overflow':>{width}}" if value is None or not math.isfinite(value) else f"{value:>{width}{fmt}}"


def format_sensitivity(rows: list[dict], crops: int) -> str:
    header = (f"{'group':<34} {'nodes':>5} {'rel err':>9} {'kpt px':>7} {'<=2 px':>7}   "
              f"{'all but it: kpt px':>18} {'<=2 px':>7}")
    lines = [f"INT8 sensitivity on {crops} held-out crops (worst first): only the group quantized | "
             "everything but the group", header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['name']:<34} {len(r['nodes']):>5} {_px(r['rel_err'], 9, '.2e')} {_px(r['kpt_px'], 7)} "
                     f"{r['within_2px']:>7.1%}   {_px(r['without']['kpt_px'], 18)} {r['without']['within_2px']:>7.1%}")
    return "\n".join(lines)


def write_sensitivity(rows: list[dict], out_dir: Path, name: str = SENSITIVITY_JSON) -> Path:
    """The rows as JSON; an overflowed graph's infinite errors are null (a bare Infinity is not JSON)."""
    path = out_dir / name
    path.write_text(json.dumps(json_safe(rows), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return path


def read_sensitivity(path: Path) -> list[dict]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def plan_line(precision: str, plan: dict) -> str:
    """One line of a plan record: how many groups stay, which moved, the held-out error reached."""
    default = precision  # int8 plans start all INT8, fp16 plans all FP16
    moved = {g: p for g, p in plan["groups"].items() if p != default}
    if plan.get("budget_px") is None:
        return f"{precision.upper()}: every group {default.upper()} (no budget; sensitivity in {plan['sensitivity']})"
    return (f"{precision.upper()} plan for {plan['budget_px']} px ({plan['level']} groups): "
            f"{len(plan['groups']) - len(moved)} of {len(plan['groups'])} groups {default.upper()}"
            + ("; " + ", ".join(f"{g} {p.upper()}" for g, p in moved.items()) if moved else "")
            + f"; held-out {_px(plan['steps'][-1]['mean_px'], 0)} px from FP32")


def plot_sensitivity(rows: list[dict], complexity: dict, path: Path, title: str) -> Path:
    """Harm per group (left, worst on top, coloured by stage) beside the MACs of each stage (right), as a PNG."""
    import matplotlib.pyplot as plt

    fig = sensitivity_figure(rows, complexity, title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sensitivity_figure(rows: list[dict], complexity: dict, title: str):
    """The figure of :func:`plot_sensitivity`."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    stages = [s["name"] for s in complexity["stages"]]
    colours = {s: plt.cm.tab10(i % 10) for i, s in enumerate(stages)}
    stage_of = [r["name"].split(".")[0] for r in rows]
    height = max(3.0, 0.22 * len(rows) + 1.2)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, height), gridspec_kw={"width_ratios": [3, 2]})
    y = np.arange(len(rows))[::-1]
    finite = [r["kpt_px"] for r in rows if math.isfinite(r["kpt_px"])]
    # An overflowed group (no decodable keypoints) is the worst there is: a hatched bar past every other.
    full = max(finite, default=0.0) * 1.15 or 1.0
    widths = [r["kpt_px"] if math.isfinite(r["kpt_px"]) else full for r in rows]
    bars = left.barh(y, widths, color=[colours.get(s, "grey") for s in stage_of])
    for bar, row in zip(bars, rows):
        if not math.isfinite(row["kpt_px"]):
            bar.set_hatch("//")
            left.text(full, bar.get_y() + bar.get_height() / 2, " overflow", va="center", ha="left", fontsize=7)
    left.set_yticks(y, [r["name"] for r in rows], fontsize=7)
    left.set_xlabel("mean keypoint distance to FP32 (px), only this group INT8")
    left.set_title("harm: INT8 sensitivity per group")
    macs = [s["macs"] / 1e9 for s in complexity["stages"]]
    right.bar(stages, macs, color=[colours[s] for s in stages])
    right.set_ylabel("GMACs per image")
    right.set_title("cost: MACs per stage")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plan_int8(int8_model, level: str, budget_px: float | None, evaluate: Callable[[object], dict],
              complexity: dict, out_dir: Path, title: str):
    """Sensitivity table (printed, ``sensitivity.json``, ``sensitivity.png``) and, with a budget, the greedy
    plan applied to ``int8_model``. Returns (the model to save, the plan record for manifest and metadata)."""
    names = [n.name for n in int8_model.graph.node]
    groups = group_nodes(quantized_nodes(int8_model), level, names)
    log.info("INT8 sensitivity: %d groups (%s level), 2 held-out runs each", len(groups), level)
    rows = measure_sensitivity(int8_model, groups, evaluate)
    write_sensitivity(rows, out_dir)
    plot_sensitivity(rows, complexity, out_dir / SENSITIVITY_PNG, title)
    record = {"level": level, "sensitivity": SENSITIVITY_JSON, "chart": SENSITIVITY_PNG, "budget_px": budget_px,
              "groups": {g: "int8" for g in groups}}
    if budget_px is None:
        return int8_model, record
    plan, steps, planned = choose_plan(int8_model, groups, [r["name"] for r in rows], evaluate, budget_px, log.info)
    record.update(groups=plan, steps=steps)
    log.info("%s", plan_line("int8", record))
    return planned, record


def plan_fp16(fp32_model, level: str, budget_px: float, evaluate: Callable[[object], dict], out_dir: Path):
    """The FP16 analogue of :func:`plan_int8`: every group alone in FP16 (``sensitivity_fp16.json``, worst
    first), then the greedy plan from all-FP16. Returns (the model to save, the plan record)."""
    names = [n.name for n in fp32_model.graph.node]
    groups = group_nodes(names, level)
    log.info("FP16 drift: %d groups (%s level), 1 held-out run each", len(groups), level)
    rows = []
    for name, nodes in groups.items():
        check = evaluate(cast_fp16(fp32_model, set(nodes)))
        rows.append({"name": name, "nodes": nodes, **_numbers(check)})
    rows.sort(key=harm, reverse=True)
    write_sensitivity(rows, out_dir, SENSITIVITY_FP16_JSON)
    plan, steps, planned = choose_fp16_plan(fp32_model, groups, [r["name"] for r in rows], evaluate, budget_px,
                                            log.info)
    record = {"level": level, "sensitivity": SENSITIVITY_FP16_JSON, "budget_px": budget_px, "groups": plan,
              "steps": steps}
    log.info("%s", plan_line("fp16", record))
    return planned, record
