"""Cases of ``depthaware_conv2d`` and ``depthaware_avg_pool2d``: Hypothesis strategies,
boundary cases and golden cases, as :class:`crossconv.cases.Case` data.

The strategies draw only valid calls (output of at least 1x1, padding within the op's
rules) that are not trivially zero (the first window reads an input cell). Depth is
drawn three ways: on a grid of quarters (many exact ties, where ``sign(0) = 0`` decides
the depth gradient), uniformly, or, with ``tied_depths=False``, as distinct values at
least 0.08 apart (what finite differences need: no tap within a step of its centre's
depth). The keyword options narrow what is drawn, as in :mod:`crossconv.strategies`.

The boundary cases hit the definition's edges on purpose: even kernels and dilated
centres that are no tap, centres outside the image, ties, NaN and infinite depth,
constant depth and ``alpha = 0``, windows sharing a centre, both pooling divisors.
The golden cases are small examples computed by hand (docs/depthaware.md).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from .boundary import Boundary
from .cases import Case
from .goldens import Golden

DTYPES = ("float32", "float64")
SEED = st.integers(0, 2**32 - 1)
#: The similarity scales drawn: 0 turns depth off; 3 makes a depth step of 1 weigh 0.05.
ALPHAS = (0.0, 0.25, 1.0, 3.0)
NAN, INF = np.nan, np.inf


def _maybe_pair(draw, pair):
    """``pair`` as an int when both entries agree (half the time), to exercise both forms."""
    return pair[0] if pair[0] == pair[1] and draw(st.booleans()) else tuple(pair)


def _alpha(draw, max_alpha):
    return draw(st.sampled_from([a for a in ALPHAS if a <= max_alpha]))


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


def _sprinkle_nonfinite(rng, values, fraction):
    """About ``fraction`` of ``values`` (in place) become NaN, -inf or +inf (2:1:1)."""
    special = rng.uniform(size=values.shape)
    values[special < fraction / 2] = NAN
    values[(special >= fraction / 2) & (special < fraction * 0.75)] = -INF
    values[(special >= fraction * 0.75) & (special < fraction)] = INF
    return values


def _cast(dtype, **arrays):
    return {k: (None if v is None else np.asarray(v, dtype=dtype)) for k, v in arrays.items()}


@st.composite
def depthaware_conv2d_cases(draw, dtypes=DTYPES, max_batch=2, max_channels=2,
                            max_out_channels=2, max_kernel=3, max_stride=2, max_dilation=2,
                            max_padding=2, max_extra=3, max_alpha=3.0, tied_depths=True,
                            nonfinite=False):
    """Calls of ``depthaware_conv2d``: odd and even kernels, padding up to ``(k-1)*d``
    (so some window centres lie outside the image), bias or not. ``nonfinite``: NaN/Inf
    depth and input cells in half the draws."""
    dtype = draw(st.sampled_from(dtypes))
    n, c = draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels))
    o = draw(st.integers(1, max_out_channels))
    kernel = tuple(draw(st.integers(1, max_kernel)) for _ in range(2))
    stride = tuple(draw(st.integers(1, max_stride)) for _ in range(2))
    dilation = tuple(draw(st.integers(1, max_dilation)) for _ in range(2))
    pad = tuple(draw(st.integers(0, min(max_padding, (k - 1) * d)))
                for k, d in zip(kernel, dilation))
    size = []
    for k, d, p in zip(kernel, dilation, pad):
        first_read = -(-p // d) * d - p  # the first window's first tap in the image
        low = max(1, d * (k - 1) + 1 - 2 * p, first_read + 1)
        size.append(draw(st.integers(low, low + max_extra)))
    seed = draw(SEED)
    rng = np.random.default_rng(seed)
    shape = (n, 1, *size)
    tensors = {
        "input": rng.standard_normal((n, c, *size)),
        "depth": _depth(draw, rng, shape, tied_depths),
        "weight": rng.standard_normal((o, c, *kernel)),
        "bias": rng.standard_normal(o) if draw(st.booleans()) else None,
    }
    if nonfinite and draw(st.booleans()):
        _sprinkle_nonfinite(rng, tensors["input"], 0.04)
        _sprinkle_nonfinite(rng, tensors["depth"], 0.08)
    params = dict(stride=_maybe_pair(draw, stride), padding=_maybe_pair(draw, pad),
                  dilation=_maybe_pair(draw, dilation), alpha=_alpha(draw, max_alpha))
    return Case("depthaware_conv2d", _cast(dtype, **tensors), params, seed)


@st.composite
def depthaware_avg_pool2d_cases(draw, dtypes=DTYPES, max_batch=2, max_channels=2, max_kernel=3,
                                max_stride=3, max_extra=4, max_alpha=3.0, tied_depths=True,
                                nonfinite=False):
    """Calls of ``depthaware_avg_pool2d``: stride None or drawn, padding up to half the
    kernel, both ``count_include_pad``. ``nonfinite``: NaN/Inf depth and input cells in
    half the draws."""
    dtype = draw(st.sampled_from(dtypes))
    n, c = draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels))
    kernel = tuple(draw(st.integers(1, max_kernel)) for _ in range(2))
    stride = None if draw(st.booleans()) else tuple(draw(st.integers(1, max_stride))
                                                    for _ in range(2))
    pad = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = [draw(st.integers(max(1, k - 2 * p), max(1, k - 2 * p) + max_extra))
            for k, p in zip(kernel, pad)]
    seed = draw(SEED)
    rng = np.random.default_rng(seed)
    tensors = {
        "input": rng.standard_normal((n, c, *size)),
        "depth": _depth(draw, rng, (n, 1, *size), tied_depths),
    }
    if nonfinite and draw(st.booleans()):
        _sprinkle_nonfinite(rng, tensors["input"], 0.04)
        _sprinkle_nonfinite(rng, tensors["depth"], 0.08)
    params = dict(kernel_size=_maybe_pair(draw, kernel),
                  stride=None if stride is None else _maybe_pair(draw, stride),
                  padding=_maybe_pair(draw, pad), alpha=_alpha(draw, max_alpha),
                  count_include_pad=draw(st.booleans()))
    return Case("depthaware_avg_pool2d", _cast(dtype, **tensors), params, seed)


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


def _conv(name, seed, depth, kernel=(3, 3), channels=(2, 2), bias=True, needs=None, **params):
    """One sample; ``depth`` ``[H, W]``; random input, weight and bias."""
    rng = np.random.default_rng(seed)
    h, w = np.shape(depth)
    c, o = channels
    tensors = {
        "input": rng.standard_normal((1, c, h, w)),
        "depth": np.asarray(depth, dtype=np.float64)[None, None],
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
        _conv("kernel 3x3, padding 2: the border windows' centres lie outside", 4,
              TIED_DEPTH, padding=2),
        _conv("kernel 3x2, padding (2, 1), stride 2: centres outside on one axis", 5,
              TIED_DEPTH, kernel=(3, 2), padding=(2, 1), stride=2),
        _conv("tied depths, 3x3, padding 1: sign(0) = 0 decides the depth gradient", 6,
              TIED_DEPTH, padding=1),
        _conv("constant depth: equals conv2d", 7, np.full((5, 6), 1.75), padding=1,
              dilation=(1, 2)),
        _conv("alpha = 0 with NaN and inf depth: equals conv2d", 8,
              _with(_with(TIED_DEPTH, 2, 2, NAN), 1, 3, INF), padding=1, alpha=0.0,
              needs=nonfinite),
        _conv("a NaN tap depth: every window reading it is NaN", 9,
              _with(TIED_DEPTH, 2, 3, NAN), padding=1, needs=nonfinite),
        _conv("an inf tap depth: F = 0 there, NaN where it is the centre", 10,
              _with(TIED_DEPTH, 1, 1, INF), padding=1, needs=nonfinite),
        _conv("a -inf corner depth, padding 2: NaN where it is the centre, unread where the "
              "centre is outside", 11,
              _with(TIED_DEPTH, 0, 0, -INF), padding=2, needs=nonfinite),
        _conv("large alpha: F underflows to 0 away from the centre's depth", 12, TIED_DEPTH,
              padding=1, alpha=800.0),
    ]


def _pool(name, seed, depth, channels=2, needs=None, **params):
    rng = np.random.default_rng(seed)
    h, w = np.shape(depth)
    tensors = {
        "input": rng.standard_normal((1, channels, h, w)),
        "depth": np.asarray(depth, dtype=np.float64)[None, None],
    }
    params = {"stride": None, "padding": 0, "alpha": 1.0, "count_include_pad": True, **params}
    return Boundary(name, Case("depthaware_avg_pool2d", tensors, params, seed), needs or {})


def depthaware_avg_pool2d_boundary() -> list[Boundary]:
    """Edges of ``depthaware_avg_pool2d``'s definition (one sample each, float64)."""
    nonfinite = {"nonfinite": True}
    cases = []
    for count_include_pad in (True, False):
        tag = f"count_include_pad={count_include_pad}"
        cases += [
            _pool(f"2x2 windows: the centre is the lower-right of four, {tag}", 21, TIED_DEPTH,
                  kernel_size=2, count_include_pad=count_include_pad),
            _pool(f"3x3, stride 1, padding 1: border windows share centres, {tag}", 22,
                  TIED_DEPTH, kernel_size=3, stride=1, padding=1,
                  count_include_pad=count_include_pad),
            _pool(f"(3, 2) kernel, stride (2, 1), padding (1, 1), {tag}", 23, TIED_DEPTH,
                  kernel_size=(3, 2), stride=(2, 1), padding=1,
                  count_include_pad=count_include_pad),
            _pool(f"constant depth: equals avg_pool2d, {tag}", 24, np.full((5, 6), 2.5),
                  kernel_size=3, stride=2, padding=1, count_include_pad=count_include_pad),
        ]
    return cases + [
        _pool("alpha = 0 with NaN and inf depth: equals avg_pool2d", 25,
              _with(_with(TIED_DEPTH, 2, 2, NAN), 0, 5, -INF), kernel_size=3, stride=1,
              padding=1, alpha=0.0, needs=nonfinite),
        _pool("a NaN depth: every window reading it is NaN", 26, _with(TIED_DEPTH, 3, 1, NAN),
              kernel_size=2, stride=1, padding=1, needs=nonfinite),
        _pool("an inf depth: F = 0 there, NaN where it is the centre", 27,
              _with(TIED_DEPTH, 2, 4, INF), kernel_size=3, stride=1, padding=1,
              count_include_pad=False, needs=nonfinite),
        _pool("large alpha: only the centre's depth counts", 28, TIED_DEPTH, kernel_size=3,
              stride=1, padding=1, alpha=800.0, count_include_pad=False),
    ]


