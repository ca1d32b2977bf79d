"""The window geometry (``reference.common.Geometry``) on JAX arrays: the one place
jax_impl pads an input, takes what a kernel tap reads, undoes the padding, places the
taps, and computes the per-op geometry every op and Pallas kernel shares (deform's
border rule, conv2_5d's depth-bin edges; the depth-aware centres are the reference's,
static at trace time).

Taps. For a kernel tap ``t = i*kw + j`` of a geometry, :func:`tap` is what that tap
reads at every output position of a padded channels-last array ``xpad [N, Hp, Wp, C]``::

    tap(xpad, geometry, t)[n, y, x, c] == xpad[n, y*sh + i*dh, x*sw + j*dw, c]

and :func:`add_tap` is its adjoint (add ``value`` back at those cells). Both take a traced
tap index, so the ops loop over taps with ``lax.scan`` and hold one tap's work at a time:
nothing ``kh*kw`` times the input is ever materialised, in the forward or the backward.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax


def pad_hw(x, geometry, value=0.0):
    """Pad the two spatial axes of ``[N, H, W, C]`` (constant ``value``)."""
    (top, left), (bottom, right) = geometry.pad_before, geometry.pad_after
    config = [(0, 0, 0), (top, bottom, 0), (left, right, 0), (0, 0, 0)]
    return lax.pad(x, jnp.asarray(value, x.dtype), config)


def unpad_hw(xpad, geometry):
    """Inverse of :func:`pad_hw`: the unpadded ``[N, H, W, C]`` part."""
    (top, left), (h, w) = geometry.pad_before, geometry.in_size
    return xpad[:, top:top + h, left:left + w, :]


def _tap_window(geometry):
    """Extent of one tap's strided view in the padded input, rows and columns."""
    (sh, sw), (oh, ow) = geometry.stride, geometry.out_size
    return sh * (oh - 1) + 1, sw * (ow - 1) + 1


def tap_start(geometry, t):
    """Padded-input row and column where (possibly traced) tap ``t = i*kw + j`` starts."""
    t = jnp.asarray(t, jnp.int32)
    kw = geometry.kernel[1]
    (dh, dw) = geometry.dilation
    return (t // kw) * dh, (t % kw) * dw


def tap(xpad, geometry, t):
    """``[N, oh, ow, C]``: what tap ``t`` reads from ``xpad [N, Hp, Wp, C]``."""
    rows, cols = _tap_window(geometry)
    i0, j0 = tap_start(geometry, t)
    zero = jnp.zeros((), jnp.int32)
    window = lax.dynamic_slice(xpad, (zero, i0, j0, zero),
                               (xpad.shape[0], rows, cols, xpad.shape[3]))
    return window[:, ::geometry.stride[0], ::geometry.stride[1], :]


def add_tap(grad_pad, geometry, t, value):
    """Adjoint of :func:`tap`: ``grad_pad`` plus ``value [N, oh, ow, C]`` at tap ``t``'s cells."""
    rows, cols = _tap_window(geometry)
    (sh, sw) = geometry.stride
    spread = lax.pad(value, jnp.zeros((), value.dtype),
                     [(0, 0, 0), (0, 0, sh - 1), (0, 0, sw - 1), (0, 0, 0)])
    i0, j0 = tap_start(geometry, t)
    zero = jnp.zeros((), jnp.int32)
    start = (zero, i0, j0, zero)
    current = lax.dynamic_slice(grad_pad, start, (grad_pad.shape[0], rows, cols, grad_pad.shape[3]))
    return lax.dynamic_update_slice(grad_pad, current + spread, start)


def tap_indices(geometry):
    """``[kh*kw]`` int32 tap indices, the ``xs`` of a scan over taps."""
    return jnp.arange(geometry.kernel[0] * geometry.kernel[1], dtype=jnp.int32)


def positions(geometry, axis):
    """Unpadded input coordinate of tap 0 along ``axis`` per output, as a NumPy int array."""
    return np.arange(geometry.out_size[axis]) * geometry.stride[axis] - geometry.pad_before[axis]


def centre_tap(geometry) -> int:
    """The tap at the middle of an odd kernel, ``(kh//2) * kw + kw//2`` (conv2_5d's centre)."""
    kh, kw = geometry.kernel
    return (kh // 2) * kw + kw // 2


def bin_edges(centre, steps, focal, pixel_size):
    """conv2_5d's depth-bin edges ``d_c + (k - B/2) * s`` with ``s = d_c * pixel_size /
    focal``, in exactly this form (docs/conv2_5d.md: a tap on an edge must fall in the
    same bin everywhere). ``steps`` is ``k - B/2`` (broadcast against ``centre``)."""
    s = centre * pixel_size / focal
    return centre + steps * s


def bin_steps(bins: int, dtype):
    """``k - B/2`` for the ``B + 1`` edges ``k = 0..B``."""
    return jnp.arange(bins + 1, dtype=dtype) - bins / 2


def sample_cells(y, x, height: int, width: int):
    """deform's bilinear cells of sample points ``(y, x)`` on an image ``height x width``:
    ``(not_a_point, outside, row0, col0, ly, lx)``. ``not_a_point``: a coordinate is NaN;
    ``outside``: the border rule (``y <= -1 or y >= H or x <= -1 or x >= W``, docs/deform.md)
    samples 0 (a NaN point is not outside); ``row0, col0`` (int32) the upper-left corner
    and ``ly, lx`` the fractions. Far points are clipped first (all corners stay outside,
    and the floor fits an int32)."""
    not_a_point = jnp.isnan(y) | jnp.isnan(x)
    y = jnp.clip(jnp.where(not_a_point, -2.0, y), -2.0, height + 1.0)
    x = jnp.clip(jnp.where(not_a_point, -2.0, x), -2.0, width + 1.0)
    outside = ((y <= -1) | (y >= height) | (x <= -1) | (x >= width)) & ~not_a_point
    y0, x0 = jnp.floor(y), jnp.floor(x)
    return not_a_point, outside, y0.astype(jnp.int32), x0.astype(jnp.int32), y - y0, x - x0
