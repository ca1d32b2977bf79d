# Pallas kernels for depthaware_conv2d and depthaware_avg_pool2d (docs/depthaware.md):
# every tap weighed by F = exp(-alpha * |depth[centre] - depth[tap]|),
#   conv: out[n,o,p] = sum_{c,t} w[o,c,t] * x[n,c,tap(p,t)] * F(p,t)   (taps in the image)
#   pool: out[n,c,p] = sum_t F(p,t) * x[n,c,tap(p,t)] / divisor(p)      (taps in the image)
# The input and depth stay unpadded and flat ([N, C, H*W], [N, H*W]); every read is a
# gather through a cell index computed from the static geometry, clamped to a legal cell
# and masked (a tap outside the image reads 0 and forms no F). Each window's centre is a
# static int32 array [oh*ow] of flat cells (-1: outside the image, F = 1 for the window).
#
# Tiling, convolution forward: one program per (sample n, block of OB <= 32 output
# channels, block of BP = 64 flat output positions). It reads its BP centre depths once;
# per tap (a loop over K = kh*kw) it reads the tap depths and forms F [BP], then per
# chunk of CB <= 32 input channels (a loop) gathers the [CB, BP] columns, weighs them by
# F and accumulates W[t] [OB, CB] @ cols into an [OB, BP] tile: an implicit GEMM with no
# column tensor in HBM.
#
# Convolution backward, without scatter or atomics:
# - input and depth gradients in gather form: one program per (n, block of CB input
#   channels, block of BQ = 64 input cells q). Per tap t the window p that reads q
#   through t (if any) is found arithmetically, F(p, t) recomputed from its centre depth,
#   and G = W[t]^T [CB, OB] @ g[:, p] summed over output-channel chunks: q's input
#   gradient gains G * F, and dL/dF(p, t) gains sum_c G * x[c, q] (this program's
#   channels). The depth push dL/dF * alpha * F * sign(centre - tap) is written per
#   (channel block, tap, q); XLA sums the channel blocks and the taps (q's share as a
#   tap) and gathers each window's pushes back from its taps' cells (the centre's share,
#   scatter-added at the centre cell: oh*ow values per sample, and pooling windows at the
#   border share centres).
# - weight gradient: one program per (tap t, OB x CB weight block, split s) loops over its
#   share of the (n, position block) pairs and accumulates g [OB, BP] @ (F * cols)^T;
#   XLA sums the S <= 8 split partials.
#
# Pooling: forward one program per (n, block of CB <= 16 channels, block of BP = 128
# positions): per tap F, the F-weighted sum and the divisor (padded cells 1, image cells
# F, or the sum of F), then out = num / divisor (the divisor is also an output, for the
# backward). Backward in gather form per (n, CB channels, BQ cells): per tap the reading
# window's share g / divisor, q's gradient share * F, and dL/dF = sum_c share * (x - out)
# pushed to the depths as for the convolution.
#
# Per output element (itemsize b; F costs ~10 operations and 2 depth reads per window and
# tap, shared by a program's channels): conv forward 2*C*K FLOPs in the dot + C*K/OB
# multiplies by F; HBM bytes ~ b (write) + C*K*b/OB gathered input (L1/L2 hits for the
# window overlap: the unique traffic is the input once per output-channel block) +
# 2*K*b/OB depth + K*C*b/BP weight. Backward: 2x the forward's FLOPs (input and weight
# gradients) + 2*C*K/O for dL/dF, the same traffic pattern, plus K*b/CB of depth pushes
# per input element and the S weight partials. Pooling: ~3*K operations and K*b gathered
# (cache hits) per output, memory bound; its backward ~5*K per input cell.

