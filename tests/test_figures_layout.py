"""The figures are legible: no text runs into another or off the canvas, and colour bars
state their scale in their label (matplotlib's offset text, e.g. "1e-5" above a bar, lands on
the panel's title)."""

import importlib.util

import numpy as np
import pytest

from crossconv import figures

pytestmark = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                reason="matplotlib (the figures extra) is not installed")

REPORT = {"matrix": {op: {"oracle": {"status": "PASS", "worst": 0.01},
                          "torch": {"status": "FAIL", "worst": "inf"},
                          "jax": {"status": "n/a", "worst": None}}
                     for op in ("conv2d", "deform_conv2d")},
          "columns": ["oracle", "torch", "jax"], "examples": 2, "seed": 0, "seconds": 1.0,
          "machine": "test machine"}


def undrawn_tick_labels(fig) -> set[int]:
    """``id``s of the labels of ticks outside their axis's view: matplotlib keeps them (with
    a position past the axis's end) but does not draw them."""
    undrawn = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            slack = 1e-9 * (high - low)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                loc = tick.get_loc()
                if loc is None or not low - slack <= loc <= high + slack:
                    undrawn |= {id(tick.label1), id(tick.label2)}
    return undrawn


def layout_problems(fig) -> list[str]:
    """Texts that touch one another, stick out of the figure, or are offset texts."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    undrawn = undrawn_tick_labels(fig)
    problems, boxes = [], []
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text().strip() or id(text) in undrawn:
            continue
        box = text.get_window_extent(renderer)
        if box.width <= 1 and box.height <= 1:  # never placed (an unused tick)
            continue
        label = repr(text.get_text()[:40])
        if any(text is axis.offsetText for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)):
            problems.append(f"offset text {label}")
        # 3 pixels of slack: a box includes the font's descent, which digits leave blank.
        if box.x0 < canvas.x0 - 3 or box.x1 > canvas.x1 + 3 or box.y0 < canvas.y0 - 3 \
                or box.y1 > canvas.y1 + 3:
            problems.append(f"{label} sticks out of the figure")
        box = box.padded(2)  # and keep 4 pixels between texts
        problems += [f"{label} touches {other}" for other, seen in boxes if box.overlaps(seen)]
        boxes.append((label, box))
    return problems


@pytest.fixture
def drawn(monkeypatch):
    """The figures the draw functions make, kept instead of written."""
    kept = []
    monkeypatch.setattr(figures, "save", lambda fig, path, dpi: kept.append(fig))
    yield kept
    figures._pyplot().close("all")


def test_every_figure_is_legible(drawn):
    figures.draw_edges("edges.png", image=figures.photograph(scale=16))
    figures.draw_deform_grid("deform_grid.png")
    figures.draw_depth_bins("depth_bins.png")
    figures.draw_depthaware_weights("depthaware_weights.png")
    figures.draw_matrix("crosscheck_matrix.png", REPORT)
    assert len(drawn) == 5
    for name, fig in zip(("edges", "deform_grid", "depth_bins", "depthaware_weights", "matrix"),
                         drawn):
        assert layout_problems(fig) == [], name


@pytest.mark.parametrize("largest, exponent", [(6.1e-5, -5), (1.6e-4, -4), (1.0, 0), (0.0, 0),
                                               (np.inf, 0), (250.0, 2)])
def test_the_colour_bar_scale_puts_the_largest_difference_in_one_to_ten(largest, exponent):
    assert figures.colour_bar_exponent(largest) == exponent
