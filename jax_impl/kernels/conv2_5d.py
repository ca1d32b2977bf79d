# Pallas kernels for conv2_5d: out[n,o,p] = sum_l sum_{c,t} w[l,o,c,t] * xpad[n,c,tap(p,t)] * m_l(p,t),
# with the depth-bin masks m_l computed inside the kernels from the depth (docs/conv2_5d.md: edges
# e_k = d_c + (k - B/2) * s, s = d_c * pixel_size / focal, half-open [e_l, e_{l+1})).
#
# Tiling (forward): one program per (sample n, block of OB <= 32 output channels, block of
# BP = 64 flat output positions). XLA zero-pads and flattens the input to [N, C, Hp*Wp]
# and the depth to [N, Hp*Wp]. The program reads the centre depth of its BP windows once;
# per tap (a loop over K = kh*kw) it reads the tap's depths and forms the B masks [BP],
# then per chunk of CB <= 32 input channels (a loop) gathers the [CB, BP] input columns
# (clamped rows, masked) and accumulates W[l, t] [OB, CB] @ (cols * m_l) for every bin into
# an [OB, BP] tile: an implicit GEMM with no mask or column tensor in HBM.
#
# Backward, both without scatter or atomics:
# - input gradient in gather form: one program per (n, block of CB input channels, block
#   of BQ = 64 input cells q). For each tap the window p that reads q through that tap
#   (if any) is found arithmetically, its masks recomputed from its centre depth and q's
#   depth, and W[l, t]^T [CB, OB] @ (g[:, p] * m_l) summed over output-channel chunks.
# - weight gradient: one program per (bin l and tap t, OB x CB weight block, split s) loops
#   over its share of the (n, position block) pairs and accumulates
#   g [OB, BP] @ (cols * m_l)^T [BP, CB]; XLA sums the S <= 8 split partials.
#
# Per output element (itemsize b): forward 2*B*C*K FLOPs (B bins of a K*C dot product,
# the closed bins included) + ~6*B*K compares and selects for the masks per OB outputs;
# HBM bytes ~ b (write) + C*K*b/OB gathered input (L1/L2 hits for the window overlap: the
# unique traffic is the input once per output-channel block) + K*b/OB depth +
# B*K*C*b/BP weight. Backward: 2x the forward's FLOPs (input and weight gradients), the
# same traffic pattern plus the S partials of the weight gradient.

