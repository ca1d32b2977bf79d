"""Deformable convolution v1 (no mask) and v2 (mask), ``torchvision.ops.deform_conv2d``
semantics, in XLA; docs/deform.md and ``reference/deform.py`` define it.

For output ``(n, o, yo, xo)`` and tap ``k = i*kw + j``, input channel ``c`` (offset group
``g = c // (C/Go)``) is sampled bilinearly at ``y = yo*sh - ph + i*dh + dy``,
``x = xo*sw - pw + j*dw + dx`` and ``out = bias + sum w * mask * sample``.

How it runs: one ``lax.scan`` over the ``kh*kw`` taps. Per tap, every sample point's
four bilinear corners are gathered as whole channel rows, per sample, from a
channels-last table ``[N, Go*H*W + 1, C/Go]`` whose last row is zeros (what corners off
the image read), combined into the tap's columns and contracted with the tap's weight
slice in one matrix product per weight group. The backward (a ``jax.custom_vjp``:
torchvision's conventions, which autodiff of ``floor`` would not give) walks the taps
again, recomputes the same gathers, scatter-adds the input gradient into an input-sized
accumulator and reduces the offset and mask gradients over channels with batched dots.
At any time it holds one tap's columns, never the ``kh*kw``-fold buffer of im2col; the
per-point sampling data reaches each backward step through the loop carry
(:func:`_tap_loop`). The batch is a batch axis of every gather and scatter, so a
batch-sharded call stays sharded.

``forward`` / ``backward`` are the native implementations of the kernel contract (the
Pallas kernels in ``jax_impl.kernels.deform`` expose the same functions).
"""

from __future__ import annotations

import functools
import math
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from reference.common import shape_of
from reference.deform import deform_conv2d_signature

from . import common
from . import geometry as geo

OP = "deform_conv2d"


# ----------------------------------------------------------------------------- sampling


class _Points(NamedTuple):
    """What one tap's sampling needs per point (never per channel): arrays ``[N, Go, 4, P]``
    over the four bilinear corners ``(y0, x0), (y0, x0+1), (y0+1, x0), (y0+1, x0+1)``, and
    ``outside [N, Go, P]``.

    ``read`` is the corner's row in the sample's table, or the table's zero row when the
    corner is off the image (so it reads 0 whatever the input holds). ``write`` is where
    its input gradient goes: the zero row (a dummy, dropped at the end) unless the corner
    is inside with both weight factors > 0 (torchvision's ``|y - row| < 1``). ``weight``
    is the bilinear weight, ``d_dy``/``d_dx`` its derivatives (right-hand at integers:
    floor picks the cell below/right); all three are NaN at a NaN point, which makes its
    sample and its offset and mask gradients NaN. ``outside`` marks the points whose
    sample is 0 by the border rule (``y <= -1 or y >= H or x <= -1 or x >= W``).
    """

    read: jax.Array
    write: jax.Array
    weight: jax.Array
    d_dy: jax.Array
    d_dx: jax.Array
    outside: jax.Array


def _points(layout, offset_taps, t, dtype):
    """The :class:`_Points` of tap ``t`` from ``offset_taps [K, N, Go, 2, P]``."""
    geometry, height, width = layout.geometry, layout.h, layout.w
    offset = lax.dynamic_index_in_dim(offset_taps, t, keepdims=False)
    i0, j0 = geo.tap_start(geometry, t)  # i*dh, j*dw
    oh, ow = geometry.out_size
    rows = jnp.broadcast_to(geo.positions(geometry, 0).astype(np.int32)[:, None], (oh, ow))
    cols = jnp.broadcast_to(geo.positions(geometry, 1).astype(np.int32)[None, :], (oh, ow))
    # The integer part is exact, so each coordinate is one rounding, as in torchvision.
    y = (rows.reshape(-1) + i0).astype(dtype) + offset[:, :, 0]
    x = (cols.reshape(-1) + j0).astype(dtype) + offset[:, :, 1]
    not_a_point, outside, row0, col0, ly, lx = geo.sample_cells(y, x, height, width)
    zero_row = layout.zero_row
    fields = {name: [] for name in ("read", "write", "weight", "d_dy", "d_dx")}
    nan = jnp.asarray(jnp.nan, dtype)
    for row, wy, sy in ((row0, 1 - ly, -1), (row0 + 1, ly, 1)):
        for col, wx, sx in ((col0, 1 - lx, -1), (col0 + 1, lx, 1)):
            inside = (row >= 0) & (row < height) & (col >= 0) & (col < width)
            index = layout.plane_start + row * width + col
            fields["read"].append(jnp.where(inside, index, zero_row))
            contributes = inside & (wy > 0) & (wx > 0) & ~not_a_point
            fields["write"].append(jnp.where(contributes, index, zero_row))
            for name, value in (("weight", wy * wx), ("d_dy", sy * wx), ("d_dx", wy * sx)):
                fields[name].append(jnp.where(not_a_point, nan, value))
    stacked = {name: jnp.stack(values, axis=2) for name, values in fields.items()}
    return _Points(**stacked, outside=outside)


