# Pallas kernels for max_pool2d and avg_pool2d (torch semantics exactly, docs/pool.md).
#
# Tiling: the N*C planes are independent; one program per (block of BR <= 16 planes,
# block of BP <= 128 flat output positions) for the forward, per (planes, BP input
# cells) for the backward. Planes stay unpadded in HBM ([N*C, H*W]); every read is a
# gather through indices computed from the static geometry, clamped to a legal cell and
# masked (padding and the ceil-mode overhang are never read: -inf for max, 0 for avg).
#
# max forward: taps visited in row-major order from best = -inf, index = the first tap
#   inside the input; a tap wins when v > best or v is NaN (ties keep the first index,
#   the last NaN wins): torch's CPU kernel, so values and int64 indices match exactly.
# avg forward: the window sum in row-major tap order, divided by the divisor of
#   reference.common.avg_divisor (count_include_pad, ceil-mode overhang, override).
# Both backwards are in gather form (no scatter, no atomics): a program owns a block of
#   input cells and, for each tap, finds arithmetically the window that reads the cell
#   through that tap; max adds that window's gradient when its index is this cell
#   (windows in increasing order, as the reference's add.at), avg adds grad / divisor.
#
# Per output element (K = kh*kw taps, itemsize b): max K compares + K selects, avg K adds
# + 1 divide; HBM bytes ~ K*b gathered (mostly L1/L2 hits for overlapping windows; the
# unique traffic is the input once, b*H*W/(oh*ow) per output, ~s_h*s_w*b) + b written (+8
# for max's int64 index). Backward per input cell: K index compares/adds, reading the
# window gradients (and indices) once per tap that reaches the cell. Memory bound.

