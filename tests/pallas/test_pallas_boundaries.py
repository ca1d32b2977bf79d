"""Hand-picked edge cases for the Pallas kernels (interpret mode) against the reference.

- Block boundaries: sizes one below, at and one above each block (flat positions and
  input cells, output and input channel blocks, the dot's 16-wide minimum), where a
  clamped or unmasked lane would show; the "above" cases run in float64 at 1e-10.
- deform: offsets far outside the image (+-1e6, +-inf), landing exactly on -1, 0, H-1, H
  (and W) where torchvision's boundary conventions apply, and NaN in one coordinate.
- tanprod: two zero factors in one window (the leave-one-out products must be exact).
- conv2_5d: even bin counts (the centre on an edge), centre depths <= 0, NaN and inf,
  and an infinite input in a closed bin (NaN, as in the reference).
- pooling: torch's golden case, ties, -inf and NaN windows, ceil-mode overhang.
- an empty batch (N = 0).
"""

import jax.numpy as jnp
import numpy as np
import pytest
from pallas_contract import check

from crossconv.cases import Case
from jax_impl.kernels import conv2_5d, deform, pool, tanprod
from reference.conv2_5d import conv2_5d_signature
from reference.deform import deform_conv2d_signature
from reference.pool import avg_pool2d_signature, max_pool2d_signature
from reference.tanprod import tanprod_conv2d_signature

# The reference computes inf * 0 = NaN on purpose in some of these cases.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")

BELOW_AT_ABOVE = [(-1, "float32"), (0, "float32"), (1, "float64")]


def _rng(seed):
    return np.random.default_rng(seed)


def _cast(dtype, **arrays):
    return {k: None if v is None else np.asarray(v, dtype=dtype) for k, v in arrays.items()}


# Output sizes (oh, ow) with oh*ow = 63, 64, 65 for 64-wide position blocks.
_POSITIONS = {-1: (7, 9), 0: (8, 8), 1: (5, 13)}


@pytest.mark.parametrize("step, dtype", BELOW_AT_ABOVE)
def test_tanprod_block_boundaries(step, dtype):
    assert tanprod.BLOCK_PIXELS == 64
    oh, ow = _POSITIONS[step]
    o = tanprod.BLOCK_CHANNELS + step
    rng = _rng(10 + step)
    tensors = _cast(dtype, input=rng.uniform(-0.6, 0.6, (1, 2, oh + 1, ow + 1)),
                    weight=rng.uniform(-0.6, 0.6, (o, 2, 2, 2)), bias=None)
    check(Case("tanprod_conv2d", tensors, dict(stride=1, padding=0, dilation=1), 10 + step))


def test_tanprod_two_zero_factors_in_one_window():
    rng = _rng(1)
    x = rng.uniform(-0.6, 0.6, (1, 2, 4, 4))
    w = rng.uniform(-0.6, 0.6, (2, 2, 2, 2))
    x[0, 0, 1, 1] = -w[0, 0, 0, 0]  # window (1, 1), tap (0, 0) of channel 0
    x[0, 1, 2, 2] = -w[0, 1, 1, 1]  # the same window, tap (1, 1) of channel 1
    x[0, 1, 2, 1] = -w[1, 1, 1, 0]  # window (1, 1) of output channel 1
    tensors = _cast("float64", input=x, weight=w, bias=None)
    check(Case("tanprod_conv2d", tensors, dict(stride=1, padding=0, dilation=1), 1))


@pytest.mark.parametrize("step, dtype", BELOW_AT_ABOVE)
def test_conv2_5d_block_boundaries(step, dtype):
    assert conv2_5d.BLOCK_PIXELS == 64 and conv2_5d.BLOCK_CHANNELS == 32
    oh, ow = _POSITIONS[step]  # also the input size: 3x3 kernel, padding 1
    c, o = 16 + step, conv2_5d.BLOCK_CHANNELS + step
    rng = _rng(20 + step)
    tensors = _cast(dtype, input=rng.standard_normal((1, c, oh, ow)),
                    depth=rng.integers(1, 12, (1, 1, oh, ow)) * 0.25,
                    weight=rng.standard_normal((3, o, c, 3, 3)), bias=None)
    params = dict(stride=1, padding=1, dilation=1, focal=2.0, pixel_size=1.0)
    check(Case("conv2_5d", tensors, params, 20 + step))


@pytest.mark.parametrize("bins", [2, 4])
def test_conv2_5d_even_bins_and_nonfinite_depth(bins):
    rng = _rng(bins)
    x = rng.standard_normal((2, 2, 5, 6))
    depth = rng.integers(-2, 14, (2, 1, 5, 6)) * 0.25
    depth[0, 0, 1, 1], depth[0, 0, 2, 3], depth[1, 0, 3, 2] = np.nan, np.inf, -np.inf
    depth[1, 0, 0, 0], depth[1, 0, 4, 5] = 0.0, -1.0
    depth[0, 0, 2, 2] = 1.5  # a window with an open bin and the inf neighbour
    x[1, 1, 3, 4] = np.inf  # NaN where its bin is closed, +-inf where open
    tensors = _cast("float64", input=x, depth=depth,
                    weight=rng.standard_normal((bins, 3, 2, 3, 3)), bias=None)
    params = dict(stride=1, padding=1, dilation=1, focal=1.0, pixel_size=0.5)
    check(Case("conv2_5d", tensors, params, bins))


