"""Box -> crop geometry and the network's input normalisation, shared by training and inference.

A person box becomes a ``center`` and a ``scale`` (the crop's width and height in image pixels,
at the network's aspect ratio, padded by 1.25). The crop is the similarity transform that maps
``center`` to the middle of the input and ``scale[0]`` pixels to the input width (mmpose 0.x's
``get_affine_transform``), optionally rotated; OpenCV warps it with bilinear sampling and black
borders. Crops are normalised with ImageNet's mean and std in RGB order.
"""

from __future__ import annotations

import cv2
import numpy as np

from hrnext_trt.contract import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB

BOX_PADDING = 1.25
_MEAN_255 = np.array(IMAGENET_MEAN_RGB, dtype=np.float32) * 255
_INV_STD_255 = 1.0 / (np.array(IMAGENET_STD_RGB, dtype=np.float32) * 255)


def box_to_center_scale(box_xywh, input_size: tuple[int, int],
                        padding: float = BOX_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """Center (…, 2) and scale (…, 2) in pixels of boxes (…, 4) for an input of ``(H, W)``.

    The box is widened or heightened to the input's aspect W/H, then scaled by ``padding``.
    """
    box = np.asarray(box_xywh, dtype=np.float32)
    x, y, w, h = box[..., 0], box[..., 1], box[..., 2], box[..., 3]
    aspect = input_size[1] / input_size[0]
    center = np.stack([x + w * 0.5, y + h * 0.5], axis=-1)
    wide = w > aspect * h
    scale = np.stack([np.where(wide, w, h * aspect), np.where(wide, w / aspect, h)], axis=-1) * padding
    return center.astype(np.float32), scale.astype(np.float32)


def affine_matrix(center, scale, rotation, input_size: tuple[int, int]) -> np.ndarray:
    """Image -> crop matrices (…, 2, 3) for centers (…, 2), scales (…, 2), rotations in degrees.

    Positive rotation turns the person counter-clockwise in the crop (mmpose's convention).
    """
    center = np.asarray(center, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    height, width = input_size
    zoom = width / scale[..., 0]
    rad = np.deg2rad(np.asarray(rotation, dtype=np.float64))
    cos, sin = np.cos(rad) * zoom, np.sin(rad) * zoom
    cos, sin = np.broadcast_arrays(cos, sin, center[..., 0])[:2]
    cx, cy = center[..., 0], center[..., 1]
    matrix = np.empty(cos.shape + (2, 3))
    matrix[..., 0, 0], matrix[..., 0, 1] = cos, sin
    matrix[..., 1, 0], matrix[..., 1, 1] = -sin, cos
    matrix[..., 0, 2] = width * 0.5 - (cos * cx + sin * cy)
    matrix[..., 1, 2] = height * 0.5 - (-sin * cx + cos * cy)
    return matrix


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of affine matrices (…, 2, 3)."""
    linear_inv = np.linalg.inv(matrix[..., :2])
    offset = -np.einsum("...ij,...j->...i", linear_inv, matrix[..., 2])
    return np.concatenate([linear_inv, offset[..., None]], axis=-1)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply affine matrices (…, 2, 3) to points (…, K, 2)."""
    points = np.asarray(points, dtype=np.float64)
    return np.einsum("...kj,...ij->...ki", points, matrix[..., :2]) + matrix[..., None, :, 2]


def warp_crops(image_bgr: np.ndarray, matrices: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """uint8 crops (N, H, W, 3) of one image through matrices (N, 2, 3)."""
    height, width = input_size
    crops = np.empty((len(matrices), height, width, 3), dtype=np.uint8)
    for i, matrix in enumerate(matrices):
        cv2.warpAffine(image_bgr, matrix, (width, height), dst=crops[i], flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crops


def normalize_crops(crops_bgr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 BGR crops (N, H, W, 3) -> float32 (N, 3, H, W), RGB, ImageNet mean/std (into ``out``)."""
    n, height, width, _ = crops_bgr.shape
    if out is None:
        out = np.empty((n, 3, height, width), dtype=np.float32)
    for c in range(3):  # channel by channel: no full-size float temporaries
        np.subtract(crops_bgr[..., 2 - c], _MEAN_255[c], out=out[:, c], dtype=np.float32)
        out[:, c] *= _INV_STD_255[c]
    return out


def crop_images(image_bgr: np.ndarray, centers, scales, input_size: tuple[int, int]) -> np.ndarray:
    """Normalised network inputs float32 (N, 3, H, W) for N boxes (centers, scales) of one image."""
    matrices = affine_matrix(np.reshape(centers, (-1, 2)), np.reshape(scales, (-1, 2)), 0.0, input_size)
    return normalize_crops(warp_crops(image_bgr, matrices, input_size))
