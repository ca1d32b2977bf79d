"""Cases of ``conv2_5d`` (docs/conv2_5d.md)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import reference

from . import Boundary, Case, Golden, common

NAN, INF = np.nan, np.inf

#: The options that keep each argument at its default (crossconv.strategy_options).
PINS = {
    "conv2_5d": {"bias": common.PIN_BIAS, "stride": common.PIN_STRIDE, "padding": common.PIN_PADDING,
                 "dilation": common.PIN_DILATION, "focal": {"focal": 1.0},
                 "pixel_size": {"pixel_size": 1.0}},
}


# ----------------------------------------------------------------------------- conv2_5d

FOCALS = (0.5, 1.0, 2.0, 4.0)
PIXEL_SIZES = (0.5, 1.0, 2.0)


@st.composite
def conv2_5d_cases(draw, dtypes=common.DTYPES, max_batch=7, max_channels=2, max_out_channels=2,
                   max_bins=7, bins_equal_kernel=False, max_kernel=7, max_stride=2,
                   max_dilation=2, max_padding=3, max_extra=3, max_out_size=159, square=False,
                   square_kernel=False, bias=None, focal=None, pixel_size=None, nonfinite=True,
                   image_like=False, large=common.LARGE):
    """Calls of ``conv2_5d``.

    Depth is drawn on a grid of quarters (including 0 and negatives) with power-of-two
    ``focal`` and ``pixel_size``, so taps fall exactly on bin edges often, or uniformly in
    ``[0.5, 3]``; padding is at most ``(k//2) * dilation`` so some window centres are
    inside the image. ``bins_equal_kernel``: B = kh, as the paper and the 2.5D tutorial
    use. ``focal`` / ``pixel_size``: None draws them from a few powers of two, a number
    fixes them. ``nonfinite``: NaN/Inf depth and input cells (the first window's centre
    stays finite).
    """
    dtype = draw(st.sampled_from(dtypes))
    kernel_limit = min(max_kernel, max_bins) if bins_equal_kernel else max_kernel
    stress = common.tier(draw, large, ("batch" if max_batch > common.SMALL_BATCH else "",
                                       "size" if max_out_size > 32 else "",
                                       "kernel" if kernel_limit >= common.SMALL_KERNEL + 2 else "",
                                       "bins" if max_bins > 3 and not bins_equal_kernel else ""))
    n = common.draw_batch(draw, stress, max_batch)
    c = draw(st.integers(min(3, max_channels) if image_like else 1, max_channels))
    o = draw(st.integers(1, max_out_channels))
    kernel = common.draw_kernel(draw, stress, kernel_limit, square_kernel, odd=True,
                                low=3 if image_like else 1)
    if bins_equal_kernel:
        bins = kernel[0]
    elif stress == "bins":
        bins = draw(st.integers(4, max_bins))
    else:
        bins = draw(st.integers(1, min(3, max_bins)))
    stride, dilation, _ = common.draw_window(draw, kernel, max_stride, max_dilation, 0, square)
    limits = [min(max_padding, (k // 2) * d) for k, d in zip(kernel, dilation)]
    if square:
        pad = (draw(st.integers(0, min(limits))),) * 2
    else:
        pad = tuple(draw(st.integers(0, limit)) for limit in limits)
    centre = tuple((k // 2) * d - p for k, d, p in zip(kernel, dilation, pad))
    h, w = common.draw_sizes(draw, kernel, dilation, pad, stride, max_extra,
                             common.draw_long_axis(draw, stress, max_out_size), first_read=centre)
    focal = draw(st.sampled_from(FOCALS)) if focal is None else float(focal)
    pixel_size = draw(st.sampled_from(PIXEL_SIZES)) if pixel_size is None else float(pixel_size)
    seed = draw(common.SEED)
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        depth = rng.integers(-1, 16, (n, 1, h, w)) * 0.25
    else:
        depth = rng.uniform(0.5, 3.0, (n, 1, h, w))
    # The first window's centre has a positive depth: its middle bin is open.
    depth[:, :, centre[0], centre[1]] = 1.5
    shape = (n, c, h, w)
    tensors = common.cast(
        dtype,
        input=common.pixels(rng, shape) if image_like else rng.standard_normal(shape),
        depth=depth,
        weight=common.weights(rng, (bins, o, c, *kernel), image_like, c * kernel[0] * kernel[1]),
        bias=rng.standard_normal(o) if common.draw_optional(draw, bias) else None,
    )
    params = dict(**common.window_params(draw, stride, pad, dilation, square), focal=focal,
                  pixel_size=pixel_size)
    if nonfinite and common.some_draws(draw):
        common.sprinkle_nonfinite(rng, tensors["input"])
        common.sprinkle_nonfinite(rng, tensors["depth"])[:, :, centre[0], centre[1]] = 1.5
    return Case("conv2_5d", tensors, params, seed)


# ----------------------------------------------------------------------------- boundary


def _conv2_5d(name, seed, depth, bins, channels=(1, 2), kernel=(3, 3), bias=True, needs=None,
              batch=1, **params):
    """``depth`` ``[H, W]`` (every sample); bins, (C, O) and the kernel size as given."""
    rng = np.random.default_rng(seed)
    h, w = depth.shape
    c, o = channels
    tensors = {
        "input": rng.standard_normal((batch, c, h, w)),
        "depth": np.repeat(np.asarray(depth, dtype=np.float64)[None, None], batch, axis=0),
        "weight": rng.standard_normal((bins, o, c, *kernel)),
        "bias": rng.standard_normal(o) if bias else None,
    }
    params = {"stride": 1, "padding": 1, "dilation": 1, "focal": 1.0, "pixel_size": 0.5, **params}
    return Boundary(name, Case("conv2_5d", tensors, params, seed), needs or {})


# Depths on a grid of quarters around 2: with focal 1 and pixel_size 0.5 a centre depth
# of 2 gives s = 1, so for B = 3 the edges are 0.5, 1.5, 2.5, 3.5 and for B = 2 they are
# 1, 2, 3: many taps lie exactly on an edge.
EDGE_DEPTHS = np.array([[2.0, 1.5, 2.5, 3.5, 0.5],
                        [1.0, 2.0, 3.0, 2.0, 1.5],
                        [2.5, 0.5, 2.0, 1.0, 3.0],
                        [3.5, 2.0, 1.5, 2.5, 2.0]])


def conv2_5d_boundary() -> list[Boundary]:
    closed = EDGE_DEPTHS.copy()
    closed[1, 1], closed[2, 3] = 0.0, -1.0  # two window centres open no bin
    nonfinite_depth = EDGE_DEPTHS.copy()
    nonfinite_depth[1, 1], nonfinite_depth[2, 2], nonfinite_depth[0, 3] = NAN, INF, NAN
    nan_input = _conv2_5d("NaN and inf input cells", 147, EDGE_DEPTHS, 3,
                          needs={"nonfinite": True})
    nan_input.case.tensors["input"][0, 0, 1, 2] = NAN
    nan_input.case.tensors["input"][0, 0, 3, 0] = INF
    return [
        _conv2_5d("centre depth 0 and negative: those windows give the bias", 140, closed, 3),
        _conv2_5d("odd bins (B=3), taps exactly on bin edges (half-open)", 141, EDGE_DEPTHS, 3),
        _conv2_5d("one bin (B=1)", 142, EDGE_DEPTHS, 1),
        _conv2_5d("even bins (B=2): the centre lies on edge B/2, in bin B/2", 143, EDGE_DEPTHS, 2),
        _conv2_5d("constant depth, no padding: only the middle bin opens", 145,
                  np.full((4, 5), 1.75), 3, padding=0, focal=2.0, pixel_size=1.0),
        _conv2_5d("NaN and inf depths, at window centres and off them", 146, nonfinite_depth, 3,
                  needs={"nonfinite": True}),
        nan_input,
        _conv2_5d("a batch of 3", 148, EDGE_DEPTHS, 3, batch=3),
        _conv2_5d("an output row of 33: one past a 32-wide tile", 149,
                  np.tile(EDGE_DEPTHS[:3], (1, 7))[:, :33], 3, kernel=(3, 1), padding=(1, 0)),
        _conv2_5d("five bins and a 5x5 kernel (B = kernel size)", 144, np.tile(EDGE_DEPTHS, (2, 2)),
                  5, kernel=(5, 5), padding=2),
    ]


def conv2_5d_needs(case: Case) -> dict:
    """The strategy options a conv2_5d configuration needs beyond the shared ones."""
    weight, params = case.tensors["weight"], case.params
    needs = {"max_bins": weight.shape[0], "focal": float(params.get("focal", 1.0)),
             "pixel_size": float(params.get("pixel_size", 1.0))}
    if weight.shape[0] != weight.shape[-2]:
        needs["bins_equal_kernel"] = False
    return needs


# ----------------------------------------------------------------------------- golden


def _half_open_bins() -> Golden:
    """Worked by hand: centre depth 2, focal 1, pixel_size 0.5 -> s = 1, bins
    [0.5, 1.5), [1.5, 2.5), [2.5, 3.5). Taps at depths 1, 2, 1.5 fall in bins 0, 1, 1
    (1.5 is on the edge: half-open puts it in bin 1; closed intervals would count it in
    bin 0 as well, giving 1414)."""
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    depth = np.array([1.0, 2.0, 1.5]).reshape(1, 1, 1, 3)
    weight = np.array([[(l + 1) * 100 + j for j in range(3)] for l in range(3)],
                      dtype=np.float64).reshape(3, 1, 1, 1, 3)
    case = Case("conv2_5d", {"input": x, "depth": depth, "weight": weight, "bias": None},
                {"focal": 1.0, "pixel_size": 0.5}, seed=25)
    expected = np.array([[[[100 * 1 + 201 * 2 + 202 * 3]]]], dtype=np.float64)
    return Golden("half-open bins", "by hand (docs/conv2_5d.md bins)", case, expected)


def _constant_depth() -> Golden:
    """Constant positive depth opens only the middle bin: conv2d with weight[(B-1)//2]."""
    rng = np.random.default_rng(3)
    x, weight = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((3, 4, 3, 3, 3))
    depth = np.full((2, 1, 6, 5), 1.7)
    case = Case("conv2_5d", {"input": x, "depth": depth, "weight": weight, "bias": None},
                {"padding": 1, "focal": 2.0}, seed=26)
    return Golden("constant depth", "docs/conv2_5d.md: == conv2d(middle bin)", case,
                  reference.conv2d(x, weight[1], padding=1))


def conv2_5d_goldens() -> list[Golden]:
    return [_half_open_bins(), _constant_depth()]


# ----------------------------------------------------------------------------- reductions


def conv2_5d_reduction(case: Case, check: str, out_shape) -> int:
    weight = case.tensors["weight"]  # [B, O, C, kh, kw]
    if check == "forward":
        return weight.shape[0] * weight.shape[2] * common.kernel_taps(weight) + 1
    if check in ("d/dweight", "d/dbias"):
        return common.over_positions(out_shape)
    return weight.shape[1] * common.kernel_taps(weight) * weight.shape[0]


# ----------------------------------------------------------------------------- sample


def conv2_5d_sample(dtype="float64", seed=0, smooth=False) -> Case:
    """Depths on a grid of quarters (taps on bin edges, zero and negative centres), or
    with ``smooth`` uniform: on no bin edge, so the masks do not move under small
    perturbations."""
    rng = np.random.default_rng(seed)
    if smooth:
        depth = rng.uniform(0.5, 3.0, (2, 1, 7, 6))
    else:
        depth = rng.integers(-1, 16, (2, 1, 7, 6)) * 0.25
        depth[:, :, 1, 1] = 1.5
    tensors = common.cast(dtype, input=rng.standard_normal((2, 3, 7, 6)), depth=depth,
                          weight=rng.standard_normal((3, 2, 3, 3, 3)), bias=rng.standard_normal(2))
    return Case("conv2_5d", tensors, dict(stride=1, padding=1, focal=2.0, pixel_size=1.0), seed)
