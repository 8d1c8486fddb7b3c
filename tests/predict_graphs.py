"""Tiny real ONNX graphs for the predict tests, built with onnx.helper: person detectors of both
supported output layouts that produce known boxes, and a pose network that makes heatmaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hrnext_trt.export.metadata import set_onnx_metadata
from hrnext_trt.keypoints import CROWDPOSE
from hrnext_trt.model_spec import ModelSpec


def _save(nodes, inputs, outputs, inits, path: Path, opset: int = 17) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _input_mean_nodes(gain: float) -> tuple[list, list]:
    """``shift = gain * mean(image)``: every output depends on the input (a real run, and boxes
    that move a little when the frame changes)."""
    nodes = [helper.make_node("ReduceMean", ["image"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "gain"], ["shift"])]
    return nodes, [numpy_helper.from_array(np.array(gain, dtype=np.float32), "gain")]


def end_to_end_detector(path: Path, dets: np.ndarray, labels: np.ndarray, size=(640, 640), gain=0.0) -> Path:
    """mmdeploy/rtmlib layout: ``dets (1, N, 5)`` (x1, y1, x2, y2, score in input pixels) and
    ``labels (1, N)``; with ``gain``, the boxes (not the scores) move by gain x the input's mean."""
    dets = np.asarray(dets, dtype=np.float32)[None]
    labels = np.asarray(labels, dtype=np.int64)[None]
    nodes, inits = _input_mean_nodes(gain)
    mask = np.zeros_like(dets)
    mask[..., :4] = 1
    nodes += [helper.make_node("Mul", ["shift", "mask"], ["moved"]),
              helper.make_node("Add", ["dets_const", "moved"], ["dets"]),
              helper.make_node("Cast", ["mean"], ["mean_i"], to=TensorProto.INT64),
              helper.make_node("Mul", ["mean_i", "zero_i"], ["zero_labels"]),
              helper.make_node("Add", ["labels_const", "zero_labels"], ["labels"])]
    inits += [numpy_helper.from_array(dets, "dets_const"), numpy_helper.from_array(mask, "mask"),
              numpy_helper.from_array(labels, "labels_const"), numpy_helper.from_array(np.array(0, np.int64), "zero_i")]
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, *size])]
    outputs = [helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, dets.shape[1], 5]),
               helper.make_tensor_value_info("labels", TensorProto.INT64, [1, dets.shape[1]])]
    return _save(nodes, inputs, outputs, inits, path)


def raw_detector(path: Path, pred: np.ndarray, size=(320, 320), transposed=False) -> Path:
    """Ultralytics layout: ``(1, 4 + classes, anchors)`` (cx, cy, w, h, class scores), or its
    transpose ``(1, anchors, 4 + classes)``."""
    pred = np.asarray(pred, dtype=np.float32)
    pred = (pred.T if transposed else pred)[None]
    nodes, inits = _input_mean_nodes(0.0)
    nodes += [helper.make_node("Add", ["pred_const", "shift"], ["output0"])]
    inits += [numpy_helper.from_array(pred, "pred_const")]
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, *size])]
    outputs = [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(pred.shape))]
    return _save(nodes, inputs, outputs, inits, path)


def odd_detector(path: Path, shape=(1, 10), input_shape=(1, 3, 64, 64)) -> Path:
    """A graph of one output of ``shape`` (zeros) from an input of ``input_shape``."""
    nodes, inits = _input_mean_nodes(0.0)
    nodes += [helper.make_node("Add", ["const", "shift"], ["out"])]
    inits += [numpy_helper.from_array(np.zeros(shape, np.float32), "const")]
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, list(input_shape))]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, list(shape))]
    return _save(nodes, inputs, outputs, inits, path)


def pose_network(path: Path, input_size=(64, 48), declared_size=None) -> Path:
    """A stand-in pose network with the exporter's I/O and metadata: 4x4 average pooling, then a
    1x1 convolution to CrowdPose's 14 heatmaps (B, 14, H/4, W/4); batch dynamic. ``declared_size``
    writes another input size into the metadata (a file that lies about its input)."""
    height, width = input_size
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((CROWDPOSE.num_joints, 3, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("AveragePool", ["images"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
             helper.make_node("Conv", ["pooled", "w"], ["heatmaps"])]
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, height, width])]
    outputs = [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT,
                                             ["batch", CROWDPOSE.num_joints, height // 4, width // 4])]
    _save(nodes, inputs, outputs, [numpy_helper.from_array(weight, "w")], path)
    model = onnx.load(str(path))
    set_onnx_metadata(model, ModelSpec.of("test", CROWDPOSE.num_joints, declared_size or input_size, "crowdpose"),
                      "fp32")
    onnx.save(model, str(path))
    return path
