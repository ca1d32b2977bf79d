"""Cases of ``depthaware_conv2d`` and ``depthaware_avg_pool2d`` (docs/depthaware.md).

The strategies draw only valid calls (output of at least 1x1, padding within the op's
rules) that are not trivially zero (the first window reads an input cell), in the two
tiers of :mod:`crossconv.strategies`. Depth is drawn three ways: on a grid of quarters
(many exact ties, where ``sign(0) = 0`` decides the depth gradient), uniformly, or, with
``tied_depths=False``, as distinct values at least 0.08 apart (what finite differences
need: no tap within a step of its centre's depth). With ``nonfinite`` (the default) half
the draws have NaN, +inf and -inf depth cells and NaN input cells.

The boundary cases hit the definition's edges on purpose: even kernels and dilated
centres that are no tap, centres outside the image, ties, NaN and infinite depth,
constant depth and ``alpha = 0``, windows sharing a centre, both pooling divisors.
The golden cases are small examples computed by hand (docs/depthaware.md).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from . import Boundary, Case, Golden, common

#: The similarity scales drawn: 0 turns depth off; 3 makes a depth step of 1 weigh 0.05.
ALPHAS = (0.0, 0.25, 1.0, 3.0)
NAN, INF = np.nan, np.inf

#: The options that keep each argument at its default (crossconv.strategy_options).
PINS = {
    "depthaware_conv2d": {"bias": common.PIN_BIAS, "stride": common.PIN_STRIDE,
                          "padding": common.PIN_PADDING, "dilation": common.PIN_DILATION,
                          "alpha": {"alpha": 1.0}},
    "depthaware_avg_pool2d": {"stride": {"stride_none": True}, "padding": common.PIN_PADDING,
                              "alpha": {"alpha": 1.0},
                              "count_include_pad": {"count_include_pad": True}},
}


def _alpha(draw, alpha):
    """``alpha``: None draws one of :data:`ALPHAS`, a number fixes it."""
    return draw(st.sampled_from(ALPHAS)) if alpha is None else float(alpha)


def _depth(draw, rng, shape, tied_depths):
    """Depth maps ``[N, 1, H, W]``: ties on a grid, uniform, or distinct and spaced."""
    kind = draw(st.sampled_from(["grid", "uniform"] if tied_depths else ["spaced"]))
    if kind == "grid":
        return rng.integers(0, 12, shape) * 0.25
    if kind == "uniform":
        return rng.uniform(0.5, 4.0, shape)
    per_sample = int(np.prod(shape[1:]))
    order = np.stack([rng.permutation(per_sample) for _ in range(shape[0])]).reshape(shape)
    return 0.5 + 0.1 * order + rng.uniform(0.0, 0.02, shape)


def _sprinkle_nan(rng, values, fraction=0.02):
    """About ``fraction`` of the input cells (in place) become NaN. Not infinities: the
    depth gradient through a tap that reads one, ``sum_{o,c} g[o] * w[o,c] * x[c]``, is
    inf - inf (NaN) summed term by term and an infinity when ``g . w`` is formed first;
    the definition leaves that order open (docs/depthaware.md)."""
    values[rng.uniform(size=values.shape) < fraction] = NAN
    return values


def _stresses(max_batch, max_out_size, max_kernel):
    return ("batch" if max_batch > common.SMALL_BATCH else "", "size" if max_out_size > 32 else "",
            "kernel" if max_kernel > common.SMALL_KERNEL else "")


@st.composite
def depthaware_conv2d_cases(draw, dtypes=common.DTYPES, max_batch=7, max_channels=3,
                            max_out_channels=2, max_kernel=7, max_stride=2, max_dilation=2,
                            max_padding=2, max_extra=3, max_out_size=159, square=False,
                            square_kernel=False, bias=None, alpha=None, tied_depths=True,
                            nonfinite=True, image_like=False, large=common.LARGE):
    """Calls of ``depthaware_conv2d``: odd and even kernels, padding up to ``(k-1)*d``
    (so some window centres lie outside the image), bias or not. ``nonfinite``: NaN/Inf
    depth and input cells in half the draws."""
    dtype = draw(st.sampled_from(dtypes))
    stress = common.tier(draw, large, _stresses(max_batch, max_out_size, max_kernel))
    n = common.draw_batch(draw, stress, max_batch)
    c = draw(st.integers(min(3, max_channels) if image_like else 1, max_channels))
    o = draw(st.integers(1, max_out_channels))
    kernel = common.draw_kernel(draw, stress, max_kernel, square_kernel, low=3 if image_like else 1)
    stride, dilation, pad = common.draw_window(draw, kernel, max_stride, max_dilation, max_padding, square)
    h, w = common.draw_sizes(draw, kernel, dilation, pad, stride, max_extra,
                             common.draw_long_axis(draw, stress, max_out_size))
    seed = draw(common.SEED)
    rng = np.random.default_rng(seed)
    shape = (n, c, h, w)
    tensors = common.cast(
        dtype,
        input=common.pixels(rng, shape) if image_like else rng.standard_normal(shape),
        depth=_depth(draw, rng, (n, 1, h, w), tied_depths),
        weight=common.weights(rng, (o, c, *kernel), image_like, c * kernel[0] * kernel[1]),
        bias=rng.standard_normal(o) if common.draw_optional(draw, bias) else None,
    )
    if nonfinite and common.some_draws(draw):
        _sprinkle_nan(rng, tensors["input"])
        common.sprinkle_nonfinite(rng, tensors["depth"], fraction=0.08)
    params = dict(**common.window_params(draw, stride, pad, dilation, square), alpha=_alpha(draw, alpha))
    return Case("depthaware_conv2d", tensors, params, seed)


@st.composite
def depthaware_avg_pool2d_cases(draw, dtypes=common.DTYPES, max_batch=7, max_channels=2, max_kernel=7,
                                max_stride=3, max_padding=3, max_extra=4, max_out_size=159,
                                square=False, stride_none=None, count_include_pad=None,
                                alpha=None, tied_depths=True, nonfinite=True,
                                image_like=False, large=common.LARGE):
    """Calls of ``depthaware_avg_pool2d``: stride None or drawn, padding up to half the
    kernel, both ``count_include_pad``. ``nonfinite``: NaN/Inf depth and input cells in
    half the draws."""
    dtype = draw(st.sampled_from(dtypes))
    stress = common.tier(draw, large, _stresses(max_batch, max_out_size, max_kernel))
    n, c = common.draw_batch(draw, stress, max_batch), draw(st.integers(1, max_channels))
    kernel = common.draw_kernel(draw, stress, max_kernel, square)
    none = draw(st.booleans()) if stride_none is None else bool(stride_none)
    stride = None if none else common.draw_pair(draw, 1, max_stride, square)
    limits = [min(max_padding, k // 2) for k in kernel]
    if square:
        pad = (draw(st.integers(0, min(limits))),) * 2
    else:
        pad = tuple(draw(st.integers(0, limit)) for limit in limits)
    h, w = common.draw_sizes(draw, kernel, (1, 1), pad, kernel if stride is None else stride, max_extra,
                             common.draw_long_axis(draw, stress, max_out_size))
    seed = draw(common.SEED)
    rng = np.random.default_rng(seed)
    shape = (n, c, h, w)
    values = common.pixels(rng, shape) if image_like else rng.standard_normal(shape)
    tensors = common.cast(dtype, input=values, depth=_depth(draw, rng, (n, 1, h, w), tied_depths))
    if nonfinite and common.some_draws(draw):
        _sprinkle_nan(rng, tensors["input"])
        common.sprinkle_nonfinite(rng, tensors["depth"], fraction=0.08)
    flag = draw(st.booleans()) if count_include_pad is None else bool(count_include_pad)
    params = dict(kernel_size=common.maybe_pair(draw, kernel, square),
                  stride=None if stride is None else common.maybe_pair(draw, stride, square),
                  padding=common.maybe_pair(draw, pad, square), alpha=_alpha(draw, alpha),
                  count_include_pad=flag)
    return Case("depthaware_avg_pool2d", tensors, params, seed)


# ----------------------------------------------------------------------------- boundary

#: Ties everywhere (quarters on a small grid) and a few large steps.
TIED_DEPTH = np.array([[1.0, 1.0, 2.0, 2.0, 0.5, 1.0],
                       [1.0, 1.0, 2.0, 0.5, 0.5, 1.0],
                       [3.0, 3.0, 1.0, 1.0, 1.0, 2.0],
                       [3.0, 1.0, 1.0, 2.0, 2.0, 2.0],
                       [0.5, 0.5, 1.0, 2.0, 3.0, 3.0]])


def _with(depth, row, col, value):
    out = np.array(depth, dtype=np.float64)
    out[row, col] = value
    return out


def _depths(depth, batch):
    """``depth [H, W]`` as ``[batch, 1, H, W]``, each later sample a little deeper."""
    depth = np.asarray(depth, dtype=np.float64)
    return np.stack([depth + 0.25 * n for n in range(batch)])[:, None]


def _conv(name, seed, depth, kernel=(3, 3), channels=(2, 2), bias=True, needs=None, batch=1,
          **params):
    """``depth`` ``[H, W]``; random input, weight and bias."""
    rng = np.random.default_rng(seed)
    h, w = np.shape(depth)
    c, o = channels
    tensors = {
        "input": rng.standard_normal((batch, c, h, w)),
        "depth": _depths(depth, batch),
        "weight": rng.standard_normal((o, c, *kernel)),
        "bias": rng.standard_normal(o) if bias else None,
    }
    params = {"stride": 1, "padding": 0, "dilation": 1, "alpha": 1.0, **params}
    return Boundary(name, Case("depthaware_conv2d", tensors, params, seed), needs or {})


def depthaware_conv2d_boundary() -> list[Boundary]:
    """Edges of ``depthaware_conv2d``'s definition (one sample each, float64)."""
    nonfinite = {"nonfinite": True}
    return [
        _conv("even kernel 2x2: the centre is the window's origin", 1, TIED_DEPTH,
              kernel=(2, 2)),
        _conv("even kernel 4x4, padding 1: centre at the upper-left of the middle four", 2,
              TIED_DEPTH, kernel=(4, 4), padding=1),
        _conv("kernel 2x3, dilation 2: the centre row lies between two taps", 3, TIED_DEPTH,
              kernel=(2, 3), dilation=2, padding=1),
        _conv("kernel 3x2, padding (2, 1), stride 2: centres outside on one axis", 5,
              TIED_DEPTH, kernel=(3, 2), padding=(2, 1), stride=2),
        _conv("tied depths, 3x3, padding 1, a batch of 3: sign(0) = 0 decides the depth "
              "gradient", 6, TIED_DEPTH, padding=1, batch=3),
        _conv("constant depth: equals conv2d", 7, np.full((5, 6), 1.75), padding=1,
              dilation=(1, 2)),
        _conv("alpha = 0 with NaN and inf depth: equals conv2d", 8,
              _with(_with(TIED_DEPTH, 2, 2, NAN), 1, 3, INF), padding=1, alpha=0.0,
              needs=nonfinite),
        _conv("a NaN tap depth and an inf tap depth: every window reading the NaN is NaN, "
              "F = 0 at the inf, NaN where it is the centre", 9,
              _with(_with(TIED_DEPTH, 2, 3, NAN), 1, 1, INF), padding=1, needs=nonfinite),
        _conv("a -inf corner depth, padding 2: the border windows' centres lie outside, NaN "
              "where the corner is the centre", 11, _with(TIED_DEPTH, 0, 0, -INF), padding=2,
              needs=nonfinite),
        _conv("alpha = 2000: F underflows to 0 (float64 too) off the centre's depth", 12,
              TIED_DEPTH, padding=1, alpha=2000.0),
        _conv("an output row of 33: one past a 32-wide tile", 14,
              np.tile(TIED_DEPTH[:3], 6)[:, :35], kernel=(3, 2), padding=(1, 0), dilation=(1, 2)),
    ]


