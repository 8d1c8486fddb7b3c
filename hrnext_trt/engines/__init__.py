"""The deployment runtime: TensorRT engines with their manifest checks (tensorrt, pycuda, numpy only).

Importing this package needs neither TensorRT nor a GPU; ``TensorRTEngine.activate`` does.
"""

from hrnext_trt.engines.manifest_check import (check_engine_input_shape, check_engine_runtime, verify_files,
                                              verify_folder, verify_model_file)
from hrnext_trt.engines.runtime import TensorRTEngine
from hrnext_trt.manifest import MANIFEST_NAME, load_manifest

__all__ = [
    "MANIFEST_NAME",
    "TensorRTEngine",
    "check_engine_input_shape",
    "check_engine_runtime",
    "load_manifest",
    "verify_files",
    "verify_folder",
    "verify_model_file",
]