"""Pallas kernels of ``max_pool2d`` / ``avg_pool2d`` (the contract's ``max_forward``,
``max_backward``, ``avg_forward``, ``avg_backward``)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from reference.common import avg_divisor

from .common import blocks, fori, idiv, imod, interpret_mode, lanes, pallas_call, pow2, whole

#: Planes (N*C) and flat positions (outputs, or input cells in the backward) per program.
BLOCK_PLANES = 16
BLOCK_PIXELS = 128


def _blocks(planes, positions):
    return min(BLOCK_PLANES, pow2(planes)), min(BLOCK_PIXELS, pow2(positions))


def _launch(kernel, inputs, planes, positions, out_dtypes, interpret, name):
    """Run ``kernel`` on a (plane block, position block) grid: whole-array inputs, one
    ``[planes, positions]`` output per dtype (padded to whole blocks, then cut)."""
    br, bp = _blocks(planes, positions)
    grid = (blocks(planes, br), blocks(positions, bp))
    shape = (grid[0] * br, grid[1] * bp)
    spec = pl.BlockSpec((br, bp), lambda r, p: (r, p))
    outs = pallas_call(
        functools.partial(kernel, block=(br, bp)),
        grid=grid,
        in_specs=[whole(a.shape) for a in inputs],
        out_specs=[spec] * len(out_dtypes),
        out_shape=[jax.ShapeDtypeStruct(shape, d) for d in out_dtypes],
        interpret=interpret, name=name,
    )(*inputs)
    return [o[:planes, :positions] for o in outs]


def _tap_cells(geometry, position, t):
    """Input row, column and flat cell read by tap ``t`` (traced) of flat output
    ``position``, and whether that cell is inside the input."""
    (sh, sw), (dh, dw), (ph, pw) = geometry.stride, geometry.dilation, geometry.pad_before
    (h, w), kw, ow = geometry.in_size, geometry.kernel[1], geometry.out_size[1]
    row = idiv(position, ow) * sh - ph + idiv(t, kw) * dh
    col = imod(position, ow) * sw - pw + imod(t, kw) * dw
    inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
    return jnp.where(inside, row * w + col, 0), inside, row * w + col


def _reading_window(geometry, cell, t):
    """The flat output window that reads input ``cell`` through tap ``t`` (traced), and
    whether there is one."""
    (sh, sw), (dh, dw), (ph, pw) = geometry.stride, geometry.dilation, geometry.pad_before
    w, kw, (oh, ow) = geometry.in_size[1], geometry.kernel[1], geometry.out_size
    ry = idiv(cell, w) + ph - idiv(t, kw) * dh
    rx = imod(cell, w) + pw - imod(t, kw) * dw
    ry_ok, rx_ok = jnp.maximum(ry, 0), jnp.maximum(rx, 0)
    y, x = idiv(ry_ok, sh), idiv(rx_ok, sw)
    reads = ((ry >= 0) & (rx >= 0) & (imod(ry_ok, sh) == 0) & (imod(rx_ok, sw) == 0)
             & (y < oh) & (x < ow))
    return jnp.where(reads, y * ow + x, 0), reads


def _taps(geometry):
    return geometry.kernel[0] * geometry.kernel[1]


# ----------------------------------------------------------------------------- max


def _max_forward_kernel(x_ref, out_ref, index_ref, *, geometry, planes, block):
    rows, _ = lanes(0, block[0], planes)
    position, _ = lanes(1, block[1], geometry.out_size[0] * geometry.out_size[1])

    def tap(t, carry):
        best, index = carry
        cell, inside, flat = _tap_cells(geometry, position, t)
        v = x_ref[rows[:, None], cell[None, :]]
        inside = inside[None, :]
        index = jnp.where(inside & (index < 0), flat[None, :], index)
        better = inside & ((v > best) | jnp.isnan(v))
        return jnp.where(better, v, best), jnp.where(better, flat[None, :], index)

    start = (jnp.full(block, -jnp.inf, out_ref.dtype), jnp.full(block, -1, jnp.int32))
    best, index = fori(_taps(geometry), tap, start)
    out_ref[...] = best
    index_ref[...] = index


def _max_backward_kernel(g_ref, i_ref, gx_ref, *, geometry, planes, block):
    rows, _ = lanes(0, block[0], planes)
    cell, _ = lanes(1, block[1], geometry.in_size[0] * geometry.in_size[1])
    taps = _taps(geometry)

    def tap(r, acc):  # taps in reverse: the windows reading a cell in increasing order
        window, reads = _reading_window(geometry, cell, taps - 1 - r)
        chosen = i_ref[rows[:, None], window[None, :]] == cell[None, :]
        g = g_ref[rows[:, None], window[None, :]]
        return acc + jnp.where(reads[None, :] & chosen, g, 0)

    gx_ref[...] = fori(taps, tap, jnp.zeros(block, gx_ref.dtype))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _max_forward(x, geometry, interpret):
    n, c, h, w = x.shape
    planes, positions = n * c, geometry.out_size[0] * geometry.out_size[1]
    out, index = _launch(
        functools.partial(_max_forward_kernel, geometry=geometry, planes=planes),
        [x.reshape(planes, h * w)], planes, positions, (x.dtype, jnp.int32), interpret,
        "max_pool_forward")
    index_dtype = jax.dtypes.canonicalize_dtype(jnp.int64)
    shape = (n, c, *geometry.out_size)
    return out.reshape(shape), index.astype(index_dtype).reshape(shape)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _max_backward(grad_out, indices, geometry, interpret):
    n, c = grad_out.shape[:2]
    (h, w), positions = geometry.in_size, geometry.out_size[0] * geometry.out_size[1]
    planes = n * c
    (gx,) = _launch(
        functools.partial(_max_backward_kernel, geometry=geometry, planes=planes),
        [grad_out.reshape(planes, positions), indices.astype(jnp.int32).reshape(planes, positions)],
        planes, h * w, (grad_out.dtype,), interpret, "max_pool_backward")
    return gx.reshape(n, c, h, w)


def max_forward(input, geometry):
    """Max pooling: ``(out [N, C, oh, ow], indices)``, indices flat ``h*W + w`` per plane
    (int64 under ``jax_enable_x64``, else int32). ``geometry`` from ``max_pool2d_signature``."""
    if input.shape[0] * input.shape[1] == 0:
        shape = (*input.shape[:2], *geometry.out_size)
        return (jnp.zeros(shape, input.dtype),
                jnp.zeros(shape, jax.dtypes.canonicalize_dtype(jnp.int64)))
    return _max_forward(input, geometry, interpret_mode())


def max_backward(grad_out, indices, geometry):
    """Gradient of :func:`max_forward`'s output: each window's gradient goes to its index
    only (summed where windows share it). Returns ``[N, C, H, W]``."""
    if grad_out.shape[0] * grad_out.shape[1] == 0:
        return jnp.zeros((*grad_out.shape[:2], *geometry.in_size), grad_out.dtype)
    return _max_backward(grad_out, indices, geometry, interpret_mode())


# ----------------------------------------------------------------------------- avg


def _divisor(geometry, count_include_pad, divisor_override, dtype):
    """Flat ``[oh*ow]`` divisors (reference.common's rule), one per window."""
    return jnp.asarray(avg_divisor(geometry, count_include_pad, divisor_override), dtype).ravel()


def _avg_forward_kernel(x_ref, d_ref, out_ref, *, geometry, planes, block):
    rows, _ = lanes(0, block[0], planes)
    position, _ = lanes(1, block[1], geometry.out_size[0] * geometry.out_size[1])

    def tap(t, total):
        cell, inside, _ = _tap_cells(geometry, position, t)
        v = x_ref[rows[:, None], cell[None, :]]
        return total + jnp.where(inside[None, :], v, 0)

    total = fori(_taps(geometry), tap, jnp.zeros(block, out_ref.dtype))
    out_ref[...] = total / d_ref[position][None, :]


def _avg_backward_kernel(g_ref, d_ref, gx_ref, *, geometry, planes, block):
    rows, _ = lanes(0, block[0], planes)
    cell, _ = lanes(1, block[1], geometry.in_size[0] * geometry.in_size[1])

    def tap(t, acc):  # taps in row-major order, as the reference adds them
        window, reads = _reading_window(geometry, cell, t)
        g = g_ref[rows[:, None], window[None, :]] / d_ref[window][None, :]
        return acc + jnp.where(reads[None, :], g, 0)

    gx_ref[...] = fori(_taps(geometry), tap, jnp.zeros(block, gx_ref.dtype))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _avg_forward(x, geometry, count_include_pad, divisor_override, interpret):
    n, c, h, w = x.shape
    planes, positions = n * c, geometry.out_size[0] * geometry.out_size[1]
    divisor = _divisor(geometry, count_include_pad, divisor_override, x.dtype)
    (out,) = _launch(
        functools.partial(_avg_forward_kernel, geometry=geometry, planes=planes),
        [x.reshape(planes, h * w), divisor], planes, positions, (x.dtype,), interpret,
        "avg_pool_forward")
    return out.reshape(n, c, *geometry.out_size)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _avg_backward(grad_out, geometry, count_include_pad, divisor_override, interpret):
    n, c = grad_out.shape[:2]
    (h, w), positions = geometry.in_size, geometry.out_size[0] * geometry.out_size[1]
    planes = n * c
    divisor = _divisor(geometry, count_include_pad, divisor_override, grad_out.dtype)
    (gx,) = _launch(
        functools.partial(_avg_backward_kernel, geometry=geometry, planes=planes),
        [grad_out.reshape(planes, positions), divisor], planes, h * w, (grad_out.dtype,),
        interpret, "avg_pool_backward")
    return gx.reshape(n, c, h, w)


def avg_forward(input, geometry, count_include_pad, divisor_override):
    """Average pooling ``[N, C, oh, ow]`` (``geometry`` from ``avg_pool2d_signature``)."""
    if input.shape[0] * input.shape[1] == 0:
        return jnp.zeros((*input.shape[:2], *geometry.out_size), input.dtype)
    return _avg_forward(input, geometry, bool(count_include_pad), divisor_override,
                        interpret_mode())


def avg_backward(grad_out, geometry, count_include_pad, divisor_override):
    """Gradient of :func:`avg_forward`: ``[N, C, H, W]`` (it does not need the input)."""
    if grad_out.shape[0] * grad_out.shape[1] == 0:
        return jnp.zeros((*grad_out.shape[:2], *geometry.in_size), grad_out.dtype)
    return _avg_backward(grad_out, geometry, bool(count_include_pad), divisor_override,
                         interpret_mode())