def _pool(name, seed, depth, channels=2, needs=None, batch=1, **params):
    rng = np.random.default_rng(seed)
    h, w = np.shape(depth)
    tensors = {
        "input": rng.standard_normal((batch, channels, h, w)),
        "depth": _depths(depth, batch),
    }
    params = {"stride": None, "padding": 0, "alpha": 1.0, "count_include_pad": True, **params}
    return Boundary(name, Case("depthaware_avg_pool2d", tensors, params, seed), needs or {})


def depthaware_avg_pool2d_boundary() -> list[Boundary]:
    """Edges of ``depthaware_avg_pool2d``'s definition (one sample each, float64)."""
    nonfinite = {"nonfinite": True}
    return [
        _pool("2x2 windows: the centre is the lower-right of four", 21, TIED_DEPTH,
              kernel_size=2),
        *(_pool(f"3x3, stride 1, padding 1: border windows share centres, "
                f"count_include_pad={count_include_pad}", 22, TIED_DEPTH, kernel_size=3,
                stride=1, padding=1, count_include_pad=count_include_pad)
          for count_include_pad in (True, False)),
        _pool("(3, 2) kernel, stride (2, 1), padding (1, 1), count_include_pad=False", 23,
              TIED_DEPTH, kernel_size=(3, 2), stride=(2, 1), padding=1, count_include_pad=False),
        _pool("constant depth: equals avg_pool2d", 24, np.full((5, 6), 2.5), kernel_size=3,
              stride=2, padding=1),
        _pool("alpha = 0 with NaN and inf depth: equals avg_pool2d", 25,
              _with(_with(TIED_DEPTH, 2, 2, NAN), 0, 5, -INF), kernel_size=3, stride=1,
              padding=1, alpha=0.0, needs=nonfinite),
        _pool("a NaN depth and an inf depth: every window reading the NaN is NaN, F = 0 at the "
              "inf, NaN where it is the centre", 26, _with(_with(TIED_DEPTH, 3, 1, NAN), 2, 4, INF),
              kernel_size=3, stride=1, padding=1, count_include_pad=False, needs=nonfinite),
        _pool("alpha = 2000, a batch of 3: only the taps at the centre's depth count", 28,
              TIED_DEPTH, kernel_size=3, stride=1, padding=1, alpha=2000.0,
              count_include_pad=False, batch=3),
        _pool("an output row of 33: one past a 32-wide tile, a 5-wide window", 30,
              np.tile(TIED_DEPTH[:2], 7)[:, :37], kernel_size=(1, 5), stride=1,
              count_include_pad=False),
    ]