"""Pallas kernels of ``depthaware_conv2d`` and ``depthaware_avg_pool2d`` (the contract's
``conv_forward``, ``conv_backward``, ``pool_forward``, ``pool_backward``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl

from jax_impl.depthaware import similarity
from reference.common import avg_divisor
from reference.depthaware import window_centres

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
    pallas_call,
    pow2,
    whole,
)
from .pool import _reading_window, _tap_cells

#: Flat output positions (input cells, backward) per program; channels per block.
BLOCK_PIXELS = 64
BLOCK_CHANNELS = 32
POOL_PIXELS = 128
POOL_CHANNELS = 16


@dataclass(frozen=True)
class _Plan(BlockPlan):
    @property
    def k_pad(self):
        return pow2(self.taps)


def _plan(x_shape, out_channels, geometry, pooling) -> _Plan:
    n, c, h, w = x_shape
    positions = geometry.out_size[0] * geometry.out_size[1]
    taps = geometry.kernel[0] * geometry.kernel[1]
    if pooling:
        return _Plan(n, c, c, taps, positions, h * w,
                     min(POOL_PIXELS, pow2(max(positions, h * w))), 1,
                     min(POOL_CHANNELS, pow2(c)))
    return _Plan(n, c, out_channels, taps, positions, h * w,
                 min(BLOCK_PIXELS, pow2(max(positions, h * w), DOT_MIN)),
                 min(BLOCK_CHANNELS, pow2(out_channels, DOT_MIN)),
                 min(BLOCK_CHANNELS, pow2(c, DOT_MIN)))


def _centre_cells(geometry, pooling):
    """Static int32 ``[oh*ow]``: each window's centre as a flat cell, -1 outside the image."""
    rows, cols, inside = window_centres(geometry, pooling)
    cells = rows[:, None] * geometry.in_size[1] + cols[None, :]
    return jnp.asarray(np.where(inside, cells, -1).ravel(), jnp.int32)


def _channel_chunk(c0, plan):
    """Rows ``c0 .. c0 + block_c``: clamped channel indices and which are real channels."""
    ch = c0 + jnp.arange(plan.block_c, dtype=jnp.int32)
    return jnp.minimum(ch, plan.c - 1), ch < plan.c


def _legal(centre):
    """Centre cells with -1 (outside the image) read as cell 0: a legal index to gather
    from, whose value the similarity masks away."""
    return jnp.maximum(centre, 0)


def _window_similarity(centre_depth, tap_depth, formed, alpha):
    """``(F, slope)``: 1 and 0 where not ``formed`` (tap or centre outside the image)."""
    f, slope = similarity(centre_depth, tap_depth, alpha)
    return jnp.where(formed, f, 1), jnp.where(formed, slope, 0)


def _push(formed, grad_f, slope, alpha):
    """``dL/dF * dF/d depth[tap]`` where F came from depth; none at all for ``alpha = 0``
    (not even ``NaN * 0`` from a NaN input)."""
    return jnp.where(formed, grad_f * slope, 0) if alpha else jnp.zeros_like(grad_f)


# ----------------------------------------------------------------------------- conv kernels


def _conv_forward_kernel(x_ref, d_ref, centre_ref, w_ref, out_ref, *, geometry, plan, alpha):
    position, _ = lanes(2, plan.block_p, plan.positions)
    centre = centre_ref[position]
    o0 = pl.program_id(1) * plan.block_o

    def tap(t, acc):
        cell, inside, _ = _tap_cells(geometry, position, t)
        f, _ = _window_similarity(d_ref[_legal(centre)], d_ref[cell], inside & (centre >= 0),
                                 alpha)

        def chunk(k, acc):
            c0 = k * plan.block_c
            rows, real = _channel_chunk(c0, plan)
            read = real[:, None] & inside[None, :]
            cols = jnp.where(read, x_ref[rows[:, None], cell[None, :]] * f[None, :], 0)
            w = w_ref[t, pl.ds(o0, plan.block_o), pl.ds(c0, plan.block_c)]
            return acc + dot(w, cols)

        return fori(plan.n_cb, chunk, acc)

    out_ref[...] = fori(plan.taps, tap, jnp.zeros((plan.block_o, plan.block_p), out_ref.dtype))


