"""Time a full export (FP32 + FP16 + INT8, engines where possible) of randomly initialised models.

    python scripts/bench_export.py hrnext_s:256x192 hrnext_b:384x288 --out /tmp/bench_export

Prints, per model, the wall time and CPU time of every export step and the size of every file.
Random weights export exactly as trained ones do (the graph is the same), so the timings and
sizes hold for the published checkpoints; the accuracy columns do not.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path


def cpu_seconds() -> float:
    # FP16 and INT8 run in worker processes: their CPU time is the children's.
    return sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage,
                                                    (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))


def main() -> None:
    from hrnext_trt.cli import configure_logging
    from hrnext_trt.cli.params import parse_input_size
    from hrnext_trt.export import ExportConfig, export_artifacts
    from hrnext_trt.models import write_arch_checkpoint

    configure_logging()  # the export's step lines, as the CLI shows them

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", metavar="ARCH:HxW")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--calib-images", type=int, default=512)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for spec in args.models:
        arch, size = spec.split(":")
        input_size = parse_input_size(size)
        checkpoint = write_arch_checkpoint(arch, 14, input_size, "crowdpose", args.out / f"{arch}_random.pth")
        wall, cpu = time.perf_counter(), cpu_seconds()
        manifest = export_artifacts(ExportConfig(checkpoint=checkpoint, out_dir=args.out / arch,
                                                 precisions=("fp32", "fp16", "int8"),
                                                 calib_images=args.calib_images))
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        steps = ", ".join(f"{k} {v:.0f} s" for k, v in manifest["timings_s"].items())
        sizes = ", ".join(f"{k} {e['size'] / 1e6:.1f} MB" for k, e in manifest["artifacts"].items())
        print(f"\n{arch} {size}: total {wall:.0f} s wall, {cpu:.0f} s CPU (with its workers)\n  steps: {steps}\n"
              f"  files: {sizes}\n  model.onnx nodes: {manifest['artifacts']['model.onnx']['traced_nodes']} traced, "
              f"{manifest['artifacts']['model.onnx']['nodes']} after onnxslim")


if __name__ == "__main__":
    main()