# ----------------------------------------------------------------------------- golden

#: The worked example of docs/depthaware.md: alpha = ln 2, so F = 2**-|depth step|.
GOLDEN_INPUT = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
GOLDEN_DEPTH = np.array([[0.0, 1.0, 0.0],
                         [2.0, 0.0, 1.0],
                         [0.0, 3.0, 0.0]]).reshape(1, 1, 3, 3)
LN2 = math.log(2.0)


SOURCE = "by hand, docs/depthaware.md"


def depthaware_conv2d_goldens() -> list[Golden]:
    """Hand-computed examples (the arithmetic is in docs/depthaware.md)."""
    tensors = {"input": GOLDEN_INPUT, "depth": GOLDEN_DEPTH}
    return [
        Golden("3x3 window, bias 0.5", SOURCE,
               Case("depthaware_conv2d", {**tensors, "weight": np.ones((1, 1, 3, 3)),
                                          "bias": np.array([0.5])}, {"alpha": LN2}),
               np.array([[[[31.5]]]])),
        Golden("2x2 windows: the centre is each window's origin", SOURCE,
               Case("depthaware_conv2d", {**tensors, "weight": np.ones((1, 1, 2, 2)),
                                          "bias": None}, {"alpha": LN2}),
               np.array([[[[8.0, 12.0], [11.0, 18.0]]]])),
    ]


