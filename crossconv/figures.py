"""``crossconv figures``: the PNGs of docs/figures/, drawn from the registry and the reference
(into build/figures, or docs/figures with ``--update-docs``, as ``make figures`` does).

- ``edges.png``: the Laplacian edge detection of the hand-written Conv2D/Pool2D and
  edge-detection post (its 8-neighbour kernel
  ``[[-1,-1,-1],[-1,8,-1],[-1,-1,-1]]``, no padding) on a real photograph, matplotlib's
  sample ``grace_hopper.jpg`` (shipped by the pinned matplotlib), computed by the
  reference and by every implementation of ``conv2d`` in the registry, each beside its
  difference map to the reference. Implementations that cannot run here are listed as
  n/a under the figure.
- ``deform_grid.png``: the deformable-convolution article's sampling grid (a 1x1 kernel, three offset
  groups shifting left, right and up) drawn over its 3x3x3 input.
- ``depth_bins.png``: conv2_5d's depth bins (the half-open intervals of docs/conv2_5d.md, computed by
  the reference's own ``depth_bin_masks``) of three windows of an RGB-D image: the room that
  ``crossconv.scene`` renders (floor, back wall, three boxes; every depth known exactly), so
  the bins follow the boxes' outlines.
- ``depthaware_weights.png``: depthaware_conv2d's similarity weights
  ``F = exp(-alpha*|D(centre) - D(tap)|)`` of four 7x7 windows of the same scene (a box side
  against the wall, a box's bottom edge on the floor, the receding floor, a box face), as
  ``reference.depthaware_conv2d`` forms them (one output channel per tap, a one-hot weight,
  an input of ones; the windows placed by the reference's ``conv_centres``), beside
  avg_pool2d and depthaware_avg_pool2d of the scene's RGB.
- ``crosscheck_matrix.png``: the crosscheck matrix as a heatmap, from a JSON report
  (``crossconv crosscheck --json build/crosscheck.json``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

import reference
from reference.common import conv_geometry
from reference.conv2_5d import depth_bin_masks
from reference.depthaware import conv_centres

from . import frameworks
from .cases import Case
from .cases.deform import SEED_DEFORM_OUTPUT, seed_deform_arguments
from .registry import implementations
from .scene import rgbd_scene

#: Where the figures go by default and the report the heatmap reads, relative to the current
#: directory (the CLI's --update-docs draws into the repository's docs/figures instead).
OUT = Path("build") / "figures"
REPORT = Path("build") / "crosscheck.json"
#: The edge-detection post's kernel: eight times the pixel minus its eight neighbours.
LAPLACIAN = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float64)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path, dpi: int) -> None:
    """Write ``fig`` as a PNG and release it (every figure goes through here)."""
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)


def _sample(name: str) -> str:
    from matplotlib import cbook

    return cbook.get_sample_data(name, asfileobj=False)


# ----------------------------------------------------------------------------- edges


def photograph(scale: int = 2) -> np.ndarray:
    """``grace_hopper.jpg`` as a float32 grey image ``[H/scale, W/scale]``, values 0-255
    (ITU-R 601 luma, then ``scale x scale`` block means)."""
    from matplotlib.image import imread

    rgb = imread(_sample("grace_hopper.jpg")).astype(np.float64)
    grey = rgb[..., :3] @ np.array([0.299, 0.587, 0.114])
    h, w = (s // scale * scale for s in grey.shape)
    return grey[:h, :w].reshape(h // scale, scale, w // scale, scale).mean(axis=(1, 3)).astype(np.float32)


def edge_case(image: np.ndarray) -> Case:
    """The edge-detection post's call: one grey channel, the Laplacian, no padding, stride 1,
    float32."""
    return Case("conv2d", {"input": image[None, None].astype(np.float32),
                           "weight": LAPLACIAN[None, None].astype(np.float32), "bias": None}, seed=4)


def edge_maps(image: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray | str]]:
    """The reference's edge map (float64) and each conv2d implementation's (or why n/a)."""
    case = edge_case(image)
    expected = case.call(reference.conv2d)[0, 0]
    maps: dict[str, np.ndarray | str] = {}
    for impl in implementations("conv2d"):
        reason = frameworks.implementation_status(impl)
        if reason is None:
            try:
                adapter, fn = frameworks.load(impl)
                maps[impl.name] = adapter.forward(fn, case, impl.extra)[0][0, 0]
                continue
            except Exception as error:  # noqa: BLE001 - shown as n/a, the figure still draws
                reason = f"{type(error).__name__}: {error}"
        maps[impl.name] = reason
    return expected, maps


def difference(edges: np.ndarray, expected: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(edges, dtype=np.float64) - expected)


def colour_bar_exponent(largest: float) -> int:
    """The power of ten that puts ``largest`` in [1, 10) (0 for 0 or a non-finite value)."""
    if not math.isfinite(largest) or largest <= 0:
        return 0
    return math.floor(math.log10(largest))


def draw_edges(path, image: np.ndarray | None = None) -> list[str]:
    """Draw ``edges.png``; returns notes (the implementations that were n/a)."""
    plt = _pyplot()
    image = photograph(scale=3) if image is None else image
    expected, maps = edge_maps(image)
    ran = {name: m for name, m in maps.items() if not isinstance(m, str)}
    notes = [f"{name}: n/a ({reason})" for name, reason in maps.items() if isinstance(reason, str)]
    columns = 2 + len(ran)
    fig, axes = plt.subplots(2, columns, figsize=(3.2 * columns, 7.2), squeeze=False)
    limit = np.percentile(np.abs(expected), 99)
    axes[0, 0].imshow(image, cmap="gray")
    axes[0, 0].set_title(f"grace_hopper.jpg (grey, {image.shape[0]}x{image.shape[1]})", fontsize=9)
    axes[0, 1].imshow(expected, cmap="gray", vmin=-limit, vmax=limit)
    axes[0, 1].set_title("reference (float64)", fontsize=9)
    axes[1, 0].axis("off")
    axes[1, 0].text(0, 0.5, "the Laplacian\n[[-1,-1,-1],\n [-1, 8,-1],\n [-1,-1,-1]]\n"
                    "conv2d, padding 0\n\nbottom row: |implementation\n- reference|",
                    family="monospace", fontsize=9, va="center")
    axes[1, 1].axis("off")
    for k, (name, edges) in enumerate(ran.items(), start=2):
        diff = difference(edges, expected)
        axes[0, k].imshow(edges, cmap="gray", vmin=-limit, vmax=limit)
        axes[0, k].set_title(f"{name} ({edges.dtype})", fontsize=9)
        # The map in units of a power of ten, named in the colour bar's side label:
        # matplotlib's own "1e-5" offset text sits above the bar, on the panel's title.
        exponent = colour_bar_exponent(float(diff.max()))
        shown = axes[1, k].imshow(diff / 10.0**exponent, cmap="magma", vmin=0,
                                  vmax=max(float(diff.max()) / 10.0**exponent, 1.0))
        axes[1, k].set_title(f"max |diff| = {diff.max():.2g}", fontsize=9)
        bar = fig.colorbar(shown, ax=axes[1, k], fraction=0.046)
        bar.set_label(f"|diff| / 1e{exponent}" if exponent else "|diff|", fontsize=8)
        bar.ax.tick_params(labelsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Laplacian edge detection (the hand-written Conv2D/Pool2D post's kernel) by every "
                 "conv2d implementation in the registry")
    if notes:
        fig.text(0.01, 0.01, "not drawn: " + "; ".join(notes), fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.04 if notes else 0, 1, 1))
    save(fig, path, dpi=72)
    return notes


# ----------------------------------------------------------------------------- deform grid


def sample_points(offset: np.ndarray, weight_shape, stride=1, padding=0, dilation=1, input_hw=None):
    """Sampling coordinates ``(y, x)``, each ``[N, Go, K, oh, ow]``: docs/deform.md's
    ``y = y_out*sh - ph + i*dh + dy`` (and x alike) for every tap and output."""
    n, channels, oh, ow = offset.shape
    kh, kw = weight_shape[2:]
    geometry = conv_geometry("deform_conv2d", (n, 1, *input_hw), (kh, kw), stride, padding,
                             dilation)
    off = offset.reshape(n, channels // (2 * kh * kw), kh * kw, 2, oh, ow)
    base_y = np.stack([geometry.positions(0, i) for i in range(kh) for _ in range(kw)])[:, :, None]
    base_x = np.stack([geometry.positions(1, j) for _ in range(kh) for j in range(kw)])[:, None, :]
    return base_y + off[:, :, :, 0], base_x + off[:, :, :, 1]


def draw_deform_grid(path) -> None:
    plt = _pyplot()
    x, offset, weight = seed_deform_arguments()
    ys, xs = sample_points(offset, weight.shape, input_hw=x.shape[2:])
    out = reference.deform_conv2d(x, offset, weight)
    np.testing.assert_array_equal(out, SEED_DEFORM_OUTPUT)  # the picture is of the golden case
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.2))
    grid_y, grid_x = np.meshgrid(np.arange(3), np.arange(3), indexing="ij")
    for c, ax in enumerate(axes):
        ax.imshow(x[0, c], cmap="Blues", vmin=-5, vmax=30, extent=(-0.5, 2.5, 2.5, -0.5))
        for (i, j), value in np.ndenumerate(x[0, c]):
            ax.text(j, i + 0.3, f"{value:.0f}", ha="center", fontsize=10, color="0.2")
        y, xx = ys[0, c, 0], xs[0, c, 0]
        inside = (y > -1) & (y < 3) & (xx > -1) & (xx < 3)
        ax.quiver(grid_x, grid_y, xx - grid_x, y - grid_y, angles="xy", scale_units="xy", scale=1,
                  color="tab:red", width=0.012)
        ax.scatter(grid_x, grid_y, s=40, color="black", zorder=3, label="output position")
        ax.scatter(xx[inside], y[inside], s=90, facecolors="none", edgecolors="tab:red",
                   linewidths=2, zorder=3, label="sample point")
        ax.scatter(xx[~inside], y[~inside], s=90, marker="x", color="tab:red", zorder=3,
                   label="outside: samples 0")
        dy, dx = offset[0, 2 * c, 0, 0], offset[0, 2 * c + 1, 0, 0]
        ax.set_title(f"input channel {c}, offset group {c}: (dy, dx) = ({dy:+.0f}, {dx:+.0f})",
                     fontsize=9)
        ax.set_xlim(-1.6, 3.6)
        ax.set_ylim(3.6, -1.6)
        ax.set_xticks(range(3))
        ax.set_yticks(range(3))
    axes[0].legend(loc="lower left", fontsize=7, framealpha=0.9)
    fig.suptitle("deform_conv2d with a 1x1 kernel and 3 offset groups (the deformable-convolution "
                 "article's example):\neach arrow goes from an output position to the point it "
                 "samples", fontsize=10)
    fig.tight_layout()
    save(fig, path, dpi=90)


# ----------------------------------------------------------------------------- depth bins

#: The size of the rendered RGB-D image the depth figures draw on (crossconv/scene.py).
SCENE_SIZE = (96, 128)
#: The centre pixels of the windows each depth figure details, by what they show in the
#: scene at SCENE_SIZE (tests/tool/test_figures_smoke.py checks that they show it).
BIN_WINDOWS = {"box top against the wall": (31, 25), "receding floor": (84, 40),
               "box edge against the floor": (70, 84)}
WEIGHT_WINDOWS = {"box side against the wall": (35, 71), "box bottom on the floor": (78, 66),
                  "receding floor": (84, 40), "box front face": (50, 20)}


def _mark_windows(plt, axes, windows, kernel: int) -> None:
    """Outline each ``(row0, col0)``-cornered ``kernel x kernel`` window on every axis in
    ``axes``, numbered from 1 above its top edge."""
    for n, (row0, col0) in enumerate(windows, start=1):
        for ax in axes:
            ax.add_patch(plt.Rectangle((col0 - 0.5, row0 - 0.5), kernel, kernel, fill=False,
                                       color="white", lw=1.5))
            ax.text(col0 + kernel / 2 - 0.5, row0 - 1.5, str(n), color="white", ha="center",
                    va="bottom", fontsize=9, fontweight="bold")


def _depth_panel(fig, ax, depth: np.ndarray, title: str):
    shown = ax.imshow(depth, cmap="viridis")
    ax.set_title(title, fontsize=9)
    bar = fig.colorbar(shown, ax=ax, fraction=0.046)
    bar.set_label("depth (m)", fontsize=8)
    bar.ax.tick_params(labelsize=8)


def window_bins(depth: np.ndarray, centre, kernel: int, bins: int, focal: float, pixel_size: float):
    """Bin index (-1: no bin) of every tap of the ``kernel x kernel`` window centred at
    ``centre``, from the reference's ``depth_bin_masks``; and the bin edges."""
    half = kernel // 2
    geometry = conv_geometry("conv2_5d", (1, 1, *depth.shape), (kernel, kernel), 1, half, 1)
    masks = depth_bin_masks(geometry, geometry.pad(depth[None, None]), bins, focal, pixel_size)
    index = np.full((kernel, kernel), -1)
    for i, j in geometry.taps():
        m = masks(i, j)[:, 0, centre[0], centre[1]]  # [B]
        if m.any():
            index[i, j] = int(np.argmax(m))
    d = depth[centre]
    s = d * pixel_size / focal
    edges = d + (np.arange(bins + 1) - bins / 2) * s
    return index, edges


