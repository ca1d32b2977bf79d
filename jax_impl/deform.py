"""Deformable convolution v1 (no mask) and v2 (mask), ``torchvision.ops.deform_conv2d``
semantics, in XLA; SPEC.md and ``reference/deform.py`` define it.

For output ``(n, o, yo, xo)`` and tap ``k = i*kw + j``, input channel ``c`` (offset group
``g = c // (C/Go)``) is sampled bilinearly at ``y = yo*sh - ph + i*dh + dy``,
``x = xo*sw - pw + j*dw + dx`` and ``out = bias + sum w * mask * sample``.

How it runs: one ``lax.scan`` over the ``kh*kw`` taps. Per tap, the four bilinear corners
of every sample point are gathered as whole channel rows from a channels-last table
``[N*Go*H*W, C/Go]`` (one gather of contiguous rows, not one per value), combined into
the tap's columns ``[N, oh*ow, C]`` and contracted with the tap's weight slice on the
matrix unit. The backward (a ``jax.custom_vjp``: torchvision's conventions, which plain
autodiff of ``floor`` would not give) walks the taps again, recomputes the same gathers,
and scatter-adds the input gradient into an input-sized accumulator: at any time it
holds one tap's columns, never the ``kh*kw``-fold column buffer of im2col.

``forward`` / ``backward`` are the native implementations of the kernel contract (the
Pallas kernels in ``jax_impl.kernels.deform`` expose the same functions).
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from reference.common import deform_signature, shape_of

from . import common

OP = "deform_conv2d"


# ----------------------------------------------------------------------------- sampling


def _tap_points(offset_k, geometry, t, dtype):
    """Sampling coordinates ``y, x [N, Go, oh*ow]`` of tap ``t``; ``offset_k`` is
    ``[N, Go, 2, oh*ow]``. The integer part is exact, so each is one rounding, as in
    torchvision."""
    i0, j0 = common.tap_start(geometry, t)  # i*dh, j*dw
    rows = common.positions(geometry, 0).astype(np.int32)
    cols = common.positions(geometry, 1).astype(np.int32)
    oh, ow = geometry.out_size
    base_y = jnp.broadcast_to((rows + i0)[:, None], (oh, ow)).reshape(-1).astype(dtype)
    base_x = jnp.broadcast_to((cols + j0)[None, :], (oh, ow)).reshape(-1).astype(dtype)
    return base_y + offset_k[:, :, 0], base_x + offset_k[:, :, 1]


@dataclass(frozen=True)
class _Corner:
    """One of the four bilinear corners of every sample point, arrays ``[N, Go, P]``."""

    index: jax.Array  # flat h*W + w; 0 where off the image
    inside: jax.Array
    weight: jax.Array  # bilinear weight
    d_dy: jax.Array  # d weight / d y (right-hand at integers: floor picks the cell below)
    d_dx: jax.Array
    contributes: jax.Array  # gets input gradient: inside, both weight factors > 0


def _corners(y, x, height, width):
    """The four corners of every point ``y, x [N, Go, P]``, in the reference's order
    ``(y0, x0), (y0, x0+1), (y0+1, x0), (y0+1, x0+1)``, and the masks of NaN points and
    of points outside (sample 0 by the border rule)."""
    not_a_point = jnp.isnan(y) | jnp.isnan(x)
    # Clipping keeps far points off the image (all four corners outside) and castable.
    y = jnp.clip(jnp.where(not_a_point, -2.0, y), -2.0, height + 1.0)
    x = jnp.clip(jnp.where(not_a_point, -2.0, x), -2.0, width + 1.0)
    outside = (y <= -1) | (y >= height) | (x <= -1) | (x >= width)
    y0, x0 = jnp.floor(y), jnp.floor(x)
    ly, lx = y - y0, x - x0
    row0, col0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
    corners = []
    for row, wy, sy in ((row0, 1 - ly, -1), (row0 + 1, ly, 1)):
        for col, wx, sx in ((col0, 1 - lx, -1), (col0 + 1, lx, 1)):
            inside = (row >= 0) & (row < height) & (col >= 0) & (col < width)
            corners.append(_Corner(
                index=jnp.where(inside, row * width + col, 0), inside=inside, weight=wy * wx,
                d_dy=sy * wx, d_dx=wy * sx, contributes=inside & (wy > 0) & (wx > 0)))
    return corners, not_a_point, outside


def _read(table, corner, plane_start):
    """Corner rows ``[N, Go, P, C/Go]`` from ``table [N, Go*H*W, C/Go]``, 0 off the image.

    Whole channel rows, gathered per sample (the batch is a gather batch axis, so a
    batch-sharded call stays sharded). One gather per corner: XLA fuses such a gather
    into its elementwise consumer, where one gather of all four corners followed by a
    reduction over them compiles to a far slower loop.
    """
    index = plane_start + corner.index
    rows = jax.vmap(functools.partial(jnp.take, axis=0, mode="clip"))(
        table, index.reshape(index.shape[0], -1))
    rows = rows.reshape(*index.shape, table.shape[-1])
    return jnp.where(corner.inside[..., None], rows, jnp.zeros((), table.dtype))


def _scatter_add(table, corner, plane_start, rows):
    """``table [N, Go*H*W, C/Go]`` plus ``rows [N, Go, P, C/Go]`` at the corner's cells."""
    index = (plane_start + corner.index).reshape(table.shape[0], -1)
    rows = rows.reshape(table.shape[0], -1, table.shape[-1])
    return jax.vmap(lambda t, i, r: t.at[i].add(r, mode="promise_in_bounds"))(table, index, rows)