def _conv_grad_input_kernel(x_ref, d_ref, centre_ref, g_ref, w_ref, gx_ref, push_ref, *,
                            geometry, plan, alpha):
    cell, cell_real = lanes(2, plan.block_p, plan.cells)
    c0 = pl.program_id(1) * plan.block_c
    rows, real = _channel_chunk(c0, plan)
    tap_depth = d_ref[cell]
    x = jnp.where(real[:, None], x_ref[rows[:, None], cell[None, :]], 0)  # [CB, BQ]
    tile = (plan.block_c, plan.block_p)

    def tap(t, acc):
        window, reads = _reading_window(geometry, cell, t)
        reads = reads & cell_real
        centre = centre_ref[window]
        formed = reads & (centre >= 0)
        f, slope = _window_similarity(d_ref[_legal(centre)], tap_depth, formed, alpha)

        def chunk(k, part):
            o0 = k * plan.block_o
            o_rows = o0 + jnp.arange(plan.block_o, dtype=jnp.int32)
            w = w_ref[t, pl.ds(c0, plan.block_c), pl.ds(o0, plan.block_o)]
            return part + dot(w, g_ref[o_rows[:, None], window[None, :]])

        grad_cols = fori(plan.n_ob, chunk, jnp.zeros(tile, gx_ref.dtype))
        grad_f = jnp.sum(grad_cols * x, axis=0)
        push_ref[t, :] = _push(formed, grad_f, slope, alpha)
        return acc + jnp.where(reads[None, :], grad_cols * f[None, :], 0)

    gx_ref[...] = fori(plan.taps, tap, jnp.zeros(tile, gx_ref.dtype))


def _conv_grad_weight_kernel(x_ref, d_ref, centre_ref, g_ref, gw_ref, *, geometry, plan, alpha):
    t = pl.program_id(0)
    ob, cb = idiv(pl.program_id(1), plan.n_cb), imod(pl.program_id(1), plan.n_cb)
    split = pl.program_id(2)
    total = plan.n * plan.n_pb
    rows, real = _channel_chunk(cb * plan.block_c, plan)
    o_rows = ob * plan.block_o + jnp.arange(plan.block_o, dtype=jnp.int32)

    def block(r, acc):
        item = split + plan.splits * r
        item_real = item < total
        item = jnp.minimum(item, total - 1)
        n, pb = idiv(item, plan.n_pb), imod(item, plan.n_pb)
        position = pb * plan.block_p + jnp.arange(plan.block_p, dtype=jnp.int32)
        valid = item_real & (position < plan.positions)
        position = jnp.minimum(position, plan.positions - 1)
        cell, inside, _ = _tap_cells(geometry, position, t)
        centre = centre_ref[position]
        f, _ = _window_similarity(d_ref[n, _legal(centre)], d_ref[n, cell], inside & (centre >= 0),
                                  alpha)
        read = real[:, None] & (valid & inside)[None, :]
        cols = jnp.where(read, x_ref[n, rows[:, None], cell[None, :]] * f[None, :], 0)
        g = jnp.where(valid[None, :], g_ref[n, o_rows[:, None], position[None, :]], 0)
        return acc + dot_t(g, cols)

    gw_ref[...] = fori(blocks(total, plan.splits), block,
                       jnp.zeros((plan.block_o, plan.block_c), gw_ref.dtype))


def _flat(x, depth):
    n, c, h, w = x.shape
    return x.reshape(n, c, h * w), depth.reshape(n, h * w)


def _weight_taps(w, plan, transpose):
    """``[K, Op, Cp]`` (``transpose``: ``[K, Cp, Op]``), row t = tap t of the weight."""
    taps = w.reshape(plan.o, plan.c, plan.taps).transpose(2, 0, 1)
    taps = pad_axis(pad_axis(taps, 1, plan.o_pad), 2, plan.c_pad)
    return taps.transpose(0, 2, 1) if transpose else taps


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _conv_forward(x, depth, w, geometry, alpha, interpret):
    plan = _plan(x.shape, w.shape[0], geometry, pooling=False)
    xflat, dflat = _flat(x, depth)
    centre = _centre_cells(geometry, pooling=False)
    out = pallas_call(
        functools.partial(_conv_forward_kernel, geometry=geometry, plan=plan, alpha=alpha),
        grid=(plan.n, plan.n_ob, plan.n_pb),
        in_specs=[pl.BlockSpec((None, plan.c, plan.cells), lambda n, ob, pb: (n, 0, 0)),
                  pl.BlockSpec((None, plan.cells), lambda n, ob, pb: (n, 0)),
                  whole(centre.shape), whole((plan.taps, plan.o_pad, plan.c_pad))],
        out_specs=pl.BlockSpec((None, plan.block_o, plan.block_p), lambda n, ob, pb: (n, ob, pb)),
        out_shape=jax.ShapeDtypeStruct((plan.n, plan.o_pad, plan.p_pad), x.dtype),
        interpret=interpret, name="depthaware_conv_forward", num_warps=8,
    )(xflat, dflat, centre, _weight_taps(w, plan, transpose=False))
    return out[:, :plan.o, :plan.positions].reshape(plan.n, plan.o, *geometry.out_size)


