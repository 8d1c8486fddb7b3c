"""Compare two ``trt-eval`` JSON reports of the same files on two devices (GPU vs CPU, say).

    python scripts/compare_devices.py gpu/trt_eval.json cpu/trt_eval.json --max-ap-diff 0.001

Prints each backend's FP32 AP on both and exits 1 when one differs by more than the bound (the
network's FP32 arithmetic may differ by rounding across devices, the AP should not).
"""

from __future__ import annotations

import argparse
import json
import sys


def fp32_aps(path: str) -> dict[str, float]:
    rows = json.load(open(path, encoding="utf-8"))["rows"]
    return {r["backend"]: r["AP"] for r in rows if r["status"] == "ok" and r["precision"] == "fp32"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--max-ap-diff", type=float, default=1e-3)
    args = parser.parse_args()
    first, second = fp32_aps(args.first), fp32_aps(args.second)
    common = sorted(set(first) & set(second))
    if not common:
        print(f"no FP32 backend measured in both {args.first} and {args.second}")
        return 1
    worst = 0.0
    for backend in common:
        diff = abs(first[backend] - second[backend])
        worst = max(worst, diff)
        print(f"{backend:12s} fp32 AP {first[backend]:.4f} vs {second[backend]:.4f}  diff {diff:.4f}")
    print(f"largest difference {worst:.4f} (bound {args.max_ap_diff})")
    return 0 if worst <= args.max_ap_diff else 1


if __name__ == "__main__":
    sys.exit(main())