"""Pallas kernels of ``conv2_5d`` (the contract's ``forward`` / ``backward``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from .. import geometry as geo
from .common import (
    DOT_MIN,
    BlockPlan,
    blocks,
    dot,
    dot_t,
    fori,
    idiv,
    imod,
    interpret_mode,
    lanes,
    pad_axis,
    pad_input,
    padded_size,
    pallas_call,
    pow2,
    whole,
    window_base,
)

#: Flat output positions (and input cells, backward) per program; output channels per program.
BLOCK_PIXELS = 64
BLOCK_CHANNELS = 32


@dataclass(frozen=True)
class _Plan(BlockPlan):
    bins: int = 1


def _plan(x_shape, w_shape, geometry) -> _Plan:
    n, c, h, w = x_shape
    bins, o = w_shape[:2]
    positions = geometry.out_size[0] * geometry.out_size[1]
    return _Plan(n, c, o, geometry.kernel[0] * geometry.kernel[1], positions, h * w,
                 min(BLOCK_PIXELS, pow2(max(positions, h * w), DOT_MIN)),
                 min(BLOCK_CHANNELS, pow2(o, DOT_MIN)), min(BLOCK_CHANNELS, pow2(c, DOT_MIN)),
                 bins)


def _tap_offset(geometry, t):
    """Flat offset in the padded input of (possibly traced) tap ``t``."""
    wp = padded_size(geometry)[1]
    kw, (dh, dw) = geometry.kernel[1], geometry.dilation
    return idiv(t, kw) * (dh * wp) + imod(t, kw) * dw


def _centre_offset(geometry):
    return _tap_offset(geometry, geo.centre_tap(geometry))


def _bin_mask(centre, depth, lower, focal, pixel_size):
    """``m_l``: is ``depth`` in ``[e_l, e_{l+1})`` of its window's centre depth? ``lower``
    is ``l - B/2`` (a Python float or a traced value of the depth's dtype)."""
    lo = geo.bin_edges(centre, lower, focal, pixel_size)
    hi = geo.bin_edges(centre, lower + 1, focal, pixel_size)
    return ((lo <= depth) & (depth < hi)).astype(depth.dtype)


def _bin_masks(centre, depth, plan, focal, pixel_size):
    return [_bin_mask(centre, depth, b - plan.bins / 2, focal, pixel_size)
            for b in range(plan.bins)]


def _channel_chunk(c0, plan):
    """Rows ``c0 .. c0 + block_c``: clamped channel indices and which are real channels."""
    ch = c0 + jnp.arange(plan.block_c, dtype=jnp.int32)
    return jnp.minimum(ch, plan.c - 1), ch < plan.c


def _forward_kernel(x_ref, d_ref, w_ref, out_ref, *, geometry, plan, focal, pixel_size):
    position, _ = lanes(2, plan.block_p, plan.positions)
    base = window_base(geometry, position)
    centre = d_ref[base + _centre_offset(geometry)]
    o0 = pl.program_id(1) * plan.block_o

    def tap(t, acc):
        index = base + _tap_offset(geometry, t)
        masks = _bin_masks(centre, d_ref[index], plan, focal, pixel_size)

        def chunk(k, acc):
            c0 = k * plan.block_c
            rows, real = _channel_chunk(c0, plan)
            cols = jnp.where(real[:, None], x_ref[rows[:, None], index[None, :]], 0)
            for b, m in enumerate(masks):
                w = w_ref[b * plan.taps + t, pl.ds(o0, plan.block_o), pl.ds(c0, plan.block_c)]
                acc = acc + dot(w, cols * m[None, :])
            return acc

        return fori(plan.n_cb, chunk, acc)

    out_ref[...] = fori(plan.taps, tap, jnp.zeros((plan.block_o, plan.block_p), out_ref.dtype))


def _grad_input_kernel(d_ref, g_ref, w_ref, gx_ref, *, geometry, plan, focal, pixel_size):
    cell, cell_real = lanes(2, plan.block_p, plan.cells)
    wp, w = padded_size(geometry)[1], geometry.in_size[1]
    (sh, sw), (dh, dw), (oh, ow) = geometry.stride, geometry.dilation, geometry.out_size
    kw = geometry.kernel[1]
    row = idiv(cell, w) + geometry.pad_before[0]
    col = imod(cell, w) + geometry.pad_before[1]
    depth = d_ref[row * wp + col]
    c0 = pl.program_id(1) * plan.block_c
    centre_off = _centre_offset(geometry)
    tile = (plan.block_c, plan.block_p)

    def tap(t, acc):
        ry, rx = row - idiv(t, kw) * dh, col - imod(t, kw) * dw
        ry_ok, rx_ok = jnp.maximum(ry, 0), jnp.maximum(rx, 0)
        py, px = idiv(ry_ok, sh), idiv(rx_ok, sw)
        read = (cell_real & (ry >= 0) & (rx >= 0) & (imod(ry_ok, sh) == 0)
                & (imod(rx_ok, sw) == 0) & (py < oh) & (px < ow))
        py, px = jnp.where(read, py, 0), jnp.where(read, px, 0)
        window = py * ow + px
        centre = d_ref[py * (sh * wp) + px * sw + centre_off]
        masks = _bin_masks(centre, depth, plan, focal, pixel_size)

        def chunk(k, part):
            o0 = k * plan.block_o
            o_rows = o0 + jnp.arange(plan.block_o, dtype=jnp.int32)
            g = g_ref[o_rows[:, None], window[None, :]]
            for b, m in enumerate(masks):
                w = w_ref[b * plan.taps + t, pl.ds(c0, plan.block_c), pl.ds(o0, plan.block_o)]
                part = part + dot(w, g * m[None, :])
            return part

        part = fori(plan.n_ob, chunk, jnp.zeros(tile, gx_ref.dtype))
        return acc + jnp.where(read[None, :], part, 0)

    gx_ref[...] = fori(plan.taps, tap, jnp.zeros(tile, gx_ref.dtype))


def _grad_weight_kernel(x_ref, d_ref, g_ref, gw_ref, *, geometry, plan, focal, pixel_size):
    b, t = idiv(pl.program_id(0), plan.taps), imod(pl.program_id(0), plan.taps)
    ob, cb = idiv(pl.program_id(1), plan.n_cb), imod(pl.program_id(1), plan.n_cb)
    split = pl.program_id(2)
    total = plan.n * plan.n_pb
    rows, real = _channel_chunk(cb * plan.block_c, plan)
    o_rows = ob * plan.block_o + jnp.arange(plan.block_o, dtype=jnp.int32)
    lower = b.astype(x_ref.dtype) - plan.bins / 2
    offset, centre_off = _tap_offset(geometry, t), _centre_offset(geometry)

    def block(r, acc):
        item = split + plan.splits * r
        item_real = item < total
        item = jnp.minimum(item, total - 1)
        n, pb = idiv(item, plan.n_pb), imod(item, plan.n_pb)
        position = pb * plan.block_p + jnp.arange(plan.block_p, dtype=jnp.int32)
        valid = item_real & (position < plan.positions)
        position = jnp.minimum(position, plan.positions - 1)
        base = window_base(geometry, position)
        index = base + offset
        m = _bin_mask(d_ref[n, base + centre_off], d_ref[n, index], lower, focal, pixel_size)
        cols = x_ref[n, rows[:, None], index[None, :]] * m[None, :]
        cols = jnp.where(real[:, None] & valid[None, :], cols, 0)
        g = g_ref[n, o_rows[:, None], position[None, :]]
        return acc + dot_t(g, cols)

    gw_ref[...] = fori(blocks(total, plan.splits), block,
                       jnp.zeros((plan.block_o, plan.block_c), gw_ref.dtype))


def _depth_and_input(x, depth, geometry, plan):
    hp, wp = padded_size(geometry)
    xflat = pad_input(x, geometry).reshape(plan.n, plan.c, hp * wp)
    dflat = pad_input(depth, geometry).reshape(plan.n, hp * wp)
    return xflat, dflat


def _weight_taps(w, plan, transpose):
    """``[B*K, Op, Cp]`` (``transpose``: ``[B*K, Cp, Op]``), row ``l*K + t`` = tap t of bin l."""
    taps = w.reshape(plan.bins, plan.o, plan.c, plan.taps).transpose(0, 3, 1, 2)
    taps = pad_axis(pad_axis(taps, 2, plan.o_pad), 3, plan.c_pad)
    if transpose:
        taps = taps.transpose(0, 1, 3, 2)
    return taps.reshape(plan.bins * plan.taps, *taps.shape[2:])


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _forward(x, depth, w, geometry, focal, pixel_size, interpret):
    plan = _plan(x.shape, w.shape, geometry)
    xflat, dflat = _depth_and_input(x, depth, geometry, plan)
    length = xflat.shape[-1]
    out = pallas_call(
        functools.partial(_forward_kernel, geometry=geometry, plan=plan, focal=focal,
                          pixel_size=pixel_size),
        grid=(plan.n, plan.n_ob, plan.n_pb),
        in_specs=[pl.BlockSpec((None, plan.c, length), lambda n, ob, pb: (n, 0, 0)),
                  pl.BlockSpec((None, length), lambda n, ob, pb: (n, 0)),
                  whole((plan.bins * plan.taps, plan.o_pad, plan.c_pad))],
        out_specs=pl.BlockSpec((None, plan.block_o, plan.block_p), lambda n, ob, pb: (n, ob, pb)),
        out_shape=jax.ShapeDtypeStruct((plan.n, plan.o_pad, plan.p_pad), x.dtype),
        interpret=interpret, name="conv2_5d_forward", num_warps=8,
    )(xflat, dflat, _weight_taps(w, plan, transpose=False))
    return out[:, :plan.o, :plan.positions].reshape(plan.n, plan.o, *geometry.out_size)


@functools.partial(jax.jit, static_argnums=(4, 5, 6, 7))
def _backward(grad_out, x, depth, w, geometry, focal, pixel_size, interpret):
    plan = _plan(x.shape, w.shape, geometry)
    xflat, dflat = _depth_and_input(x, depth, geometry, plan)
    length = xflat.shape[-1]
    g = pad_axis(grad_out.reshape(plan.n, plan.o, plan.positions), 1, plan.o_pad)
    kw = dict(geometry=geometry, plan=plan, focal=focal, pixel_size=pixel_size)
    n_qb = plan.n_qb
    grad_input = pallas_call(
        functools.partial(_grad_input_kernel, **kw),
        grid=(plan.n, plan.n_cb, n_qb),
        in_specs=[pl.BlockSpec((None, length), lambda n, cb, qb: (n, 0)),
                  pl.BlockSpec((None, plan.o_pad, plan.positions), lambda n, cb, qb: (n, 0, 0)),
                  whole((plan.bins * plan.taps, plan.c_pad, plan.o_pad))],
        out_specs=pl.BlockSpec((None, plan.block_c, plan.block_p), lambda n, cb, qb: (n, cb, qb)),
        out_shape=jax.ShapeDtypeStruct((plan.n, plan.c_pad, n_qb * plan.block_p), x.dtype),
        interpret=interpret, name="conv2_5d_grad_input", num_warps=8,
    )(dflat, g, _weight_taps(w, plan, transpose=True))
    grad_input = grad_input[:, :plan.c, :plan.cells].reshape(x.shape)
    partials = pallas_call(
        functools.partial(_grad_weight_kernel, **kw),
        grid=(plan.bins * plan.taps, plan.n_ob * plan.n_cb, plan.splits),
        in_specs=[whole(xflat.shape), whole(dflat.shape), whole(g.shape)],
        out_specs=pl.BlockSpec(
            (None, None, plan.block_o, plan.block_c),
            lambda bt, oc, s: (s, bt, idiv(oc, plan.n_cb), imod(oc, plan.n_cb))),
        out_shape=jax.ShapeDtypeStruct(
            (plan.splits, plan.bins * plan.taps, plan.o_pad, plan.c_pad), x.dtype),
        interpret=interpret, name="conv2_5d_grad_weight", num_warps=8,
    )(xflat, dflat, g)
    grad_w = partials.sum(axis=0)[:, :plan.o, :plan.c]
    grad_w = grad_w.reshape(plan.bins, plan.taps, plan.o, plan.c).transpose(0, 2, 3, 1)
    return grad_input, grad_w.reshape(w.shape)


def forward(input, depth, weight, geometry, focal, pixel_size):
    """2.5D convolution without bias.

    Args:
        input: ``[N, C, H, W]`` float32/float64.
        depth: ``[N, 1, H, W]``, same dtype.
        weight: ``[B, O, C, kh, kw]``, same dtype (kh, kw odd).
        geometry: ``reference.common.Geometry`` from ``conv2_5d_signature``.
        focal, pixel_size: positive floats (from the signature check).

    Returns:
        ``[N, O, oh, ow]``.
    """
    if input.shape[0] == 0:
        return jnp.zeros((0, weight.shape[1], *geometry.out_size), input.dtype)
    return _forward(input, depth, weight, geometry, float(focal), float(pixel_size),
                    interpret_mode())


def backward(grad_out, input, depth, weight, geometry, focal, pixel_size):
    """Gradients of :func:`forward`: ``(grad_input [N, C, H, W], grad_weight [B, O, C, kh, kw])``
    (depth gets none: the masks are piecewise constant in it)."""
    if input.shape[0] == 0:
        return jnp.zeros_like(input), jnp.zeros_like(weight)
    return _backward(grad_out, input, depth, weight, geometry, float(focal), float(pixel_size),
                     interpret_mode())
