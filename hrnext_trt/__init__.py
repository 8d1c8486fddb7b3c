"""hrnext-trt: HRNeXt crowd pose estimation from training to verified TensorRT deployment.

Heavy dependencies (torch, onnxruntime, tensorrt, modelopt) are imported by the modules that
need them, so ``import hrnext_trt`` works on any machine.
"""

__version__ = "0.1.0"

from hrnext_trt.errors import HrnextError  # noqa: E402,F401
