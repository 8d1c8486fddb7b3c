"""Checkpoint -> ONNX (FP32, FP16, INT8) -> TensorRT engines, with a manifest and accuracy checks.

Heavy packages (torch, onnx, onnxruntime, modelopt, tensorrt) are imported by the functions that
use them, so importing this package is cheap.
"""

from hrnext_trt.export.config import ExportConfig
from hrnext_trt.export.exporter import export_artifacts, summary

__all__ = ["ExportConfig", "export_artifacts", "summary"]
