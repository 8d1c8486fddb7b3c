"""Checkpoint -> ONNX (FP32, FP16, INT8) -> TensorRT engines, with a manifest and accuracy checks.

Heavy packages (torch, onnx, onnxruntime, modelopt, tensorrt) are imported by the functions that
use them, so importing this package is cheap.
"""

from hrnext_trt.export.artifacts import export_artifacts
from hrnext_trt.export.config import ExportConfig, parse_batch, parse_input_size

__all__ = ["ExportConfig", "export_artifacts", "parse_batch", "parse_input_size"]