def _read(table, points):
    """The four corners' channel rows, ``[N, Go, P, C/Go]`` each, from ``table
    [N, Go*H*W + 1, C/Go]``: whole rows gathered per sample (the batch is a gather batch
    axis, so a batch-sharded call stays sharded), one gather per corner, which XLA fuses
    into the elementwise work that consumes it."""
    n, go, _, p = points.read.shape
    values = []
    for k in range(4):
        index = points.read[:, :, k].reshape(n, go * p)
        rows = jax.vmap(functools.partial(jnp.take, axis=0, mode="clip"))(table, index)
        values.append(rows.reshape(n, go, p, table.shape[-1]))
    return values


def _weighted(points, field, values):
    """``sum over corners of points.<field> * value``, for per-corner values ``[N, Go, P]``
    or ``[N, Go, P, C/Go]``."""
    factors = getattr(points, field)
    total = None
    for k, value in enumerate(values):
        factor = factors[:, :, k]
        term = (factor if value.ndim == factor.ndim else factor[..., None]) * value
        total = term if total is None else total + term
    return total


def _sample(points, values):
    """Bilinear samples ``[N, Go, P, C/Go]`` (before the mask)."""
    sample = _weighted(points, "weight", values)
    return jnp.where(points.outside[..., None], jnp.zeros((), sample.dtype), sample)


def _scatter_add(table, points, rows):
    """``table`` plus ``rows [N, Go, 4, P, C/Go]`` at the corners' ``write`` rows: one
    scatter per sample (the batch is a scatter batch axis)."""
    n = table.shape[0]
    index = points.write.reshape(n, math.prod(points.write.shape[1:]))
    rows = rows.reshape(n, index.shape[1], table.shape[-1])
    return jax.vmap(lambda t, i, r: t.at[i].add(r, mode="promise_in_bounds"))(table, index, rows)


def _channel_dot(a, b):
    """``sum_c a * b`` over the channel axis of ``[N, Go, P, C/Go]`` arrays, as a batched
    dot: XLA:CPU compiles the equivalent multiply-and-reduce into a much slower loop."""
    return lax.dot_general(a, b, (((3,), (3,)), ((0, 1, 2), (0, 1, 2))),
                           precision=common.PRECISION)


def _tap_loop(layout, offset, step, init, xs, hand_over):
    """``lax.scan`` of ``step(carry, points, xs_t) -> (carry, ys_t)`` over the taps.

    ``hand_over``: tap t+1's :class:`_Points` are computed at the end of step t and passed
    on in the loop's carry, which makes XLA materialise them once per tap. The backward
    needs that: it reads them in a dozen per-channel fusions, and fused into each one
    they would be recomputed there for every channel (2.5x slower at the benchmark's
    shape). The forward reads them in one fusion, where XLA hoists the per-point work out
    of the loop over channels, and computing them in place is faster (16 vs 25 ms).
    """
    offset_taps = layout.offset_taps(offset)
    dtype = offset.dtype
    last = layout.taps - 1

    def body(carry, tap):
        t, tap_xs = tap
        if not hand_over:
            state, ys = step(carry, _points(layout, offset_taps, t, dtype), tap_xs)
            return state, ys
        state, points = carry
        state, ys = step(state, points, tap_xs)
        return (state, _points(layout, offset_taps, jnp.minimum(t + 1, last), dtype)), ys

    start = (init, _points(layout, offset_taps, 0, dtype)) if hand_over else init
    carry, ys = lax.scan(body, start, (geo.tap_indices(layout.geometry), xs))
    return (carry[0] if hand_over else carry), ys


