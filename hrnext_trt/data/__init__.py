"""Datasets, crop geometry, augmentation and the heatmap codec (numpy and OpenCV only).

``torch_dataset`` (the PyTorch ``Dataset`` for training) is the one module here that imports
torch; it is never imported by this package's ``__init__``.
"""

from hrnext_trt.data.codec import HeatmapCodec, flip_back
from hrnext_trt.data.datasets import PROTOCOL_BOXES, TEST_SPLIT, ImageInfo, Instance, PoseDataset, load_dataset
from hrnext_trt.data.files import read_image, read_json
from hrnext_trt.data.preprocess import box_to_center_scale, crop_images

__all__ = [
    "HeatmapCodec", "flip_back", "PROTOCOL_BOXES", "TEST_SPLIT", "ImageInfo", "Instance", "PoseDataset", "load_dataset",
    "read_image", "read_json", "box_to_center_scale", "crop_images",
]
