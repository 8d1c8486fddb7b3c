"""Checkpoint -> ONNX (FP32, FP16, INT8) -> TensorRT engines, with a manifest and accuracy checks.

Heavy packages (torch, onnx, onnxruntime, modelopt, tensorrt) are imported by the functions that
use them, so importing this package is cheap.
"""

from hrnext_trt.contract import parse_input_size
from hrnext_trt.export.config import ExportConfig, parse_batch
from hrnext_trt.export.exporter import export_artifacts, summary

__all__ = ["ExportConfig", "export_artifacts", "parse_batch", "parse_input_size", "summary"]
