"""``hrnext-trt predict`` (``run.py``: files in, files out) and its Python API, ``PoseEstimator``
(``estimator.py``: images in memory in, ``FramePoses`` out)."""

from hrnext_trt.predict.estimator import PoseEstimator
from hrnext_trt.predict.poses import FramePoses
from hrnext_trt.predict.run import PredictConfig, PredictResult, run_predict
from hrnext_trt.predict.video import VideoPoses

__all__ = ["FramePoses", "PoseEstimator", "PredictConfig", "PredictResult", "VideoPoses", "run_predict"]
