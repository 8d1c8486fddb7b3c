"""Crop geometry: box -> center/scale, the affine crop against the three-point construction,
its inverse, and the input normalisation."""

import cv2
import numpy as np
import pytest

from hrnext_trt.contract import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from hrnext_trt.data.files import read_image
from hrnext_trt.data.preprocess import affine_matrix, box_to_center_scale, crop_images, invert_affine, transform_points


def _three_point_affine(center, scale_w, rot_deg, out_w, out_h):
    """The crop as mmpose 0.x defines it: three matched points given to cv2.getAffineTransform."""
    rad = np.deg2rad(rot_deg)

    def rotate(p):
        return np.array([p[0] * np.cos(rad) - p[1] * np.sin(rad), p[0] * np.sin(rad) + p[1] * np.cos(rad)])

    def third(a, b):
        d = a - b
        return b + np.array([-d[1], d[0]])

    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + rotate([0.0, -scale_w / 2])
    dst[0] = [out_w / 2, out_h / 2]
    dst[1] = dst[0] + [0.0, -out_w / 2]
    src[2], dst[2] = third(src[0], src[1]), third(dst[0], dst[1])
    return cv2.getAffineTransform(src, dst)


def test_box_to_center_scale_widens_to_aspect_and_pads():
    center, scale = box_to_center_scale([[10, 20, 30, 100], [0, 0, 300, 100]], (256, 192))
    np.testing.assert_allclose(center, [[25, 70], [150, 50]])
    np.testing.assert_allclose(scale, [[75 * 1.25, 100 * 1.25], [300 * 1.25, 400 * 1.25]], rtol=1e-6)
    np.testing.assert_allclose(scale[:, 0] / scale[:, 1], 0.75, rtol=1e-6)


@pytest.mark.parametrize("rotation", [0.0, 30.0, -75.0])
def test_affine_matches_three_point_construction_and_inverts(rotation):
    center, scale = np.array([321.5, 208.25]), np.array([150.0, 200.0])
    matrix = affine_matrix(center, scale, rotation, (256, 192))
    np.testing.assert_allclose(matrix, _three_point_affine(center, 150.0, rotation, 192, 256), atol=1e-4)
    points = np.random.default_rng(0).uniform(0, 600, (20, 2))
    back = transform_points(transform_points(points, matrix), invert_affine(matrix))
    np.testing.assert_allclose(back, points, atol=1e-9)
    # The center lands in the middle of the crop.
    np.testing.assert_allclose(transform_points(center[None], matrix)[0], [96, 128], atol=1e-9)


def test_batched_matrices_equal_single_ones():
    centers = np.array([[100.0, 50.0], [20.0, 300.0]])
    scales = np.array([[90.0, 120.0], [30.0, 40.0]])
    batched = affine_matrix(centers, scales, np.array([0.0, 10.0]), (256, 192))
    for i in range(2):
        np.testing.assert_allclose(batched[i], affine_matrix(centers[i], scales[i], [0.0, 10.0][i], (256, 192)))


def test_crop_images_warps_and_normalises(data_dir):
    image = read_image(data_dir / "coco-mini" / "val2017" / "000000000785.jpg")
    centers, scales = box_to_center_scale([[280.79, 44.73, 218.7, 346.68], [600, 10, 100, 100]], (256, 192))
    crops = crop_images(image, centers, scales, (256, 192))
    assert crops.shape == (2, 3, 256, 192) and crops.dtype == np.float32
    matrix = affine_matrix(centers[0], scales[0], 0.0, (256, 192))
    expected = cv2.warpAffine(image, matrix, (192, 256), flags=cv2.INTER_LINEAR)[..., ::-1] / 255.0
    expected = ((expected - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB).transpose(2, 0, 1)
    np.testing.assert_allclose(crops[0], expected, atol=1e-5)
    # The second box runs off the image: the border is black (normalised zero).
    np.testing.assert_allclose(crops[1, :, 5, -1], -np.array(IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB, atol=1e-5)