class _Layout:
    """Reshapes between the contract's NCHW tensors and the scan's per-tap slices."""

    def __init__(self, input, weight, geometry, groups, offset_groups):
        self.n, self.c, self.h, self.w = input.shape
        self.o = weight.shape[0]
        self.groups, self.go = groups, offset_groups
        self.cg = self.c // offset_groups
        self.taps = geometry.kernel[0] * geometry.kernel[1]
        self.p = geometry.out_size[0] * geometry.out_size[1]
        self.geometry = geometry
        # Offset group g's rows start at g*H*W in a sample's table; one zero row follows.
        self.plane_start = (jnp.arange(self.go, dtype=jnp.int32) * (self.h * self.w))[:, None]
        self.zero_row = self.go * self.h * self.w

    def table(self, input):
        """``[N, C, H, W] -> [N, Go*H*W + 1, C/Go]``: rows of one offset group's channels,
        then a row of zeros (what corners off the image read)."""
        x = input.reshape(self.n, self.go, self.cg, self.h * self.w)
        rows = jnp.transpose(x, (0, 1, 3, 2)).reshape(self.n, self.zero_row, self.cg)
        return jnp.pad(rows, ((0, 0), (0, 1), (0, 0)))

    def untable(self, table):
        """Inverse of :meth:`table`, dropping the zero (in a gradient: dummy) row."""
        x = table[:, :self.zero_row].reshape(self.n, self.go, self.h * self.w, self.cg)
        return jnp.transpose(x, (0, 1, 3, 2)).reshape(self.n, self.c, self.h, self.w)

    def offset_taps(self, offset):
        """``[N, 2*Go*K, oh, ow] -> [K, N, Go, 2, P]``."""
        off = offset.reshape(self.n, self.go, self.taps, 2, self.p)
        return jnp.transpose(off, (2, 0, 1, 3, 4))

    def offset_from_taps(self, taps):
        return jnp.transpose(taps, (1, 2, 0, 3, 4)).reshape(self.n, 2 * self.go * self.taps,
                                                            *self.geometry.out_size)

    def mask_taps(self, mask):
        """``[N, Go*K, oh, ow] -> [K, N, Go, P]``."""
        m = mask.reshape(self.n, self.go, self.taps, self.p)
        return jnp.transpose(m, (2, 0, 1, 3))

    def mask_from_taps(self, taps):
        return jnp.transpose(taps, (1, 2, 0, 3)).reshape(self.n, self.go * self.taps,
                                                         *self.geometry.out_size)

    def columns(self, grouped):
        """``[N, Go, P, C/Go] -> [G, N*P, C/G]``: one matrix per weight group (plain
        reshapes, no copy, when G = Go = 1)."""
        cols = jnp.transpose(grouped, (0, 2, 1, 3)).reshape(self.n * self.p, self.groups,
                                                            self.c // self.groups)
        return jnp.transpose(cols, (1, 0, 2))

    def by_offset_group(self, cols):
        """Inverse of :meth:`columns`."""
        cols = jnp.transpose(cols, (1, 0, 2)).reshape(self.n, self.p, self.go, self.cg)
        return jnp.transpose(cols, (0, 2, 1, 3))

    def output(self, out):
        """``[G, N*P, O/G] -> [N, O, oh, ow]``."""
        out = out.reshape(self.groups, self.n, *self.geometry.out_size, self.o // self.groups)
        return jnp.transpose(out, (1, 0, 4, 2, 3)).reshape(self.n, self.o, *self.geometry.out_size)

    def grad_output(self, grad_out):
        """Inverse of :meth:`output`."""
        g = grad_out.reshape(self.n, self.groups, self.o // self.groups, self.p)
        return jnp.transpose(g, (1, 0, 3, 2)).reshape(self.groups, self.n * self.p,
                                                      self.o // self.groups)

    def weight_taps(self, weight):
        """``[O, C/G, kh, kw] -> [K, G, O/G, C/G]``: each tap's matrices."""
        return common.kernel_taps(weight).reshape(self.taps, self.groups, self.o // self.groups, -1)

    def weight_from_taps(self, taps):
        """Inverse of :meth:`weight_taps`."""
        return common.from_kernel_taps(taps.reshape(self.taps, self.o, -1), self.geometry.kernel)


def _contract(a, b, a_axis, b_axis):
    """Per weight group (axis 0), ``a`` and ``b`` contracted over one axis each, at full
    precision: ``[G, M, K] x [G, N, K] -> [G, M, N]`` for axes 2, 2."""
    return lax.dot_general(a, b, (((a_axis,), (b_axis,)), ((0,), (0,))),
                           precision=common.PRECISION)


# ----------------------------------------------------------------------------- contract


def _mask_xs(layout, mask):
    return None if mask is None else layout.mask_taps(mask)


def forward(input, offset, weight, mask, geometry, groups, offset_groups):
    """Deformable convolution without bias: ``[N, O, oh, ow]``.

    input ``[N, C, H, W]``, offset ``[N, 2*Go*kh*kw, oh, ow]``, weight ``[O, C/G, kh, kw]``,
    mask ``[N, Go*kh*kw, oh, ow]`` or None; all one dtype.
    """
    layout = _Layout(input, weight, geometry, groups, offset_groups)
    table = layout.table(input)

    def step(out, points, tap):
        weight_k, mask_k = tap
        cols = _sample(points, _read(table, points))
        if mask_k is not None:
            cols = cols * mask_k[..., None]
        return out + _contract(layout.columns(cols), weight_k, 2, 2), None

    out = jnp.zeros((groups, layout.n * layout.p, layout.o // groups), input.dtype)
    out, _ = _tap_loop(layout, offset, step, out,
                       (layout.weight_taps(weight), _mask_xs(layout, mask)), hand_over=False)
    return layout.output(out)


def backward(grad_out, input, offset, weight, mask, geometry, groups, offset_groups):
    """Gradients of :func:`forward`: ``(grad_input, grad_offset, grad_weight, grad_mask)``
    (``grad_mask`` None without a mask), torchvision's conventions (module docstring)."""
    layout = _Layout(input, weight, geometry, groups, offset_groups)
    table = layout.table(input)
    gout = layout.grad_output(grad_out)

    def step(grad_table, points, tap):
        weight_k, mask_k = tap
        values = _read(table, points)
        sample = _sample(points, values)
        cols = sample if mask_k is None else sample * mask_k[..., None]
        grad_w = _contract(gout, layout.columns(cols), 1, 1)
        grad_cols = layout.by_offset_group(_contract(gout, weight_k, 2, 1))
        grad_sample = grad_cols if mask_k is None else grad_cols * mask_k[..., None]
        # Input: each corner's share, to its write row.
        grad_table = _scatter_add(grad_table, points,
                                  points.weight[..., None] * grad_sample[:, :, None])
        # Offsets and mask (no whole-sample early-out: torchvision's rule).
        finite = jnp.isfinite(grad_cols).all()
        if mask_k is not None:
            finite = finite & jnp.isfinite(mask_k).all()
        grad_offset, grad_mask = lax.cond(
            finite, _offset_and_mask_grads, _exact_offset_and_mask_grads,
            points, values, sample, grad_cols, mask_k)
        return grad_table, (grad_offset, grad_w, grad_mask)

    grad_table, (grad_offset, grad_w, grad_mask) = _tap_loop(
        layout, offset, step, jnp.zeros_like(table),
        (layout.weight_taps(weight), _mask_xs(layout, mask)), hand_over=True)
    return (layout.untable(grad_table), layout.offset_from_taps(grad_offset),
            layout.weight_from_taps(grad_w),
            None if mask is None else layout.mask_from_taps(grad_mask))


def _offset_and_mask_grads(points, values, sample, grad_cols, mask):
    """One tap's offset gradient ``[N, Go, 2, P]`` and mask gradient ``[N, Go, P]`` (None
    without a mask) for finite column gradients and mask: the bilinear weights'
    derivatives times each corner's channel sum ``sum_c grad_cols * value``."""
    along = [_channel_dot(grad_cols, value) for value in values]
    grad_offset = jnp.stack([_weighted(points, "d_dy", along),
                             _weighted(points, "d_dx", along)], axis=2)
    if mask is None:
        return grad_offset, None
    grad_mask = jnp.where(points.outside, jnp.zeros((), sample.dtype),
                          _weighted(points, "weight", along))
    return grad_offset * mask[:, :, None], grad_mask


def _exact_offset_and_mask_grads(points, values, sample, grad_cols, mask):
    """:func:`_offset_and_mask_grads` where the column gradients or the mask are not all
    finite, in the reference's order: per channel the corners' weighted sum first (finite
    for finite data), then its product with the column gradient times the mask, then the
    sum over channels. The channel sums per corner would turn an infinite column
    gradient into differences of infinities (NaN where the reference has inf), meet zero
    corner weights in the mask gradient, and put an infinite mask on the channels' sum
    rather than on each channel's term."""
    grad_sample = grad_cols if mask is None else grad_cols * mask[..., None]
    grad_offset = jnp.stack([_channel_dot(grad_sample, _weighted(points, "d_dy", values)),
                             _channel_dot(grad_sample, _weighted(points, "d_dx", values))],
                            axis=2)
    return grad_offset, None if mask is None else _channel_dot(grad_cols, sample)


# ----------------------------------------------------------------------------- the op


def _functions(impl):
    """The contract functions for a resolved ``impl``: this module or the Pallas kernels."""
    return sys.modules[__name__] if impl == "native" else common.kernel_module(OP, "deform")


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6, 7))
def _deform(input, offset, weight, mask, geometry, groups, offset_groups, impl):
    return common.call_compiled(_functions(impl).forward, input, offset, weight, mask, geometry,
                                groups, offset_groups)


def _deform_fwd(input, offset, weight, mask, geometry, groups, offset_groups, impl):
    out = _deform(input, offset, weight, mask, geometry, groups, offset_groups, impl)
    return out, (input, offset, weight, mask)


def _deform_bwd(geometry, groups, offset_groups, impl, residuals, grad_out):
    return tuple(common.call_compiled(_functions(impl).backward, grad_out, *residuals, geometry,
                                      groups, offset_groups))


_deform.defvjp(_deform_fwd, _deform_bwd)


def deform_conv2d(input, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None,
                  *, impl="auto"):
    """Deformable convolution v1 / v2 (torchvision semantics).

    Args:
        input: ``[N, C, H, W]``.
        offset: ``[N, 2*Go*kh*kw, oh, ow]``, interleaved ``(dy, dx)`` per tap; ``Go`` offset
            groups (input channel c uses group ``c // (C/Go)``).
        weight: ``[O, C/G, kh, kw]``, ``G = C // weight.shape[1]`` weight groups.
        bias: ``[O]`` or None.
        stride, padding, dilation: int or ``(h, w)`` (static Python values).
        mask: ``[N, Go*kh*kw, oh, ow]`` modulation (v2) or None (v1).
        impl: ``"auto"`` (Pallas kernel on a GPU, XLA elsewhere), ``"native"``, ``"pallas"``.

    Returns:
        ``[N, O, oh, ow]`` in the input's dtype. Differentiable in every tensor argument
        (a ``jax.custom_vjp``: reverse mode only).
    """
    input, offset, weight, bias, mask = common.as_arrays(OP, input=input, offset=offset,
                                                         weight=weight, bias=bias, mask=mask)
    common.check_static(OP, stride=stride, padding=padding, dilation=dilation, impl=impl)
    common.check_dtypes(OP, input=input, offset=offset, weight=weight, bias=bias, mask=mask)
    sig = deform_conv2d_signature(input.shape, offset.shape, weight.shape, shape_of(bias), stride,
                                  padding, dilation, shape_of(mask))
    impl = common.resolve_impl(OP, impl, "deform")
    result, compute = common.result_and_compute_dtypes(input.dtype)
    input, offset, weight, bias, mask = common.cast(compute, input, offset, weight, bias, mask)
    out = _deform(input, offset, weight, mask, sig.geometry, sig.groups, sig.offset_groups, impl)
    return common.add_bias(out, bias).astype(result)
