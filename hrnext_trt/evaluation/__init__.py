"""Keypoint evaluation (pycocotools / xtcocotools, MPII PCKh, PoseTrack poseval AP) and OKS-NMS; numpy only."""

from hrnext_trt.evaluation.metrics import (METRIC_NAMES, evaluate_results, format_metric, metric_in_percent,
                                            primary_metric)
from hrnext_trt.evaluation.nms import oks_matrix, oks_nms

__all__ = ["METRIC_NAMES", "evaluate_results", "format_metric", "metric_in_percent", "primary_metric", "oks_matrix",
           "oks_nms"]
