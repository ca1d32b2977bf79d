"""The figure functions, cheaply: their data is right and each draws a PNG (``make figures``
draws the real ones)."""

import importlib.util

import numpy as np
import pytest

from crossconv import figures, scene
from crossconv.cases.deform import seed_deform_arguments

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


def test_the_similarity_weights_are_the_formula_at_the_windows_the_reference_centres():
    depth = np.array([[1.0, 2.0, 1.5, 0.5], [2.5, 2.0, 3.0, 1.0], [0.5, 2.0, 2.4, 4.0]])
    alpha = 0.7
    f = figures.similarity(depth, kernel=3, alpha=alpha)
    assert f.shape == (3, 3, 3, 4)
    for (r, c), centre in np.ndenumerate(depth):
        (y, x), corner = figures.window_of(depth.shape, (r, c), kernel=3)
        assert (y, x) == (r, c) and corner == (r - 1, c - 1)
        for i, j in np.ndindex(3, 3):
            tr, tc = r - 1 + i, c - 1 + j
            inside = 0 <= tr < 3 and 0 <= tc < 4
            expected = np.exp(-alpha * abs(centre - depth[tr, tc])) if inside else 0.0
            assert f[i, j, y, x] == pytest.approx(expected, rel=1e-12, abs=0), (r, c, i, j)
    assert np.all(figures.similarity(depth, kernel=3, alpha=0.0)[:, :, 1, 1:3] == 1.0)


def test_the_weight_figures_windows_show_what_their_titles_and_docs_say():
    rgb, depth = figures.rgbd_scene(*figures.SCENE_SIZE)
    f = figures.similarity(depth, kernel=7, alpha=4.0)

    def window(name):
        (y, x), (r0, c0) = figures.window_of(depth.shape, figures.WEIGHT_WINDOWS[name], 7)
        return f[:, :, y, x], rgb[:, r0:r0 + 7, c0:c0 + 7], depth[r0:r0 + 7, c0:c0 + 7]

    weights, _, d = window("box side against the wall")
    assert weights[:, 0].max() < 0.01 and (d[:, 0] == scene.WALL_Z).all()  # the wall drops out
    assert (weights[:, 3:] == 1).all()
    weights, colours, _ = window("box bottom on the floor")
    assert weights.min() > 0.7 and np.ptp(colours[:, :, 3], axis=1).max() > 0.15  # colour, not depth
    weights, _, d = window("receding floor")
    assert (np.diff(d[:, 3]) < 0).all() and weights[3].min() == 1 and weights[[0, 6]].max() < 0.8
    assert (window("box front face")[0] == 1).all()
    bins, _ = figures.window_bins(depth, figures.BIN_WINDOWS["box edge against the floor"],
                                  kernel=9, bins=3, focal=10.0, pixel_size=1.0)
    assert (bins[:4, -3:] == -1).all() and (bins[:, :6] == 1).all()  # the floor behind: no bin


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
    figures.draw_depthaware_weights(tmp_path / "w.png")
    figures.draw_edges(tmp_path / "e.png", image=figures.photograph(scale=16))
    for name in ("m", "d", "b", "w", "e"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"