@functools.partial(jax.jit, static_argnums=(4, 5, 6))
def _conv_backward(grad_out, x, depth, w, geometry, alpha, interpret):
    plan = _plan(x.shape, w.shape[0], geometry, pooling=False)
    xflat, dflat = _flat(x, depth)
    centre = _centre_cells(geometry, pooling=False)
    g = pad_axis(grad_out.reshape(plan.n, plan.o, plan.positions), 1, plan.o_pad)
    kw = dict(geometry=geometry, plan=plan, alpha=alpha)
    x_spec = pl.BlockSpec((None, plan.c, plan.cells), lambda n, cb, qb: (n, 0, 0))
    d_spec = pl.BlockSpec((None, plan.cells), lambda n, cb, qb: (n, 0))
    grad_input, push = pallas_call(
        functools.partial(_conv_grad_input_kernel, **kw),
        grid=(plan.n, plan.n_cb, plan.n_qb),
        in_specs=[x_spec, d_spec, whole(centre.shape),
                  pl.BlockSpec((None, plan.o_pad, plan.positions), lambda n, cb, qb: (n, 0, 0)),
                  whole((plan.taps, plan.c_pad, plan.o_pad))],
        out_specs=[pl.BlockSpec((None, plan.block_c, plan.block_p), lambda n, cb, qb: (n, cb, qb)),
                   pl.BlockSpec((None, None, plan.k_pad, plan.block_p),
                                lambda n, cb, qb: (n, cb, 0, qb))],
        out_shape=[jax.ShapeDtypeStruct((plan.n, plan.c_pad, plan.q_pad), x.dtype),
                   jax.ShapeDtypeStruct((plan.n, plan.n_cb, plan.k_pad, plan.q_pad), x.dtype)],
        interpret=interpret, name="depthaware_conv_grad_input", num_warps=8,
    )(xflat, dflat, centre, g, _weight_taps(w, plan, transpose=True))
    grad_input = grad_input[:, :plan.c, :plan.cells].reshape(x.shape)
    partials = pallas_call(
        functools.partial(_conv_grad_weight_kernel, **kw),
        grid=(plan.taps, plan.n_ob * plan.n_cb, plan.splits),
        in_specs=[whole(xflat.shape), whole(dflat.shape), whole(centre.shape), whole(g.shape)],
        out_specs=pl.BlockSpec(
            (None, None, plan.block_o, plan.block_c),
            lambda t, oc, s: (s, t, idiv(oc, plan.n_cb), imod(oc, plan.n_cb))),
        out_shape=jax.ShapeDtypeStruct((plan.splits, plan.taps, plan.o_pad, plan.c_pad), x.dtype),
        interpret=interpret, name="depthaware_conv_grad_weight", num_warps=8,
    )(xflat, dflat, centre, g)
    grad_w = partials.sum(axis=0)[:, :plan.o, :plan.c].transpose(1, 2, 0).reshape(w.shape)
    return grad_input, _depth_gradient(push, geometry, plan, pooling=False), grad_w


# ----------------------------------------------------------------------------- depth pushes


def _depth_gradient(push, geometry, plan, pooling):
    """``[N, 1, H, W]`` from the pushes ``[N, n_cb, Kp, Qp]`` written per (channel block,
    tap t, cell q): every push reaches q's depth (as tap t of its window) and, negated,
    the depth of that window's centre, found by gathering the window's pushes from the
    cells its taps read."""
    push = push[:, :, :plan.taps, :plan.cells].sum(axis=1)  # [N, K, H*W]
    grad = push.sum(axis=1)
    (h, w), inside, cells = geometry.in_size, [], []
    for i, j in geometry.taps():
        rows, cols = geometry.positions(0, i), geometry.positions(1, j)
        inside.append(geometry.in_input(i, j).ravel())
        cells.append((np.clip(rows, 0, h - 1)[:, None] * w + np.clip(cols, 0, w - 1)[None, :]).ravel())
    tap_index = np.arange(plan.taps)[:, None]
    pushes = jnp.where(np.stack(inside), push[:, tap_index, np.stack(cells)], 0)  # [N, K, P]
    rows, cols, centre_inside = window_centres(geometry, pooling)
    share = jnp.where(centre_inside.ravel(), -pushes.sum(axis=1), 0)
    grad = grad.at[:, (rows[:, None] * w + cols[None, :]).ravel()].add(share)
    return grad.reshape(plan.n, 1, h, w)


