"""Cases of ``tanprod_conv2d`` (docs/tanprod.md)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from . import Boundary, Case, Golden, common

NAN, INF = np.nan, np.inf

#: The options that keep each argument at its default (crossconv.strategy_options).
PINS = {
    "tanprod_conv2d": {"bias": common.PIN_BIAS, "stride": common.PIN_STRIDE, "padding": common.PIN_PADDING,
                       "dilation": common.PIN_DILATION},
}

# ----------------------------------------------------------------------------- tanprod


def _plant_zero_factors(rng, x, w, stride, padding, dilation, out_size, count):
    """Set ``count`` input cells to ``-w`` of a tap that reads them, so ``tan(x + w) == 0``."""
    n, c, h, wd = x.shape
    for _ in range(count):
        o, ci = rng.integers(w.shape[0]), rng.integers(c)
        i, j = rng.integers(w.shape[2]), rng.integers(w.shape[3])
        y, xo = rng.integers(out_size[0]), rng.integers(out_size[1])
        row = y * stride[0] - padding[0] + i * dilation[0]
        col = xo * stride[1] - padding[1] + j * dilation[1]
        if 0 <= row < h and 0 <= col < wd:
            x[rng.integers(n), ci, row, col] = -w[o, ci, i, j]


@st.composite
def tanprod_conv2d_cases(draw, dtypes=common.DTYPES, max_batch=7, max_channels=2, max_out_channels=2,
                         max_kernel=7, max_stride=2, max_dilation=2, max_padding=1, max_extra=3,
                         max_out_size=159, square=False, square_kernel=False, bias=None,
                         zero_factors=0, nonfinite=True, image_like=False, large=common.LARGE):
    """Calls of ``tanprod_conv2d`` with ``|x + w| <= 1.2`` (tan is well conditioned there).

    ``zero_factors``: this many times, an input cell is set to ``-w`` of a tap that reads
    it (when the drawn cell is not padding), making that factor exactly 0 (where the
    gradient must still be exact). ``nonfinite``: NaN/Inf input cells. ``image_like`` has
    no meaning for a product of tangents and is ignored.
    """
    dtype = draw(st.sampled_from(dtypes))
    stress = common.tier(draw, large, ("batch" if max_batch > common.SMALL_BATCH else "",
                                       "size" if max_out_size > 32 else "",
                                       "kernel" if max_kernel > common.SMALL_KERNEL else ""))
    n = common.draw_batch(draw, stress, max_batch)
    c = draw(st.integers(1, 1 if stress == "kernel" else max_channels))  # long products: 1 channel
    o = draw(st.integers(1, max_out_channels))
    kernel = common.draw_kernel(draw, stress, max_kernel, square_kernel)
    stride, dilation, pad = common.draw_window(draw, kernel, max_stride, max_dilation, max_padding, square)
    h, w = common.draw_sizes(draw, kernel, dilation, pad, stride, max_extra,
                             common.draw_long_axis(draw, stress, max_out_size))
    seed = draw(common.SEED)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.6, 0.6, (n, c, h, w)).astype(dtype)
    weight = rng.uniform(-0.6, 0.6, (o, c, *kernel)).astype(dtype)
    out_size = common.output_sizes((h, w), kernel, stride, pad, dilation)
    _plant_zero_factors(rng, x, weight, stride, pad, dilation, out_size, zero_factors)
    b = rng.standard_normal(o) if common.draw_optional(draw, bias) else None
    tensors = common.cast(dtype, input=x, weight=weight, bias=b)
    params = common.window_params(draw, stride, pad, dilation, square)
    if nonfinite and common.some_draws(draw):
        common.sprinkle_nonfinite(rng, tensors["input"])
    return Case("tanprod_conv2d", tensors, params, seed)


# ----------------------------------------------------------------------------- boundary


def _tanprod(name, seed, input_shape, weight_shape, zeros=(), bias=False, needs=None, **params):
    """``zeros``: ``((n, c, y, x), (o, c, i, j))`` pairs; the input cell is set to minus the
    weight of the tap that reads it, so that factor is exactly ``tan(0) = 0``."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.6, 0.6, input_shape)
    w = rng.uniform(-0.6, 0.6, weight_shape)
    for cell, tap in zeros:
        x[cell] = -w[tap]
    tensors = {"input": x, "weight": w, "bias": rng.standard_normal(weight_shape[0]) if bias else None}
    params = {"stride": 1, "padding": 0, "dilation": 1, **params}
    return Boundary(name, Case("tanprod_conv2d", tensors, params, seed), needs or {})


