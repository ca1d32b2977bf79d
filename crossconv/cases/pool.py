"""Cases of ``max_pool2d`` and ``avg_pool2d`` (docs/pool.md)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from . import Boundary, Case, Golden, common

NAN, INF = np.nan, np.inf

#: The options that keep each argument at its default (crossconv.strategy_options).
PINS = {
    "max_pool2d": {"stride": {"stride_none": True}, "padding": common.PIN_PADDING,
                   "dilation": common.PIN_DILATION, "ceil_mode": {"ceil_mode": False},
                   "return_indices": {"return_indices": False}},
    "avg_pool2d": {"stride": {"stride_none": True}, "padding": common.PIN_PADDING,
                   "ceil_mode": {"ceil_mode": False},
                   "count_include_pad": {"count_include_pad": True},
                   "divisor_override": {"divisor_override": False}},
}


# ----------------------------------------------------------------------------- pooling


def _pool_values(rng, shape, distinct, nonfinite, ties, image_like):
    """Pooling inputs: with ties (small integers) half the time if ``ties``."""
    if distinct:  # separated by 0.1: no ties for finite differences to cross
        return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 1.0)
    values = common.pixels(rng, shape) if image_like else rng.standard_normal(shape)
    if ties and rng.integers(2):  # never all zero
        values = rng.choice([-2.0, -1.0, 1.0, 2.0], shape)
    if nonfinite:
        common.sprinkle_nonfinite(rng, values, fraction=0.1)
    return values


def _pool_window(draw, stress, max_kernel, max_stride, max_dilation, max_padding, max_extra,
                 max_out_size, stride_none, square):
    kernel = common.draw_kernel(draw, stress, max_kernel, square)
    none = draw(st.booleans()) if stride_none is None else bool(stride_none)
    stride = None if none else common.draw_pair(draw, 1, max_stride, square)
    dilation = common.draw_pair(draw, 1, max_dilation, square)
    limits = [min(max_padding, k // 2) for k in kernel]
    if square:
        pad = (draw(st.integers(0, min(limits))),) * 2
    else:
        pad = tuple(draw(st.integers(0, limit)) for limit in limits)
    # An input at least `dilation` long keeps every window, ceil-mode ones included, off
    # pure padding (a window starting in the left padding reads a cell before `dilation`).
    size = common.draw_sizes(draw, kernel, dilation, pad, kernel if stride is None else stride,
                             max_extra, common.draw_long_axis(draw, stress, max_out_size),
                             first_read=tuple(d - 1 for d in dilation))
    return kernel, stride, dilation, pad, size


def _choose(draw, value):
    """A boolean argument: None draws both, True/False fixes it."""
    return draw(st.booleans()) if value is None else bool(value)


def _pool_stresses(max_batch, max_out_size, max_kernel):
    return ("batch" if max_batch > common.SMALL_BATCH else "", "size" if max_out_size > 32 else "",
            "kernel" if max_kernel > common.SMALL_KERNEL else "")


@st.composite
def max_pool2d_cases(draw, dtypes=common.DTYPES, max_batch=7, max_channels=2, max_kernel=7,
                     max_stride=3, max_dilation=2, max_padding=3, max_extra=4, max_out_size=159,
                     square=False, stride_none=None, ceil_mode=None, return_indices=None,
                     distinct=False, nonfinite=True, image_like=False, large=common.LARGE):
    """Calls of ``max_pool2d``: ceil_mode, dilation, indices, ties; NaN/Inf unless
    ``nonfinite=False``; all-distinct values when ``distinct``. ``stride_none``,
    ``ceil_mode``, ``return_indices``: None draws both, True/False fixes them."""
    dtype = draw(st.sampled_from(dtypes))
    stress = common.tier(draw, large, _pool_stresses(max_batch, max_out_size, max_kernel))
    n, c = common.draw_batch(draw, stress, max_batch), draw(st.integers(1, max_channels))
    kernel, stride, dilation, pad, (h, w) = _pool_window(
        draw, stress, max_kernel, max_stride, max_dilation, max_padding, max_extra, max_out_size,
        stride_none, square,
    )
    seed = draw(common.SEED)
    rng = np.random.default_rng(seed)
    tensors = common.cast(dtype, input=_pool_values(rng, (n, c, h, w), distinct, nonfinite, ties=True,
                                                    image_like=image_like))
    params = dict(kernel_size=common.maybe_pair(draw, kernel, square),
                  stride=None if stride is None else common.maybe_pair(draw, stride, square),
                  padding=common.maybe_pair(draw, pad, square),
                  dilation=common.maybe_pair(draw, dilation, square),
                  ceil_mode=_choose(draw, ceil_mode), return_indices=_choose(draw, return_indices))
    return Case("max_pool2d", tensors, params, seed)


DIVISOR_OVERRIDES = (None, None, 1, 2, 5, -3)


@st.composite
def avg_pool2d_cases(draw, dtypes=common.DTYPES, max_batch=7, max_channels=2, max_kernel=7,
                     max_stride=3, max_padding=3, max_extra=4, max_out_size=159, square=False,
                     stride_none=None, ceil_mode=None, count_include_pad=None,
                     divisor_override=True, nonfinite=True, image_like=False, large=common.LARGE):
    """Calls of ``avg_pool2d``: ceil_mode, count_include_pad, divisor_override
    (``divisor_override=False`` never passes one)."""
    dtype = draw(st.sampled_from(dtypes))
    stress = common.tier(draw, large, _pool_stresses(max_batch, max_out_size, max_kernel))
    n, c = common.draw_batch(draw, stress, max_batch), draw(st.integers(1, max_channels))
    kernel, stride, _, pad, (h, w) = _pool_window(
        draw, stress, max_kernel, max_stride, 1, max_padding, max_extra, max_out_size,
        stride_none, square,
    )
    seed = draw(common.SEED)
    rng = np.random.default_rng(seed)
    tensors = common.cast(dtype, input=_pool_values(rng, (n, c, h, w), False, nonfinite, ties=False,
                                                    image_like=image_like))
    params = dict(kernel_size=common.maybe_pair(draw, kernel, square),
                  stride=None if stride is None else common.maybe_pair(draw, stride, square),
                  padding=common.maybe_pair(draw, pad, square), ceil_mode=_choose(draw, ceil_mode),
                  count_include_pad=_choose(draw, count_include_pad),
                  divisor_override=(draw(st.sampled_from(DIVISOR_OVERRIDES)) if divisor_override
                                    else None))
    return Case("avg_pool2d", tensors, params, seed)



# ----------------------------------------------------------------------------- boundary




def _pool(op, name, seed, values, needs=None, **params):
    case = Case(op, {"input": np.asarray(values, dtype=np.float64)}, params, seed)
    return Boundary(name, case, needs or {})


def _grid(rng, shape, low=-3, high=4):
    """Small integers (many ties), never all zero."""
    values = rng.integers(low, high, shape).astype(np.float64)
    values.flat[0] = high
    return values


def max_pool2d_boundary() -> list[Boundary]:
    rng = np.random.default_rng(160)
    with_nan = _grid(rng, (1, 2, 5, 5))
    with_nan[0, 0, 0, 1] = NAN
    with_nan[0, 0, 1, 0] = NAN  # two NaNs in one window
    with_nan[0, 1, 4, 4] = NAN  # in the ceil-mode overhang window
    infinite = _grid(rng, (1, 1, 4, 4))
    infinite[0, 0, :2, :2] = -INF  # a window of -inf only: its first cell is the index
    infinite[0, 0, 3, 3] = INF
    nonfinite = {"nonfinite": True}
    return [
        _pool("max_pool2d", "ceil_mode: the last window overhangs the input", 161,
              _grid(rng, (1, 2, 5, 5)), kernel_size=2, stride=2, ceil_mode=True,
              return_indices=True),
        _pool("max_pool2d", "ceil_mode: a window starting in the right padding is dropped", 162,
              _grid(rng, (1, 1, 4, 4)), kernel_size=2, stride=3, padding=1, ceil_mode=True,
              return_indices=True),
        _pool("max_pool2d", "ties: the first index in row-major window order wins", 163,
              np.ones((1, 1, 4, 5)) * np.array([1, 2, 2, 1, 2.0]), kernel_size=(2, 3), stride=1,
              return_indices=True),
        _pool("max_pool2d", "negative input with padding: padding is -inf, not 0", 164,
              -1.0 - rng.integers(0, 3, (2, 1, 3, 4)), kernel_size=3, stride=2, padding=1,
              return_indices=True),
        _pool("max_pool2d", "dilation and ceil_mode", 165, _grid(rng, (1, 1, 6, 5)),
              kernel_size=2, stride=2, dilation=2, ceil_mode=True, return_indices=True),
        _pool("max_pool2d", "NaN wins (the last NaN of a window), also in the overhang", 166,
              with_nan, kernel_size=2, stride=2, ceil_mode=True, return_indices=True,
              needs=nonfinite),
        _pool("max_pool2d", "-inf windows and +inf", 167, infinite, kernel_size=2, stride=2,
              return_indices=True, needs=nonfinite),
        _pool("max_pool2d", "a batch of 3", 168, rng.standard_normal((3, 2, 4, 4)), kernel_size=2,
              return_indices=True),
        _pool("max_pool2d", "an output row of 33: one past a 32-wide tile", 169,
              rng.standard_normal((1, 2, 3, 35)), kernel_size=3, stride=1, return_indices=True),
        _pool("max_pool2d", "a 5x5 window", 159, rng.standard_normal((1, 1, 7, 8)), kernel_size=5,
              stride=2, padding=2, return_indices=True),
    ]


def avg_pool2d_boundary() -> list[Boundary]:
    rng = np.random.default_rng(170)
    nonfinite = rng.standard_normal((1, 2, 5, 5))
    nonfinite[0, 0, 1, 1], nonfinite[0, 1, 4, 4], nonfinite[0, 1, 0, 0] = NAN, INF, -INF
    return [
        _pool("avg_pool2d", "ceil_mode overhang: count_include_pad never counts it", 171,
              rng.standard_normal((1, 2, 5, 5)), kernel_size=2, stride=2, ceil_mode=True,
              count_include_pad=True),
        _pool("avg_pool2d", "ceil_mode with padding, count_include_pad", 172,
              rng.standard_normal((1, 1, 5, 6)), kernel_size=3, stride=2, padding=1,
              ceil_mode=True, count_include_pad=True),
        _pool("avg_pool2d", "ceil_mode with padding, without count_include_pad", 173,
              rng.standard_normal((1, 1, 5, 6)), kernel_size=3, stride=2, padding=1,
              ceil_mode=True, count_include_pad=False),
        _pool("avg_pool2d", "divisor_override, negative", 174, rng.standard_normal((2, 1, 4, 4)),
              kernel_size=2, padding=1, divisor_override=-3),
        _pool("avg_pool2d", "NaN, +inf and -inf cells", 175, nonfinite, kernel_size=2, stride=2,
              ceil_mode=True, needs={"nonfinite": True}),
        _pool("avg_pool2d", "a batch of 3", 176, rng.standard_normal((3, 1, 4, 4)), kernel_size=2),
        _pool("avg_pool2d", "an output row of 33: one past a 32-wide tile, a 5-wide window", 177,
              rng.standard_normal((1, 2, 2, 37)), kernel_size=(1, 5), stride=1, padding=0),
    ]


def max_pool2d_needs(case: Case) -> dict:
    """The strategy options a pooling configuration needs beyond the shared ones."""
    p = case.params
    needs = {"stride_none": p.get("stride") in (None, ())}
    for key in ("ceil_mode", "return_indices", "count_include_pad"):
        if key in p:
            needs[key] = bool(p[key])
    if p.get("divisor_override") is not None:
        needs["divisor_override"] = True
    return needs


avg_pool2d_needs = max_pool2d_needs


# ----------------------------------------------------------------------------- golden

#: The hand-written Pool2D post's example.
POOL_INPUT = np.arange(1, 17, dtype=np.float64).reshape(1, 1, 4, 4)


def max_pool2d_goldens() -> list[Golden]:
    return [Golden("Pool2D post max", "docs/pool.md / the hand-written Pool2D post",
                   Case("max_pool2d", {"input": POOL_INPUT}, {"kernel_size": 2, "stride": 2}, seed=5),
                   np.array([[[[6.0, 8.0], [14.0, 16.0]]]]))]


def avg_pool2d_goldens() -> list[Golden]:
    return [Golden("Pool2D post avg", "docs/pool.md / the hand-written Pool2D post",
                   Case("avg_pool2d", {"input": POOL_INPUT}, {"kernel_size": 2, "stride": 2}, seed=6),
                   np.array([[[[3.5, 5.5], [11.5, 13.5]]]]))]


# ----------------------------------------------------------------------------- reductions


def max_pool2d_reduction(case: Case, check: str, out_shape) -> int:
    return common.window_size(case.params["kernel_size"])


avg_pool2d_reduction = max_pool2d_reduction


# ----------------------------------------------------------------------------- samples


def max_pool2d_sample(dtype="float64", seed=0, smooth=False) -> Case:
    """ceil_mode with padding and indices; ties everywhere, or with ``smooth`` distinct
    values 0.1 apart (no tie for finite differences to cross)."""
    rng = np.random.default_rng(seed)
    if smooth:
        x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) * 0.1
    else:
        x = rng.choice([-1.0, 0.0, 2.0], (2, 3, 7, 6))
    return Case("max_pool2d", common.cast(dtype, input=x),
                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, return_indices=True), seed)


def avg_pool2d_sample(dtype="float64", seed=0, smooth=False) -> Case:
    rng = np.random.default_rng(seed)
    return Case("avg_pool2d", common.cast(dtype, input=rng.standard_normal((2, 3, 7, 6))),
                dict(kernel_size=(3, 2), stride=(2, 1), padding=1, ceil_mode=True,
                     count_include_pad=False, divisor_override=None), seed)
