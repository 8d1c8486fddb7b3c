"""The deployment runtime: engines of TensorRT or TensorRT for RTX with their manifest checks
(the builder's module, pycuda, numpy only).

Importing this package needs neither a builder nor a GPU; ``TensorRTEngine.activate`` does.
"""

from hrnext_trt.engines.manifest_check import (EngineNotRunnableHere, check_engine_builder, check_engine_gpu,
                                               check_engine_input_shape, verify_files, verify_folder, verify_model_file)
from hrnext_trt.engines.runtime import TensorRTEngine
from hrnext_trt.manifest import MANIFEST_NAME, load_manifest

__all__ = [
    "EngineNotRunnableHere",
    "MANIFEST_NAME",
    "TensorRTEngine",
    "check_engine_builder",
    "check_engine_gpu",
    "check_engine_input_shape",
    "load_manifest",
    "verify_files",
    "verify_folder",
    "verify_model_file",
]
