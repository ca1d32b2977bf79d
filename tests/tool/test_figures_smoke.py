"""The figure functions, cheaply: their data is right and each draws a PNG (``make figures``
draws the real ones)."""

import importlib.util

import numpy as np
import pytest

from crossconv import figures
from crossconv.goldens import seed_deform_arguments

pytestmark = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                reason="matplotlib (the figures extra) is not installed")


def test_edge_maps_of_the_photograph_have_the_shape_and_differences_seed_004_gives():
    image = figures.photograph(scale=8)  # 75 x 64 of grace_hopper.jpg
    assert image.shape == (75, 64) and image.dtype == np.float32 and 0 <= image.min() < image.max() <= 255
    expected, maps = figures.edge_maps(image)
    assert expected.shape == (73, 62)  # 3x3 kernel, no padding
    assert not figures.difference(expected, expected).any()
    flat = figures.edge_maps(np.full((6, 7), 42.0, dtype=np.float32))[0]
    assert not flat.any()  # the Laplacian's weights sum to 0
    for name, edges in maps.items():
        if not isinstance(edges, str):
            assert edges.shape == expected.shape
            assert figures.difference(edges, expected).max() <= 1e-4 * np.abs(expected).max(), name


def test_the_deform_grid_is_the_seed_cases_sampling_points():
    x, offset, weight = seed_deform_arguments()
    ys, xs = figures.sample_points(offset, weight.shape, input_hw=x.shape[2:])
    rows, cols = np.meshgrid(np.arange(3), np.arange(3), indexing="ij")
    np.testing.assert_array_equal(xs[0, 0, 0], cols - 1)  # group 0 samples one to the left
    np.testing.assert_array_equal(xs[0, 1, 0], cols + 1)
    np.testing.assert_array_equal(ys[0, 2, 0], rows - 1)


def test_the_depth_bins_are_the_references_half_open_bins():
    depth = np.array([[1.0, 2.0, 1.5], [2.5, 2.0, 3.0], [0.5, 2.0, 2.4]])
    index, edges = figures.window_bins(depth, (1, 1), kernel=3, bins=3, focal=1.0, pixel_size=0.5)
    np.testing.assert_array_equal(edges, [0.5, 1.5, 2.5, 3.5])
    # 1.5 and 2.5 lie on edges: half-open puts them in the upper bin; 3.5 would be in none.
    np.testing.assert_array_equal(index, [[0, 1, 1], [2, 1, 2], [0, 1, 1]])
    rgb, d = figures.rgbd_patch(size=16)
    assert rgb.shape == (16, 16, 3) and d.shape == (16, 16) and d.min() == 1.0 and d.max() == 3.0


def test_each_figure_draws(tmp_path):
    report = {"matrix": {"conv2d": {"oracle": {"status": "PASS", "worst": 0.01},
                                    "torch": {"status": "FAIL", "worst": "inf"},
                                    "jax": {"status": "n/a", "worst": None}}},
              "columns": ["oracle", "torch", "jax"], "examples": 2, "seed": 0, "seconds": 1.0,
              "machine": "test"}
    ops, columns, values, texts = figures.matrix_values(report)
    assert values[0, 0] == pytest.approx(-2) and values[0, 1] == 8 and np.isnan(values[0, 2])
    assert texts[0][2] == "n/a"
    figures.draw_matrix(tmp_path / "m.png", report)
    figures.draw_deform_grid(tmp_path / "d.png")
    figures.draw_depth_bins(tmp_path / "b.png")
    figures.draw_edges(tmp_path / "e.png", image=figures.photograph(scale=16))
    for name in ("m", "d", "b", "e"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"