# ----------------------------------------------------------------------------- pool kernels


def _pool_forward_kernel(x_ref, d_ref, centre_ref, start_ref, out_ref, div_ref, *, geometry,
                         plan, alpha, count_include_pad):
    position, _ = lanes(2, plan.block_p, plan.positions)
    centre = centre_ref[position]  # always in the image
    rows, _ = _channel_chunk(pl.program_id(1) * plan.block_c, plan)

    def tap(t, carry):
        num, divisor = carry
        cell, inside, _ = _tap_cells(geometry, position, t)
        f, _ = _window_similarity(d_ref[centre], d_ref[cell], inside, alpha)
        weight = jnp.where(inside, f, 0)
        num = num + jnp.where(inside[None, :], x_ref[rows[:, None], cell[None, :]] * weight[None, :], 0)
        if count_include_pad:
            return num, divisor - jnp.where(inside, 1 - f, 0)
        return num, divisor + weight

    start = (jnp.zeros((plan.block_c, plan.block_p), out_ref.dtype), start_ref[position])
    num, divisor = fori(plan.taps, tap, start)
    out_ref[...] = num / divisor[None, :]
    div_ref[...] = divisor


def _pool_backward_kernel(x_ref, d_ref, centre_ref, g_ref, out_ref, div_ref, gx_ref, push_ref,
                          *, geometry, plan, alpha):
    cell, cell_real = lanes(2, plan.block_p, plan.cells)
    rows, real = _channel_chunk(pl.program_id(1) * plan.block_c, plan)
    tap_depth = d_ref[cell]
    x = x_ref[rows[:, None], cell[None, :]]
    tile = (plan.block_c, plan.block_p)

    def tap(t, acc):
        window, reads = _reading_window(geometry, cell, t)
        reads = reads & cell_real
        f, slope = _window_similarity(d_ref[centre_ref[window]], tap_depth, reads, alpha)
        share = g_ref[rows[:, None], window[None, :]] / div_ref[window][None, :]
        out = out_ref[rows[:, None], window[None, :]]
        grad_f = jnp.sum(jnp.where(real[:, None], share * (x - out), 0), axis=0)
        push_ref[t, :] = _push(reads, grad_f, slope, alpha)
        return acc + jnp.where(reads[None, :], share * f[None, :], 0)

    gx_ref[...] = fori(plan.taps, tap, jnp.zeros(tile, gx_ref.dtype))