# ----------------------------------------------------------------------------- golden

#: The worked example of docs/depthaware.md: alpha = ln 2, so F = 2**-|depth step|.
GOLDEN_INPUT = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
GOLDEN_DEPTH = np.array([[0.0, 1.0, 0.0],
                         [2.0, 0.0, 1.0],
                         [0.0, 3.0, 0.0]]).reshape(1, 1, 3, 3)
LN2 = math.log(2.0)


def depthaware_goldens() -> list[Golden]:
    """Hand-computed examples (the arithmetic is in docs/depthaware.md)."""
    source = "by hand, docs/depthaware.md"
    conv = Case("depthaware_conv2d", {"input": GOLDEN_INPUT, "depth": GOLDEN_DEPTH,
                                      "weight": np.ones((1, 1, 3, 3)), "bias": np.array([0.5])},
                {"alpha": LN2})
    conv_even = Case("depthaware_conv2d", {"input": GOLDEN_INPUT, "depth": GOLDEN_DEPTH,
                                           "weight": np.ones((1, 1, 2, 2)), "bias": None},
                     {"alpha": LN2})
    pool = {"input": GOLDEN_INPUT, "depth": GOLDEN_DEPTH}
    pool_params = {"kernel_size": 2, "stride": 2, "padding": 1, "alpha": LN2}
    return [
        Golden("3x3 window, bias 0.5", source, conv, np.array([[[[31.5]]]])),
        Golden("2x2 windows: the centre is each window's origin", source, conv_even,
               np.array([[[[8.0, 12.0], [11.0, 18.0]]]])),
        Golden("2x2 pooling, stride 2, padding 1, count_include_pad", source,
               Case("depthaware_avg_pool2d", pool, {**pool_params, "count_include_pad": True}),
               np.array([[[[1 / 4, 8 / 7], [32 / 13, 48 / 7]]]])),
        Golden("2x2 pooling, stride 2, padding 1, in-image count", source,
               Case("depthaware_avg_pool2d", pool, {**pool_params, "count_include_pad": False}),
               np.array([[[[1.0, 8 / 3], [32 / 5, 48 / 7]]]])),
    ]


#: ``depthaware_conv2d_vjp(ones, *the 3x3 golden)["depth"]``: the taps at depth 1, 2, 3
#: pull towards the centre's depth 0; the tied corners pass nothing (sign(0) = 0).
GOLDEN_CONV_DEPTH_GRADIENT = LN2 * np.array([[0.0, -1.0, 0.0],
                                             [-1.0, 6.0, -3.0],
                                             [0.0, -1.0, 0.0]]).reshape(1, 1, 3, 3)
