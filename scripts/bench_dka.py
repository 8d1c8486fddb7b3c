"""PyTorch eager (grouped and static DKA) vs ONNX Runtime CPU, in ms per image, in one run.

    python scripts/bench_dka.py [--arch hrnext_s] [--batch 8] [--input-size 256x192] [--iters 5] [--opset 18]

The ONNX graph is ``prepare_for_export(model)`` exported with a dynamic batch (the TorchScript
exporter; opset 20 writes GELU as the native ``Gelu`` op, 18 as the erf chain ONNX Runtime fuses)
and slimmed with onnxslim, as the export step does. The three take turns for ``--iters`` rounds
after one warm-up each; medians. On a shared CPU compare within one run.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from hrnext_trt.models import build_pose_model, prepare_for_export


def ms_per_image(runs: dict, batch: int, iters: int) -> dict[str, tuple[float, float]]:
    """{name: (wall, process CPU) ms per image}, medians. The runs take turns, so load from other
    processes on a shared machine falls on all of them alike; with one thread the CPU time is the
    steadier figure (it leaves out time spent waiting for a core)."""
    for fn in runs.values():
        fn()  # warm-up: allocations, ORT's first-run planning
    wall = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    for _ in range(iters):
        for name, fn in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: (statistics.median(wall[name]) * 1000 / batch, statistics.median(cpu[name]) * 1000 / batch)
            for name in runs}


def export_onnx(model, x: torch.Tensor, path: Path, opset: int) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and legacy-exporter notices
        torch.onnx.export(prepare_for_export(model), (x,), str(path), input_names=["images"],
                          output_names=["heatmaps"], opset_version=opset, dynamo=False,
                          dynamic_axes={"images": {0: "batch"}, "heatmaps": {0: "batch"}})
    import onnxslim

    slim = path.with_name("model_slim.onnx")
    onnxslim.slim(str(path), str(slim))
    return slim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="hrnext_s")
    parser.add_argument("--joints", type=int, default=17)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--input-size", default="256x192")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--opset", type=int, default=18)
    args = parser.parse_args()
    height, width = (int(v) for v in args.input_size.split("x"))

    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_pose_model(args.arch, args.joints).eval()
    x = torch.randn(args.batch, 3, height, width)
    grouped, static = model.set_dka_mode("grouped"), copy.deepcopy(model).set_dka_mode("static")
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, x[:2], Path(tmp) / "model.onnx", args.opset)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"images": x.numpy()}
    with torch.inference_mode():
        results = ms_per_image({"pytorch grouped": lambda: grouped(x), "pytorch static": lambda: static(x),
                                "onnxruntime static": lambda: session.run(None, feed)}, args.batch, args.iters)
        max_diff = float(np.abs(session.run(None, feed)[0] - grouped(x).numpy()).max())

    print(f"{args.arch} {height}x{width} batch {args.batch}, {args.threads} threads, opset {args.opset}, "
          f"onnxruntime {ort.__version__}, median of {args.iters}:")
    print(f"  {'':<20} {'wall':>8}  {'CPU':>8}  (ms/image)")
    for name, (wall, cpu) in results.items():
        print(f"  {name:<20} {wall:8.1f}  {cpu:8.1f}")
    for i, what in enumerate(("wall", "CPU")):
        fastest_torch = min(results["pytorch grouped"][i], results["pytorch static"][i])
        print(f"  onnxruntime speed-up over the fastest PyTorch ({what}): "
              f"{fastest_torch / results['onnxruntime static'][i]:.2f}x")
    print(f"  max |ORT - PyTorch| = {max_diff:.1e}")


if __name__ == "__main__":
    main()
