"""INT8 calibration of one FP32 export by max, ModelOpt's entropy (ONNX Runtime's 128-bin histogram)
and entropy over a finer histogram (TensorRT's entropy calibrator searches 2048 bins).

    python scripts/entropy_bins.py demo_out/engines/model.onnx --crops 48 --bins 2048

Calibrates on the bundled coco-mini training crops (the export's own crop road), judges each INT8
graph on held-out crops with Q/DQ unfused (the project's ONNX Runtime runner) against the FP32
file, and prints one row per method: calibration wall time and relative heatmap error. The finer
histogram is reached by wrapping ModelOpt's calibrator factory, which takes no bin count: a
measurement, not what the export does (export/README.md says why).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    import numpy as np
    import onnx

    import modelopt.onnx.quantization.ort_patching as ort_patching
    from hrnext_trt.export.calibration import make_crop_sets
    from hrnext_trt.export.precision import quantize_int8
    from hrnext_trt.runners.onnxruntime import OnnxRuntimeRunner, read_onnx_metadata
    from hrnext_trt.model_spec import ModelSpec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", type=Path, help="an FP32 model.onnx of hrnext-trt")
    parser.add_argument("--crops", type=int, default=48, help="calibration crops")
    parser.add_argument("--heldout", type=int, default=8, help="held-out crops")
    parser.add_argument("--bins", type=int, default=2048, help="histogram bins of the finer entropy search")
    args = parser.parse_args()

    size = ModelSpec.from_dict(read_onnx_metadata(args.onnx)).input_size
    crops = make_crop_sets("coco", None, size, args.crops, args.heldout)
    factory = ort_patching._create_calibrator_with_extra_options

    def finer(*a, **kw):
        kw["extra_options"] = {**(kw.get("extra_options") or {}), "num_bins": args.bins}
        return factory(*a, **kw)

    def heatmaps(path: Path, precision: str) -> np.ndarray:
        with OnnxRuntimeRunner(path, precision, threads=None) as runner:
            return runner.heatmap_fn()(crops.heldout)

    reference = heatmaps(args.onnx, "fp32")
    print(f"{len(crops.calibration)} calibration and {len(crops.heldout)} held-out crops of {size[0]}x{size[1]}")
    print(f"{'calibration':<16} {'seconds':>8} {'rel err':>9}")
    for label, method, wrapper in (("max", "max", factory), ("entropy-128", "entropy", factory),
                                   (f"entropy-{args.bins}", "entropy", finer)):
        ort_patching._create_calibrator_with_extra_options = wrapper
        started = time.perf_counter()
        model = quantize_int8(args.onnx, crops.calibration, method)
        seconds = time.perf_counter() - started
        path = Path(f"/tmp/entropy_bins_{label}.onnx")
        onnx.save(model, str(path))
        out = heatmaps(path, "int8")
        path.unlink()
        print(f"{label:<16} {seconds:>8.1f} {np.linalg.norm(out - reference) / np.linalg.norm(reference):>9.2%}")
    ort_patching._create_calibrator_with_extra_options = factory


if __name__ == "__main__":
    main()