def _deform_case(dtype, seed, n, c, h, w, o, groups, offset_groups, kernel, targets, mask=True):
    """A deform case (padding 1, stride 1) whose sample points are drawn from ``targets``
    (absolute coordinates, or "inside" for a continuous point inside the image)."""
    rng = _rng(seed)
    kh, kw = kernel
    oh, ow = h + 2 - kh + 1, w + 2 - kw + 1
    taps = kh * kw
    shape = (n, offset_groups, taps, oh, ow)
    base_y = (np.arange(oh)[:, None] - 1 + np.repeat(np.arange(kh), kw)[:, None, None])
    base_x = (np.arange(ow)[None, :] - 1 + np.tile(np.arange(kw), kh)[:, None, None])

    def axis(size, base):
        choice = rng.integers(0, len(targets), shape)
        inside = rng.uniform(-0.9, size - 0.1, shape)
        value = np.zeros(shape)
        for k, target in enumerate(targets):
            if target == "inside":
                value = np.where(choice == k, inside - base, value)
            elif target in ("H", "H-1"):
                value = np.where(choice == k, size - (target == "H-1") - base, value)
            elif abs(target) >= 1e6:  # an offset, not a coordinate
                value = np.where(choice == k, target, value)
            else:
                value = np.where(choice == k, target - base, value)
        return value

    dy, dx = axis(h, base_y), axis(w, base_x)
    offset = np.stack([dy, dx], axis=3).reshape(n, 2 * offset_groups * taps, oh, ow)
    tensors = _cast(dtype, input=rng.standard_normal((n, c, h, w)), offset=offset,
                    weight=rng.standard_normal((o, c // groups, kh, kw)), bias=None,
                    mask=rng.uniform(0.0, 1.0, (n, offset_groups * taps, oh, ow)) if mask else None)
    return Case("deform_conv2d", tensors, dict(stride=1, padding=1, dilation=1), seed)


@pytest.mark.parametrize("step, dtype", BELOW_AT_ABOVE)
def test_deform_block_boundaries(step, dtype):
    assert deform.BLOCK_PIXELS == 64
    oh, ow = _POSITIONS[step]  # 3x3 kernel, padding 1: input size = output size
    cg = og = 16 + step
    check(_deform_case(dtype, 30 + step, 1, cg, oh, ow, og, 1, 1, (3, 3),
                       ["inside", "inside", -1, "H"]))


BORDERS = ["inside", "inside", -1, 0, "H-1", "H", 1e6, -1e6, np.inf, -np.inf]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_deform_offsets_far_outside_and_exactly_on_the_border(dtype):
    check(_deform_case(dtype, 40, 2, 4, 4, 5, 6, 2, 2, (3, 3), BORDERS))


def test_deform_offsets_on_the_border_without_a_mask():
    check(_deform_case("float64", 41, 1, 3, 3, 4, 2, 1, 3, (2, 3), BORDERS, mask=False))


def test_deform_nan_in_one_offset_coordinate():
    case = _deform_case("float64", 42, 2, 2, 4, 4, 2, 1, 2, (3, 3), ["inside", -1, "H"])
    offset = case.tensors["offset"].copy()
    offset[0, 2 * 9 + 2 * 4, 1, 2] = np.nan  # group 1, centre tap, dy only
    offset[1, 2 * 0 + 1, 3, 0] = np.nan  # group 0, tap 0, dx only
    check(case.with_tensor("offset", offset))


def test_deform_border_rule_with_nonfinite_input():
    """At exactly y = -1 (or x = -1) the corner on row (column) 0 has weight 0: the sample is
    0 by the border rule even when that cell is inf or NaN (0 * inf would be NaN)."""
    rng = _rng(43)
    h, w = 4, 5
    x = rng.standard_normal((1, 2, h, w))
    x[0, 0, 0, 1], x[0, 1, 1, 0] = np.inf, np.nan
    y = rng.uniform(1.2, h - 1.2, (h, w))
    xs = rng.uniform(1.2, w - 1.2, (h, w))
    y[0, :2], xs[0, :2] = -1.0, 1.0  # on row -1, next to the inf
    y[1, :2], xs[1, :2] = 1.0, -1.0  # on column -1, next to the NaN
    base_y, base_x = np.arange(h)[:, None], np.arange(w)[None, :]
    offset = np.stack([y - base_y, xs - base_x])[None]
    tensors = _cast("float64", input=x, offset=offset, weight=rng.standard_normal((3, 2, 1, 1)),
                    bias=None, mask=rng.uniform(0.5, 1.0, (1, 1, h, w)))
    check(Case("deform_conv2d", tensors, dict(stride=1, padding=0, dilation=1), 43))


# Pooling: planes 15/16/17 around the 16-plane block; flat positions (kernel 2, stride 1)
# or input cells (kernel 3, stride 2, padding 1) 127/128/129 around the 128-wide block.
_PLANES = {-1: (3, 5), 0: (2, 8), 1: (1, 17)}
_POOL_SIZES = {
    "positions": {-1: (2, 128), 0: (9, 17), 1: (4, 44)},
    "cells": {-1: (1, 127), 0: (8, 16), 1: (3, 43)},
}
_POOL_WINDOWS = {"positions": dict(kernel_size=2, stride=1, padding=0),
                 "cells": dict(kernel_size=3, stride=2, padding=1)}


@pytest.mark.parametrize("kind", ["positions", "cells"])
@pytest.mark.parametrize("step, dtype", BELOW_AT_ABOVE)
@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_pool_block_boundaries(op, step, dtype, kind):
    assert pool.BLOCK_PLANES == 16 and pool.BLOCK_PIXELS == 128
    rng = _rng(50 + step)
    x = rng.choice([-2.0, -1.0, 1.0, 2.0], (*_PLANES[step], *_POOL_SIZES[kind][step]))
    params = dict(_POOL_WINDOWS[kind], ceil_mode=True)
    if op == "max_pool2d":
        params.update(dilation=1, return_indices=True)
    else:
        params.update(count_include_pad=False, divisor_override=None)
    check(Case(op, _cast(dtype, input=x), params, 50 + step))


def test_max_pool_golden_case_and_indices():
    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    params = dict(kernel_size=2, stride=None, padding=0, dilation=1, ceil_mode=False,
                  return_indices=True)
    check(Case("max_pool2d", _cast("float64", input=x), params, 0))


def test_max_pool_ties_infinities_and_nan():
    x = np.array([[[[1.0, 1.0, -np.inf, -np.inf, 2.0],
                    [1.0, 1.0, -np.inf, -np.inf, np.nan],
                    [np.nan, 3.0, np.nan, 0.0, 0.0],
                    [3.0, 3.0, 0.0, np.inf, np.inf]]]])
    params = dict(kernel_size=2, stride=2, padding=1, dilation=1, ceil_mode=True,
                  return_indices=True)
    check(Case("max_pool2d", _cast("float32", input=x), params, 0))


@pytest.mark.parametrize("count_include_pad, divisor_override", [(True, None), (False, -3)])
def test_avg_pool_ceil_mode_overhang(count_include_pad, divisor_override):
    x = _rng(7).standard_normal((1, 2, 5, 7))
    params = dict(kernel_size=(3, 2), stride=(2, 3), padding=1, ceil_mode=True,
                  count_include_pad=count_include_pad, divisor_override=divisor_override)
    check(Case("avg_pool2d", _cast("float64", input=x), params, 7))


def test_an_empty_batch_gives_empty_results_and_zero_parameter_gradients():
    geometry = tanprod_conv2d_signature((0, 2, 5, 5), (3, 2, 3, 3), None, padding=1).geometry
    x, w = jnp.zeros((0, 2, 5, 5)), jnp.ones((3, 2, 3, 3))
    assert tanprod.forward(x, w, geometry).shape == (0, 3, 5, 5)
    gi, gw = tanprod.backward(jnp.zeros((0, 3, 5, 5)), x, w, geometry)
    assert gi.shape == (0, 2, 5, 5) and gw.shape == w.shape and not gw.any()
    sig = deform_conv2d_signature((0, 2, 5, 5), (0, 18, 5, 5), (3, 2, 3, 3), None, padding=1,
                                  mask=(0, 9, 5, 5))
    args = (x, jnp.zeros((0, 18, 5, 5)), w, jnp.zeros((0, 9, 5, 5)), sig.geometry, 1, 1)
    assert deform.forward(*args).shape == (0, 3, 5, 5)
    grads = deform.backward(jnp.zeros((0, 3, 5, 5)), *args)
    assert [g.shape for g in grads] == [(0, 2, 5, 5), (0, 18, 5, 5), w.shape, (0, 9, 5, 5)]
    assert not grads[2].any()
    sig = conv2_5d_signature((0, 2, 5, 5), (0, 1, 5, 5), (3, 3, 2, 3, 3), None, padding=1)
    d, w5 = jnp.zeros((0, 1, 5, 5)), jnp.ones((3, 3, 2, 3, 3))
    assert conv2_5d.forward(x, d, w5, sig.geometry, 1.0, 1.0).shape == (0, 3, 5, 5)
    gi, gw = conv2_5d.backward(jnp.zeros((0, 3, 5, 5)), x, d, w5, sig.geometry, 1.0, 1.0)
    assert gi.shape == x.shape and gw.shape == w5.shape and not gw.any()
    g = max_pool2d_signature((0, 2, 5, 5), 2)
    out, index = pool.max_forward(x, g)
    assert out.shape == index.shape == (0, 2, 2, 2)
    assert pool.max_backward(out, index, g).shape == x.shape
    g = avg_pool2d_signature((0, 2, 5, 5), 2)
    assert pool.avg_forward(x, g, True, None).shape == (0, 2, 2, 2)
    assert pool.avg_backward(jnp.zeros((0, 2, 2, 2)), g, True, None).shape == x.shape