def depthaware_avg_pool2d_goldens() -> list[Golden]:
    """Hand-computed examples (the arithmetic is in docs/depthaware.md)."""
    tensors = {"input": GOLDEN_INPUT, "depth": GOLDEN_DEPTH}
    params = {"kernel_size": 2, "stride": 2, "padding": 1, "alpha": LN2}
    return [
        Golden("2x2 pooling, stride 2, padding 1, count_include_pad", SOURCE,
               Case("depthaware_avg_pool2d", tensors, {**params, "count_include_pad": True}),
               np.array([[[[1 / 4, 8 / 7], [32 / 13, 48 / 7]]]])),
        Golden("2x2 pooling, stride 2, padding 1, in-image count", SOURCE,
               Case("depthaware_avg_pool2d", tensors, {**params, "count_include_pad": False}),
               np.array([[[[1.0, 8 / 3], [32 / 5, 48 / 7]]]])),
    ]


#: ``depthaware_conv2d_vjp(ones, *the 3x3 golden)["depth"]``: the taps at depth 1, 2, 3
#: pull towards the centre's depth 0; the tied corners pass nothing (sign(0) = 0).
GOLDEN_CONV_DEPTH_GRADIENT = LN2 * np.array([[0.0, -1.0, 0.0],
                                             [-1.0, 6.0, -3.0],
                                             [0.0, -1.0, 0.0]]).reshape(1, 1, 3, 3)


