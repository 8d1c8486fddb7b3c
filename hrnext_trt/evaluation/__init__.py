"""Keypoint evaluation (pycocotools / xtcocotools) and OKS-NMS; numpy only."""

from hrnext_trt.evaluation.metrics import evaluate_results
from hrnext_trt.evaluation.nms import oks_matrix, oks_nms

__all__ = ["evaluate_results", "oks_matrix", "oks_nms"]
