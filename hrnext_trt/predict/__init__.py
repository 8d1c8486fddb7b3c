"""``hrnext-trt predict``: poses on any image, folder, video or camera (see ``run.py``)."""

from hrnext_trt.predict.run import PredictConfig, PredictResult, run_predict

__all__ = ["PredictConfig", "PredictResult", "run_predict"]