def _weighted(corners, values, field):
    """``sum over corners of corner.<field> * value``, for values ``[N, Go, P]`` or
    ``[N, Go, P, C/Go]``."""
    total = None
    for corner, value in zip(corners, values):
        factor = getattr(corner, field)
        term = (factor if value.ndim == factor.ndim else factor[..., None]) * value
        total = term if total is None else total + term
    return total


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
        # Offset group g's rows start at g*H*W in a sample's table.
        self.plane_start = (jnp.arange(self.go, dtype=jnp.int32) * (self.h * self.w))[:, None]

    def table(self, input):
        """``[N, C, H, W] -> [N, Go*H*W, C/Go]``: rows of one offset group's channels."""
        x = input.reshape(self.n, self.go, self.cg, self.h * self.w)
        return jnp.transpose(x, (0, 1, 3, 2)).reshape(self.n, self.go * self.h * self.w, self.cg)

    def untable(self, table):
        x = table.reshape(self.n, self.go, self.h * self.w, self.cg)
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
        cols = jnp.transpose(grouped, (0, 2, 1, 3)).reshape(self.n * self.p, self.groups, -1)
        return jnp.transpose(cols, (1, 0, 2))

    def by_offset_group(self, cols):
        """Inverse of :meth:`columns`."""
        cols = jnp.transpose(cols, (1, 0, 2)).reshape(self.n, self.p, self.go, self.cg)
        return jnp.transpose(cols, (0, 2, 1, 3))

    def output(self, out):
        """``[G, N*P, O/G] -> [N, O, oh, ow]``."""
        out = out.reshape(self.groups, self.n, *self.geometry.out_size, -1)
        return jnp.transpose(out, (1, 0, 4, 2, 3)).reshape(self.n, self.o, *self.geometry.out_size)

    def grad_output(self, grad_out):
        """Inverse of :meth:`output`."""
        g = grad_out.reshape(self.n, self.groups, self.o // self.groups, self.p)
        return jnp.transpose(g, (1, 0, 3, 2)).reshape(self.groups, self.n * self.p, -1)

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


def _tap_samples(layout, table, offset_k, t, dtype):
    """Samples of tap ``t`` ``[N, Go, P, C/Go]`` (before the mask), the corners, their
    values and which points are NaN."""
    corners, not_a_point, outside = _corners(
        *_tap_points(offset_k, layout.geometry, t, dtype), layout.h, layout.w)
    values = [_read(table, corner, layout.plane_start) for corner in corners]
    sample = jnp.where(outside[..., None], jnp.zeros((), dtype), _weighted(corners, values, "weight"))
    sample = jnp.where(not_a_point[..., None], jnp.asarray(jnp.nan, dtype), sample)
    return sample, corners, values, (not_a_point, outside)


# ----------------------------------------------------------------------------- contract


def forward(input, offset, weight, mask, geometry, groups, offset_groups):
    """Deformable convolution without bias: ``[N, O, oh, ow]``.

    input ``[N, C, H, W]``, offset ``[N, 2*Go*kh*kw, oh, ow]``, weight ``[O, C/G, kh, kw]``,
    mask ``[N, Go*kh*kw, oh, ow]`` or None; all one dtype.
    """
    layout = _Layout(input, weight, geometry, groups, offset_groups)
    table = layout.table(input)
    xs = (common.tap_indices(geometry), layout.offset_taps(offset), layout.weight_taps(weight),
          None if mask is None else layout.mask_taps(mask))

    def step(out, tap):
        t, offset_k, weight_k, mask_k = tap
        cols, _, _, _ = _tap_samples(layout, table, offset_k, t, input.dtype)
        if mask_k is not None:
            cols = cols * mask_k[..., None]
        return out + _contract(layout.columns(cols), weight_k, 2, 2), None

    out = jnp.zeros((groups, layout.n * layout.p, layout.o // groups), input.dtype)
    out, _ = lax.scan(step, out, xs)
    return layout.output(out)


def backward(grad_out, input, offset, weight, mask, geometry, groups, offset_groups):
    """Gradients of :func:`forward`: ``(grad_input, grad_offset, grad_weight, grad_mask)``
    (``grad_mask`` None without a mask), torchvision's conventions (module docstring)."""
    layout = _Layout(input, weight, geometry, groups, offset_groups)
    table = layout.table(input)
    gout = layout.grad_output(grad_out)
    xs = (common.tap_indices(geometry), layout.offset_taps(offset), layout.weight_taps(weight),
          None if mask is None else layout.mask_taps(mask))
    zero = jnp.zeros((), input.dtype)

    def step(grad_table, tap):
        t, offset_k, weight_k, mask_k = tap
        sample, corners, values, (not_a_point, outside) = _tap_samples(
            layout, table, offset_k, t, input.dtype)
        cols = sample if mask_k is None else sample * mask_k[..., None]
        grad_w = _contract(gout, layout.columns(cols), 1, 1)
        grad_cols = layout.by_offset_group(_contract(gout, weight_k, 2, 1))
        grad_sample = grad_cols if mask_k is None else grad_cols * mask_k[..., None]
        # Input: each corner row gets its share, only where it contributes.
        for corner in corners:
            share = jnp.where(corner.contributes[..., None], corner.weight[..., None] * grad_sample,
                              zero)
            grad_table = _scatter_add(grad_table, corner, layout.plane_start, share)
        # Offsets and mask: derivatives of the bilinear weights times each corner's
        # channel sum, sum_c grad_cols * value (channels reduced once per corner).
        along = [jnp.sum(grad_cols * value, axis=3) for value in values]
        if mask_k is None:
            grad_mask, scale = None, 1
        else:
            grad_mask = jnp.where(outside, zero, _weighted(corners, along, "weight"))
            grad_mask = jnp.where(not_a_point, jnp.asarray(jnp.nan, input.dtype), grad_mask)
            scale = mask_k
        grad_offset = jnp.stack([scale * _weighted(corners, along, "d_dy"),
                                 scale * _weighted(corners, along, "d_dx")], axis=2)
        grad_offset = jnp.where(not_a_point[:, :, None], jnp.asarray(jnp.nan, input.dtype),
                                grad_offset)
        return grad_table, (grad_offset, grad_w, grad_mask)

    grad_table, (grad_offset, grad_w, grad_mask) = lax.scan(step, jnp.zeros_like(table), xs)
    return (layout.untable(grad_table), layout.offset_from_taps(grad_offset),
            layout.weight_from_taps(grad_w),
            None if mask is None else layout.mask_from_taps(grad_mask))


# ----------------------------------------------------------------------------- the op


def _functions(impl):
    """The contract functions for a resolved ``impl``: this module or the Pallas kernels."""
    return sys.modules[__name__] if impl == "native" else common.kernel_module(OP, "deform")


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6, 7))
def _deform(input, offset, weight, mask, geometry, groups, offset_groups, impl):
    return _functions(impl).forward(input, offset, weight, mask, geometry, groups, offset_groups)


def _deform_fwd(input, offset, weight, mask, geometry, groups, offset_groups, impl):
    out = _functions(impl).forward(input, offset, weight, mask, geometry, groups, offset_groups)
    return out, (input, offset, weight, mask)


def _deform_bwd(geometry, groups, offset_groups, impl, residuals, grad_out):
    return tuple(_functions(impl).backward(grad_out, *residuals, geometry, groups, offset_groups))


_deform.defvjp(_deform_fwd, _deform_bwd)


@functools.partial(jax.jit, static_argnames=("geometry", "groups", "offset_groups", "impl"))
def _deform_conv2d(input, offset, weight, bias, mask, geometry, groups, offset_groups, impl):
    dtype = common.compute_dtype(input.dtype)
    cast = lambda t: None if t is None else t.astype(dtype)  # noqa: E731
    out = _deform(cast(input), cast(offset), cast(weight), cast(mask), geometry, groups,
                  offset_groups, impl)
    return common.add_bias(out, cast(bias)).astype(input.dtype)


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
    input, offset, weight, bias, mask = common.as_arrays(input, offset, weight, bias, mask)
    common.check_dtypes(OP, input=input, offset=offset, weight=weight, bias=bias, mask=mask)
    sig = deform_signature(input.shape, offset.shape, weight.shape, shape_of(bias), stride,
                           padding, dilation, shape_of(mask))
    impl = common.resolve_impl(OP, impl, "deform")
    return _deform_conv2d(input, offset, weight, bias, mask, sig.geometry, sig.groups,
                          sig.offset_groups, impl)