def draw_depth_bins(path, kernel: int = 9, bins: int = 3, focal: float = 10.0,
                    pixel_size: float = 1.0) -> None:
    """Draw ``depth_bins.png``. ``focal = 10`` is not the scene camera's focal length (90
    pixels at this size): with it a 9x9 window's bins are 10% of the centre depth wide, so
    each window shows all three."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap

    rgb, depth = rgbd_scene(*SCENE_SIZE)
    rgb = rgb.transpose(1, 2, 0)
    centres = BIN_WINDOWS
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown"][:bins]
    fig, axes = plt.subplots(1, 2 + len(centres), figsize=(4 * (2 + len(centres)), 4.4))
    axes[0].imshow(rgb)
    axes[0].set_title(f"RGB: the rendered scene ({SCENE_SIZE[0]}x{SCENE_SIZE[1]})", fontsize=9)
    _depth_panel(fig, axes[1], depth, "depth: the same scene's")
    half = kernel // 2
    _mark_windows(plt, axes[:2], [(r - half, c - half) for r, c in centres.values()], kernel)
    for n, ((what, centre), ax) in enumerate(zip(centres.items(), axes[2:]), start=1):
        index, edges = window_bins(depth, centre, kernel, bins, focal, pixel_size)
        y0, x0 = centre[0] - half, centre[1] - half
        ax.imshow(rgb[max(y0, 0):y0 + kernel, max(x0, 0):x0 + kernel], alpha=0.5,
                  extent=(-0.5, kernel - 0.5, kernel - 0.5, -0.5))
        ax.imshow(np.ma.masked_less(index, 0), cmap=ListedColormap(colours), vmin=0,
                  vmax=bins - 1, alpha=0.6, extent=(-0.5, kernel - 0.5, kernel - 0.5, -0.5))
        for (i, j), b in np.ndenumerate(index):
            ax.text(j, i, "·" if b < 0 else str(b), ha="center", va="center", fontsize=8)
        edge_text = ", ".join(f"{e:.2f}" for e in edges)
        ax.set_title(f"window {n}, {what}\ncentre depth {depth[centre]:.2f} m\n"
                     f"bin edges [{edge_text}) m", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for a in axes[:2]:
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle(f"conv2_5d depth bins: B={bins}, {kernel}x{kernel} window, focal={focal:g}, "
                 f"pixel_size={pixel_size:g}; each tap's bin (· = in no bin, its input is dropped)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))  # tight_layout leaves no room for the suptitle here
    save(fig, path, dpi=90)


# ----------------------------------------------------------------------------- depth-aware weights


def similarity(depth: np.ndarray, kernel: int, alpha: float) -> np.ndarray:
    """``F [kernel, kernel, H, W]``: the similarity weight of tap ``(i, j)`` of the window
    of output ``(y, x)`` of a ``kernel x kernel`` depthaware_conv2d (stride 1, padding
    ``kernel // 2``), as ``reference.depthaware_conv2d`` itself forms it: an input of ones
    and one output channel per tap whose weight is 1 at that tap and 0 elsewhere, so
    output channel ``i*kernel + j`` is ``1 * F[tap]`` (0 for taps outside the image)."""
    height, width = depth.shape
    one_hot = np.eye(kernel * kernel).reshape(kernel * kernel, 1, kernel, kernel)
    f = reference.depthaware_conv2d(np.ones((1, 1, height, width)), depth[None, None], one_hot,
                                    padding=kernel // 2, alpha=alpha)[0]
    return f.reshape(kernel, kernel, height, width)


def window_of(depth_shape, centre, kernel: int):
    """``((y, x), (row0, col0))``: the output of the ``kernel x kernel`` depthaware_conv2d
    (stride 1, padding ``kernel // 2``) whose window is centred at the pixel ``centre``, by
    the reference's ``conv_centres``, and its window's top-left tap in the image."""
    geometry = conv_geometry("depthaware_conv2d", (1, 1, *depth_shape), (kernel, kernel), 1,
                             kernel // 2, 1)
    rows, cols = conv_centres(geometry)
    y, x = np.flatnonzero(rows == centre[0]), np.flatnonzero(cols == centre[1])
    if not (y.size and x.size):
        raise ValueError(f"window_of: no window is centred at {centre} in {depth_shape}")
    y, x = int(y[0]), int(x[0])
    return (y, x), (int(geometry.positions(0, 0)[y]), int(geometry.positions(1, 0)[x]))


def draw_depthaware_weights(path, kernel: int = 7, alpha: float = 4.0, pool: int = 7) -> None:
    """Draw ``depthaware_weights.png``: F of four windows over the scene, and a plain against
    a depth-aware average pooling of its RGB."""
    plt = _pyplot()
    rgb, depth = rgbd_scene(*SCENE_SIZE)
    f = similarity(depth, kernel, alpha)
    windows = WEIGHT_WINDOWS
    placed = {what: window_of(depth.shape, centre, kernel) for what, centre in windows.items()}
    arguments = {"kernel_size": pool, "stride": 1, "padding": pool // 2, "count_include_pad": False}
    plain = reference.avg_pool2d(rgb[None], **arguments)[0]
    aware = reference.depthaware_avg_pool2d(rgb[None], depth[None, None], alpha=alpha,
                                            **arguments)[0]
    columns = max(4, len(windows))
    fig, axes = plt.subplots(2, columns, figsize=(3.9 * columns, 7.6), squeeze=False,
                             layout="constrained")
    top, bottom = axes
    top[0].imshow(rgb.transpose(1, 2, 0))
    top[0].set_title(f"RGB: the rendered scene ({SCENE_SIZE[0]}x{SCENE_SIZE[1]})", fontsize=9)
    _depth_panel(fig, top[1], depth, "depth D")
    _mark_windows(plt, top[:2], [corner for _, corner in placed.values()], kernel)
    top[2].imshow(np.clip(plain, 0, 1).transpose(1, 2, 0))
    top[2].set_title(f"avg_pool2d of the RGB\n{pool}x{pool}, stride 1, padding {pool // 2}",
                     fontsize=9)
    top[3].imshow(np.clip(aware, 0, 1).transpose(1, 2, 0))
    top[3].set_title(f"depthaware_avg_pool2d, alpha = {alpha:g} / m: depth edges\nstay sharp, "
                     "the floor's tiles (no depth edge) blur", fontsize=9)
    for ax in top[4:]:
        ax.axis("off")
    for n, ((what, ((y, x), _)), ax) in enumerate(zip(placed.items(), bottom), start=1):
        weights = f[:, :, y, x]
        shown = ax.imshow(weights, cmap="viridis", vmin=0, vmax=1)
        for (i, j), value in np.ndenumerate(weights):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if value > 0.6 else "white")
        half = kernel // 2
        ax.add_patch(plt.Rectangle((half - 0.5, half - 0.5), 1, 1, fill=False, color="tab:red",
                                   lw=2))
        ax.set_title(f"window {n}, {what}:\nF, centre (red) at depth {depth[windows[what]]:.2f} m",
                     fontsize=9)
    bar = fig.colorbar(shown, ax=list(bottom), fraction=0.015, pad=0.01)
    bar.set_label("F = exp(-alpha |D(centre) - D(tap)|)", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"depthaware_conv2d's similarity weights F of {kernel}x{kernel} windows "
                 f"(alpha = {alpha:g} / m), as the reference forms them", fontsize=10)
    save(fig, path, dpi=90)


# ----------------------------------------------------------------------------- the matrix


def matrix_values(data: dict) -> tuple[list[str], list[str], np.ndarray, list[list[str]]]:
    """``(ops, columns, log10 worst ratio (NaN where not run), cell texts)`` of a JSON report."""
    ops, columns = list(data["matrix"]), data["columns"]
    values = np.full((len(ops), len(columns)), np.nan)
    texts = []
    for r, op in enumerate(ops):
        row = []
        for c, column in enumerate(columns):
            cell = data["matrix"][op][column]
            worst = cell["worst"]
            if cell["status"] in ("PASS", "FAIL") and worst is not None:
                worst = math.inf if worst == "inf" else float(worst)
                values[r, c] = math.log10(min(max(worst, 1e-8), 1e8))
                row.append(f"{cell['status']}\n{worst:.1g}")
            else:
                row.append(cell["status"])
        texts.append(row)
    return ops, columns, values, texts


def draw_matrix(path, data: dict) -> None:
    plt = _pyplot()
    from matplotlib.colors import TwoSlopeNorm

    ops, columns, values, texts = matrix_values(data)
    # At least 4 inches high: the colour bar's label must fit beside a one-op matrix.
    fig, ax = plt.subplots(figsize=(1.3 * len(columns) + 2.5, max(0.55 * len(ops) + 1.8, 4.0)))
    cmap = plt.get_cmap("RdYlGn_r").with_extremes(bad="white")
    shown = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto",
                      norm=TwoSlopeNorm(vcenter=0, vmin=-6, vmax=3))
    for (r, c), text in np.ndenumerate(np.array(texts, dtype=object)):
        if text == "n/a":
            ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, color="0.8"))
        ax.text(c, r, text, ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(ops)), ops, fontsize=8)
    fig.colorbar(shown, ax=ax, label="log10(worst error / tolerance)\n> 0 fails; grey n/a, white —")
    ax.set_title(f"crosscheck: {data['examples']} random cases per check, seed {data['seed']}, "
                 f"{data['seconds']:.0f} s\n{data['machine']}", fontsize=8)
    fig.tight_layout()
    save(fig, path, dpi=90)


# ----------------------------------------------------------------------------- the command


def make_figures(console, out=None, report=None) -> int:
    from .report import read_json

    out = Path(out or OUT)
    out.mkdir(parents=True, exist_ok=True)
    report = Path(report or REPORT)
    notes = draw_edges(out / "edges.png")
    for note in notes:
        console.print(f"edges.png: {note}", highlight=False, soft_wrap=True)
    draw_deform_grid(out / "deform_grid.png")
    draw_depth_bins(out / "depth_bins.png")
    draw_depthaware_weights(out / "depthaware_weights.png")
    drawn = ["edges.png", "deform_grid.png", "depth_bins.png", "depthaware_weights.png"]
    if report.exists():
        draw_matrix(out / "crosscheck_matrix.png", read_json(report))
        drawn.append("crosscheck_matrix.png")
    else:
        console.print(f"crosscheck_matrix.png: skipped, no report at {report} (run crossconv "
                      f"crosscheck --json {report} first)", highlight=False)
    console.print(f"drew {', '.join(drawn)} in {out}", highlight=False)
    return 0