def tanprod_conv2d_boundary() -> list[Boundary]:
    padded_zero = _tanprod("a padded tap with weight 0: the factor tan(0 + 0) is 0", 132,
                           (1, 1, 3, 3), (1, 1, 2, 2), padding=1)
    padded_zero.case.tensors["weight"][0, 0, 0, 0] = 0.0
    nonfinite = _tanprod("NaN and inf input cells", 133, (1, 2, 3, 4), (2, 2, 2, 2), bias=True,
                         needs={"nonfinite": True})
    nonfinite.case.tensors["input"][0, 0, 0, 0] = NAN
    nonfinite.case.tensors["input"][0, 1, 2, 3] = INF
    return [
        _tanprod("one factor exactly 0 (x + w = 0): the gradient is the other factors' product",
                 130, (1, 1, 3, 4), (1, 1, 2, 2), zeros=[((0, 0, 0, 0), (0, 0, 0, 0))]),
        _tanprod("two zero factors in one window, one in the next", 131, (2, 1, 3, 4), (2, 1, 2, 2),
                 zeros=[((0, 0, 1, 1), (0, 0, 0, 0)), ((0, 0, 2, 2), (0, 0, 1, 1)),
                        ((1, 0, 0, 2), (1, 0, 0, 1))], bias=True),
        padded_zero,
        nonfinite,
        _tanprod("a batch of 3", 134, (3, 1, 3, 3), (1, 1, 2, 2), bias=True),
        _tanprod("an output row of 33: one past a 32-wide tile", 135, (1, 1, 2, 35), (2, 1, 2, 3)),
    ]


# ----------------------------------------------------------------------------- golden


def customconv_map():
    """A 6x5 map and a 3x3 kernel with ``|x + w| <= 1.2``."""
    rng = np.random.default_rng(7)
    return rng.uniform(-0.6, 0.6, (6, 5)), rng.uniform(-0.6, 0.6, (3, 3))


def tanprod_conv2d_goldens() -> list[Golden]:
    """N = C = O = 1, no bias, stride 1, padding 0 is the Torch7 question's
    ``nn.CustomConv(3)``, computed by a transcription of its module's structure."""
    from ..oracles import seed_customconv_2d

    x, w = customconv_map()
    case = Case("tanprod_conv2d", {"input": x[None, None], "weight": w[None, None], "bias": None},
                seed=3)
    return [Golden("CustomConv(3)", "the Torch7 question's nn.CustomConv structure", case,
                   seed_customconv_2d(x, w, kernel="tan")[None, None])]


# ----------------------------------------------------------------------------- reductions


tanprod_conv2d_reduction = common.conv_reduction


# ----------------------------------------------------------------------------- sample


def tanprod_conv2d_sample(dtype="float64", seed=0, smooth=False) -> Case:
    """Padding, dilation and one factor exactly 0 (the gradient is exact there)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.6, 0.6, (2, 2, 6, 5))
    w = rng.uniform(-0.6, 0.6, (3, 2, 2, 3))
    x[1, 0, 2, 3] = -w[2, 0, 1, 1]  # a zero factor: tan(x + w) = 0 at output (1, 2, ., .)
    tensors = common.cast(dtype, input=x, weight=w, bias=rng.standard_normal(3))
    return Case("tanprod_conv2d", tensors, dict(stride=1, padding=1, dilation=(2, 1)), seed)