def _pool_specs(plan):
    return (pl.BlockSpec((None, plan.c, plan.cells), lambda n, cb, p: (n, 0, 0)),
            pl.BlockSpec((None, plan.cells), lambda n, cb, p: (n, 0)))


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _pool_forward(x, depth, geometry, alpha, count_include_pad, interpret):
    """``(out [N, C, P], divisor [N, P])``."""
    plan = _plan(x.shape, None, geometry, pooling=True)
    xflat, dflat = _flat(x, depth)
    centre = _centre_cells(geometry, pooling=True)
    if count_include_pad:  # the padded window's size; image cells count F instead of 1
        start = jnp.asarray(avg_divisor(geometry, True, None).ravel(), x.dtype)
    else:
        start = jnp.zeros(plan.positions, x.dtype)
    out, divisor = pallas_call(
        functools.partial(_pool_forward_kernel, geometry=geometry, plan=plan, alpha=alpha,
                          count_include_pad=count_include_pad),
        grid=(plan.n, plan.n_cb, plan.n_pb),
        in_specs=[*_pool_specs(plan), whole(centre.shape), whole(start.shape)],
        out_specs=[pl.BlockSpec((None, plan.block_c, plan.block_p), lambda n, cb, pb: (n, cb, pb)),
                   pl.BlockSpec((None, None, plan.block_p), lambda n, cb, pb: (n, cb, pb))],
        out_shape=[jax.ShapeDtypeStruct((plan.n, plan.c_pad, plan.p_pad), x.dtype),
                   jax.ShapeDtypeStruct((plan.n, plan.n_cb, plan.p_pad), x.dtype)],
        interpret=interpret, name="depthaware_pool_forward",
    )(xflat, dflat, centre, start)
    return out[:, :plan.c, :plan.positions], divisor[:, 0, :plan.positions]


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _pool_backward(grad_out, x, depth, geometry, alpha, count_include_pad, interpret):
    plan = _plan(x.shape, None, geometry, pooling=True)
    out, divisor = _pool_forward(x, depth, geometry, alpha, count_include_pad, interpret)
    xflat, dflat = _flat(x, depth)
    centre = _centre_cells(geometry, pooling=True)
    per_sample = lambda n, cb, qb: (n, 0, 0)  # noqa: E731
    grad_input, push = pallas_call(
        functools.partial(_pool_backward_kernel, geometry=geometry, plan=plan, alpha=alpha),
        grid=(plan.n, plan.n_cb, plan.n_qb),
        in_specs=[*_pool_specs(plan), whole(centre.shape),
                  pl.BlockSpec((None, plan.c, plan.positions), per_sample),
                  pl.BlockSpec((None, plan.c, plan.positions), per_sample),
                  pl.BlockSpec((None, plan.positions), lambda n, cb, qb: (n, 0))],
        out_specs=[pl.BlockSpec((None, plan.block_c, plan.block_p), lambda n, cb, qb: (n, cb, qb)),
                   pl.BlockSpec((None, None, plan.k_pad, plan.block_p),
                                lambda n, cb, qb: (n, cb, 0, qb))],
        out_shape=[jax.ShapeDtypeStruct((plan.n, plan.c_pad, plan.q_pad), x.dtype),
                   jax.ShapeDtypeStruct((plan.n, plan.n_cb, plan.k_pad, plan.q_pad), x.dtype)],
        interpret=interpret, name="depthaware_pool_backward",
    )(xflat, dflat, centre, grad_out.reshape(plan.n, plan.c, plan.positions), out, divisor)
    grad_input = grad_input[:, :plan.c, :plan.cells].reshape(x.shape)
    return grad_input, _depth_gradient(push, geometry, plan, pooling=True)


# ----------------------------------------------------------------------------- contract


def conv_forward(input, depth, weight, geometry, alpha):
    """Depth-aware convolution without bias.

    Args:
        input: ``[N, C, H, W]`` float32/float64.
        depth: ``[N, 1, H, W]``, same dtype.
        weight: ``[O, C, kh, kw]``, same dtype.
        geometry: ``reference.common.Geometry`` from ``depthaware_conv2d_signature``.
        alpha: similarity scale, a float >= 0.

    Returns:
        ``[N, O, oh, ow]``.
    """
    if input.shape[0] == 0:
        return jnp.zeros((0, weight.shape[0], *geometry.out_size), input.dtype)
    return _conv_forward(input, depth, weight, geometry, float(alpha), interpret_mode())


def conv_backward(grad_out, input, depth, weight, geometry, alpha):
    """Gradients of :func:`conv_forward`: ``(grad_input, grad_depth, grad_weight)``."""
    if input.shape[0] == 0:
        return jnp.zeros_like(input), jnp.zeros_like(depth), jnp.zeros_like(weight)
    return _conv_backward(grad_out, input, depth, weight, geometry, float(alpha),
                          interpret_mode())


def pool_forward(input, depth, geometry, alpha, count_include_pad):
    """Depth-aware average pooling ``[N, C, oh, ow]`` (``geometry`` from
    ``depthaware_avg_pool2d_signature``)."""
    n, c = input.shape[:2]
    if n * c == 0:
        return jnp.zeros((n, c, *geometry.out_size), input.dtype)
    out, _ = _pool_forward(input, depth, geometry, float(alpha), bool(count_include_pad),
                           interpret_mode())
    return out.reshape(n, c, *geometry.out_size)


def pool_backward(grad_out, input, depth, geometry, alpha, count_include_pad):
    """Gradients of :func:`pool_forward`: ``(grad_input, grad_depth)``."""
    if input.shape[0] * input.shape[1] == 0:
        return jnp.zeros_like(input), jnp.zeros_like(depth)
    return _pool_backward(grad_out, input, depth, geometry, float(alpha),
                          bool(count_include_pad), interpret_mode())
