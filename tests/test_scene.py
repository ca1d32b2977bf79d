"""The rendered RGB-D scene of the depth figures: every depth is where the camera model puts
it (box faces at their distance, the floor's depth by its row, the wall behind)."""

import math

import numpy as np
import pytest

from crossconv import scene


@pytest.fixture(scope="module", params=[(96, 128), (45, 61)], ids=["figure-size", "odd-size"])
def rendered(request):
    height, width = request.param
    return height, width, *scene.rgbd_scene(height, width)


def test_shapes_ranges_and_determinism(rendered):
    height, width, rgb, depth = rendered
    assert rgb.shape == (3, height, width) and depth.shape == (height, width)
    assert rgb.dtype == depth.dtype == np.float64
    assert 0 <= rgb.min() and rgb.max() <= 1 and rgb.std() > 0.05  # an image, not a flat fill
    assert np.isfinite(depth).all() and depth.min() > 0 and depth.max() == scene.WALL_Z
    again_rgb, again_depth = scene.rgbd_scene(height, width)
    assert np.array_equal(rgb, again_rgb) and np.array_equal(depth, again_depth)


def _pixel(point, height, width):
    v, u = scene.project(point, height, width)
    return math.floor(v), math.floor(u)


def test_a_box_front_face_is_at_its_distance_and_shaded_by_its_normal(rendered):
    height, width, rgb, depth = rendered
    front = np.array([0.0, 0.0, -1.0])  # facing the camera
    for (x0, x1, y0, y1, z0, _), colour in scene.BOXES:
        row, col = _pixel(((x0 + x1) / 2, (y0 + y1) / 2, z0), height, width)
        assert depth[row, col] == z0
        shade = scene.AMBIENT + (1 - scene.AMBIENT) * max(front @ scene.LIGHT, 0.0)
        np.testing.assert_allclose(rgb[:, row, col], np.array(colour) * shade, rtol=1e-12)


def test_the_floor_depth_grows_with_its_distance_from_the_bottom_row(rendered):
    height, width, _, depth = rendered
    f, cy, _ = scene.intrinsics(height, width)
    col = width - 1  # right of every box
    horizon = scene.FLOOR_Y * f / scene.WALL_Z + cy  # where the floor meets the wall
    rows = np.arange(math.ceil(horizon), height)
    np.testing.assert_allclose(depth[rows, col], scene.FLOOR_Y * f / (rows + 0.5 - cy), rtol=1e-12)
    assert np.all(np.diff(depth[rows, col]) < 0)  # nearer towards the bottom of the image
    assert np.all(depth[: math.floor(horizon), col] == scene.WALL_Z)


def test_a_box_top_face_is_the_plane_of_its_top(rendered):
    height, width, _, depth = rendered
    (x0, x1, y0, _, z0, z1), _ = scene.BOXES[2]  # the nearest box: its top is in view
    row, col = _pixel(((x0 + x1) / 2, y0, (z0 + z1) / 2), height, width)
    f, cy, _ = scene.intrinsics(height, width)
    assert depth[row, col] == pytest.approx(y0 * f / (row + 0.5 - cy), rel=1e-12)
    assert z0 <= depth[row, col] <= z1


@pytest.mark.parametrize("size", [(0, 5), (5, -1), (4.0, 5), (True, 5)])
def test_bad_sizes_are_rejected(size):
    with pytest.raises(ValueError, match="height and width"):
        scene.rgbd_scene(*size)