def depthaware_conv2d_needs(case: Case) -> dict:
    """The strategy options a configuration needs beyond the shared ones: its alpha."""
    return {"alpha": float(case.params.get("alpha", 1.0))}


def depthaware_avg_pool2d_needs(case: Case) -> dict:
    """The strategy options a pooling configuration needs beyond the shared ones."""
    return {"stride_none": case.params.get("stride") in (None, ()),
            "alpha": float(case.params.get("alpha", 1.0)),
            "count_include_pad": bool(case.params.get("count_include_pad", True))}


# ----------------------------------------------------------------------------- reductions


def depthaware_conv2d_reduction(case: Case, check: str, out_shape) -> int:
    weight = case.tensors["weight"]
    taps = common.kernel_taps(weight)
    if check == "forward":
        return weight.shape[1] * taps + 1
    if check in ("d/dweight", "d/dbias"):
        return common.over_positions(out_shape)
    if check == "d/ddepth":  # dL/dF sums over output and input channels, per tap of a window
        return (weight.shape[0] * weight.shape[1] + 1) * taps
    return weight.shape[0] * taps


def depthaware_avg_pool2d_reduction(case: Case, check: str, out_shape) -> int:
    window = common.window_size(case.params["kernel_size"])
    if check == "d/ddepth":
        return case.tensors["input"].shape[1] * window
    return window


# ----------------------------------------------------------------------------- samples


def _sample_depth(rng, smooth):
    """``[2, 1, 7, 6]`` depths on a grid of quarters (ties), or with ``smooth`` distinct
    values 0.1 apart."""
    shape = (2, 1, 7, 6)
    if smooth:
        return 0.5 + 0.1 * np.stack([rng.permutation(42) for _ in range(2)]).reshape(shape)
    return rng.integers(0, 8, shape) * 0.25


def depthaware_conv2d_sample(dtype="float64", seed=0, smooth=False) -> Case:
    """An even kernel with padding and dilation (centres outside the image, a centre
    that is no tap); depth on a grid of quarters (ties), or with ``smooth`` distinct
    values 0.1 apart (no tie for finite differences to cross)."""
    rng = np.random.default_rng(seed)
    depth = _sample_depth(rng, smooth)
    tensors = common.cast(dtype, input=rng.standard_normal((2, 3, 7, 6)), depth=depth,
                          weight=rng.standard_normal((2, 3, 2, 3)), bias=rng.standard_normal(2))
    return Case("depthaware_conv2d", tensors,
                dict(stride=(1, 2), padding=(2, 1), dilation=(2, 1), alpha=1.5), seed)


def depthaware_avg_pool2d_sample(dtype="float64", seed=0, smooth=False) -> Case:
    """Overlapping windows with padding (border windows share centres); depth as in
    :func:`depthaware_conv2d_sample`."""
    rng = np.random.default_rng(seed)
    depth = _sample_depth(rng, smooth)
    tensors = common.cast(dtype, input=rng.standard_normal((2, 3, 7, 6)), depth=depth)
    return Case("depthaware_avg_pool2d", tensors,
                dict(kernel_size=3, stride=2, padding=1, alpha=1.5, count_include_pad=False),
                seed)
