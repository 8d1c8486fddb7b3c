"""Compare two ``trt-eval`` JSON reports of the same files on two devices (GPU vs CPU, say).

    python scripts/compare_devices.py gpu/trt_eval.json cpu/trt_eval.json --max-ap-diff 0.001

Prints each backend's FP32 headline metric (the report's own: AP, MPII's PCKh Mean, PoseTrack's
mAP, OKS on one's own pictures) on both and exits 1 when one differs by more than the bound, in
that metric's units (the network's FP32 arithmetic may differ by rounding across devices, the
score should not). Reports of different evaluations (dataset, split, boxes, people, input size,
metric) are refused with exit 2: their difference would say nothing about the devices.
"""

from __future__ import annotations

import argparse
import json
import sys

# What must be equal for two reports to be of the same evaluation (paths may differ between machines).
SAME = ("dataset", "split", "boxes", "persons", "images", "input_size", "metric")


def read_report(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: cannot read the trt-eval report {path}: {exc}")
    if not isinstance(report, dict) or not isinstance(report.get("rows"), list):
        raise SystemExit(f"error: {path} is not a trt-eval JSON report (no rows): pass trt_eval.json")
    return report


def fp32_scores(report: dict) -> dict[str, float | None]:
    """Each backend's FP32 headline score (None where the report has no score for it)."""
    metric = report.get("meta", {}).get("metric", "AP")
    key = "Mean_at_0_1" if metric == "Mean@0.1" else metric
    return {r["backend"]: r.get(key) for r in report["rows"]
            if r.get("status") == "ok" and r.get("precision") == "fp32"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--max-ap-diff", type=float, default=1e-3,
                        help="largest difference allowed, in the headline metric's units")
    args = parser.parse_args()
    reports = read_report(args.first), read_report(args.second)
    metas = [r.get("meta", {}) for r in reports]
    differ = [f"{k} {metas[0].get(k)!r} vs {metas[1].get(k)!r}" for k in SAME if metas[0].get(k) != metas[1].get(k)]
    if differ:
        print(f"error: {args.first} and {args.second} are of different evaluations ({'; '.join(differ)}): compare "
              "two devices' reports of the same trt-eval command", file=sys.stderr)
        return 2
    metric = metas[0].get("metric", "AP")
    first, second = (fp32_scores(r) for r in reports)
    common = sorted(b for b in set(first) & set(second) if first[b] is not None and second[b] is not None)
    if not common:
        print(f"no FP32 backend scored in both {args.first} and {args.second}")
        return 1
    worst = 0.0
    for backend in common:
        diff = abs(first[backend] - second[backend])
        worst = max(worst, diff)
        print(f"{backend:12s} fp32 {metric} {first[backend]:.4f} vs {second[backend]:.4f}  diff {diff:.4f}")
    print(f"largest difference {worst:.4f} (bound {args.max_ap_diff})")
    return 0 if worst <= args.max_ap_diff else 1


if __name__ == "__main__":
    sys.exit(main())
