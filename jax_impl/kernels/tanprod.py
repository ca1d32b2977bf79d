# Pallas kernels for tanprod_conv2d: out[n,o,p] = prod_{c,i,j} tan(xpad[n,c,tap(p,i,j)] + w[o,c,i,j]).
#
# Tiling: one program per (sample n, block of OB <= 16 output channels, block of BP = 64
# flat output positions p = y*ow + x). The input is zero-padded and flattened to
# [N, C, Hp*Wp] by XLA; a program gathers the BP cells a tap reads (index arrays computed
# from the static geometry, clamped for the lanes past the last output) and the OB
# weights of that tap, and multiplies tan(x + w) into an [OB, BP] register tile: taps
# unrolled, channels in a loop. No matrix unit: the op is a product, not a sum.
#
# Backward (leave-one-out products, no division, exact where a factor is 0):
# - suffix kernel, same grid: S[c] = prod_{c' > c} prod_taps tan(...) for every channel c,
#   written to an [N, C, Op, P] workspace (the reference holds the same C x output
#   amount for one tap; a division-free O(1)-memory form does not exist).
# - gradient kernel, same grid: a channel loop keeps the prefix product; per channel the
#   kh*kw factors stay in registers and give the tap-exclusive products by prefix/suffix,
#   so d out / d u(c,t) = prefix * S[c] * excl_t * sec^2(u). It writes per program the
#   column gradient summed over its OB channels, [N, nOB, C, K, P], and the weight
#   gradient summed over its BP positions, [N, nPB, C*K, Op]; XLA sums the partials and
#   folds the columns back onto the input (dense strided pads, no scatter).
#
# Per output element (K = kh*kw taps, C channels, itemsize b): forward C*K tan + C*K adds
# + C*K multiplies (~C*K*(tan + 2) FLOPs, tan ~ 20 FMA-pipe instructions in libdevice);
# HBM bytes ~ b (the write) + C*K*b/OB of input gathers (hits in L1/L2 for the window
# overlap; the unique input is read once per output-channel block) + C*K*b/BP of weight.
# Backward: 2x the forward's tan work plus ~6 C*K multiplies; HBM ~ 2*C*b for the
# workspace (write + read), C*K*b/OB for the column partials, b for grad_out.
# Compute bound: ~20 instructions per factor against ~b*C*K/OB bytes.

"""Pallas kernels of ``tanprod_conv2d`` (the contract's ``forward`` / ``backward``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from .common import (
    blocks,
    fold_taps,
    fori,
    interpret_mode,
    lanes,
    pad_axis,
    pad_input,
    padded_size,
    pallas_call,
    pow2,
    tap_offsets,
    whole,
    window_base,
)

#: Output positions per program (flat y*ow + x) and output channels per program.
BLOCK_PIXELS = 64
BLOCK_CHANNELS = 16


@dataclass(frozen=True)
class _Plan:
    n: int
    c: int
    o: int
    taps: int
    positions: int
    block_p: int
    block_o: int

    @property
    def n_pb(self):
        return blocks(self.positions, self.block_p)

    @property
    def n_ob(self):
        return blocks(self.o, self.block_o)

    @property
    def o_pad(self):
        return self.n_ob * self.block_o

    @property
    def p_pad(self):
        return self.n_pb * self.block_p


def _plan(x_shape, w_shape, geometry) -> _Plan:
    n, c = x_shape[:2]
    o = w_shape[0]
    positions = geometry.out_size[0] * geometry.out_size[1]
    return _Plan(n, c, o, geometry.kernel[0] * geometry.kernel[1], positions,
                 min(BLOCK_PIXELS, pow2(positions)), min(BLOCK_CHANNELS, pow2(o)))


def _operands(x, w, geometry, plan):
    """Padded flat input ``[N, C, Hp*Wp]`` and weight rows ``[C*K, Op]`` (row c*K + t)."""
    hp, wp = padded_size(geometry)
    xflat = pad_input(x, geometry).reshape(plan.n, plan.c, hp * wp)
    wrows = pad_axis(w.reshape(plan.o, plan.c * plan.taps).T, 1, plan.o_pad)
    return xflat, wrows


def _specs(plan, length):
    x_spec = pl.BlockSpec((None, plan.c, length), lambda n, ob, pb: (n, 0, 0))
    return x_spec, whole((plan.c * plan.taps, plan.o_pad))


def _factors(x_ref, w_ref, c, index, o0, plan):
    """``tan(x + w)`` of channel ``c`` at every tap: ``plan.taps`` arrays ``[OB, BP]``."""
    out = []
    for t, idx in enumerate(index):
        xv = x_ref[c, idx]
        wv = w_ref[c * plan.taps + t, pl.ds(o0, plan.block_o)]
        out.append(jnp.tan(xv[None, :] + wv[:, None]))
    return out


def _tap_indices(geometry, plan):
    position, valid = lanes(2, plan.block_p, plan.positions)
    base = window_base(geometry, position)
    return [base + off for off in tap_offsets(geometry)], valid


def _forward_kernel(x_ref, w_ref, out_ref, *, geometry, plan):
    index, _ = _tap_indices(geometry, plan)
    o0 = pl.program_id(1) * plan.block_o
    ones = jnp.ones((plan.block_o, plan.block_p), out_ref.dtype)
    acc = ones
    for t, idx in enumerate(index):
        def channel(c, prod, t=t, idx=idx):
            xv = x_ref[c, idx]
            wv = w_ref[c * plan.taps + t, pl.ds(o0, plan.block_o)]
            return prod * jnp.tan(xv[None, :] + wv[:, None])

        acc = acc * fori(plan.c, channel, ones)
    out_ref[...] = acc


def _product(factors):
    prod = factors[0]
    for f in factors[1:]:
        prod = prod * f
    return prod


def _suffix_kernel(x_ref, w_ref, s_ref, *, geometry, plan):
    index, _ = _tap_indices(geometry, plan)
    o0 = pl.program_id(1) * plan.block_o

    def step(r, running):
        c = plan.c - 1 - r
        s_ref[c] = running
        return running * _product(_factors(x_ref, w_ref, c, index, o0, plan))

    fori(plan.c, step, jnp.ones((plan.block_o, plan.block_p), s_ref.dtype))


def _grad_kernel(x_ref, w_ref, g_ref, s_ref, gcol_ref, gw_ref, *, geometry, plan):
    index, valid_p = _tap_indices(geometry, plan)
    o0 = pl.program_id(1) * plan.block_o
    valid_o = o0 + jnp.arange(plan.block_o) < plan.o
    valid = valid_o[:, None] & valid_p[None, :]
    g = g_ref[...]
    k = plan.taps

    def step(c, prefix):
        f = _factors(x_ref, w_ref, c, index, o0, plan)
        before = [jnp.ones_like(g)]
        for t in range(1, k):
            before.append(before[-1] * f[t - 1])
        after = [jnp.ones_like(g)]
        for t in range(k - 2, -1, -1):
            after.append(after[-1] * f[t + 1])
        after = after[::-1]
        outside = prefix * s_ref[c]
        for t in range(k):
            grad_u = g * (outside * (before[t] * after[t])) * (1 + f[t] * f[t])
            grad_u = jnp.where(valid, grad_u, 0)
            gcol_ref[c, t, :] = jnp.sum(grad_u, axis=0)
            gw_ref[c * k + t, :] = jnp.sum(grad_u, axis=1)
        return prefix * (before[k - 1] * f[k - 1])

    fori(plan.c, step, jnp.ones_like(g))


@functools.partial(jax.jit, static_argnums=(2, 3))
def _forward(x, w, geometry, interpret):
    plan = _plan(x.shape, w.shape, geometry)
    xflat, wrows = _operands(x, w, geometry, plan)
    x_spec, w_spec = _specs(plan, xflat.shape[-1])
    out = pallas_call(
        functools.partial(_forward_kernel, geometry=geometry, plan=plan),
        grid=(plan.n, plan.n_ob, plan.n_pb),
        in_specs=[x_spec, w_spec],
        out_specs=pl.BlockSpec((None, plan.block_o, plan.block_p),
                               lambda n, ob, pb: (n, ob, pb)),
        out_shape=jax.ShapeDtypeStruct((plan.n, plan.o_pad, plan.p_pad), x.dtype),
        interpret=interpret, name="tanprod_forward",
    )(xflat, wrows)
    return out[:, :plan.o, :plan.positions].reshape(plan.n, plan.o, *geometry.out_size)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _backward(grad_out, x, w, geometry, interpret):
    plan = _plan(x.shape, w.shape, geometry)
    xflat, wrows = _operands(x, w, geometry, plan)
    x_spec, w_spec = _specs(plan, xflat.shape[-1])
    grid = (plan.n, plan.n_ob, plan.n_pb)
    kw = dict(geometry=geometry, plan=plan)
    tile = (plan.block_o, plan.block_p)
    s_spec = pl.BlockSpec((None, plan.c, *tile), lambda n, ob, pb: (n, 0, ob, pb))
    suffix = pallas_call(
        functools.partial(_suffix_kernel, **kw), grid=grid, in_specs=[x_spec, w_spec],
        out_specs=s_spec,
        out_shape=jax.ShapeDtypeStruct((plan.n, plan.c, plan.o_pad, plan.p_pad), x.dtype),
        interpret=interpret, name="tanprod_suffix",
    )(xflat, wrows)
    g = grad_out.reshape(plan.n, plan.o, plan.positions)
    g = pad_axis(pad_axis(g, 1, plan.o_pad), 2, plan.p_pad)
    gcols, gw = pallas_call(
        functools.partial(_grad_kernel, **kw), grid=grid,
        in_specs=[x_spec, w_spec, pl.BlockSpec((None, *tile), lambda n, ob, pb: (n, ob, pb)),
                  s_spec],
        out_specs=[
            pl.BlockSpec((None, None, plan.c, plan.taps, plan.block_p),
                         lambda n, ob, pb: (n, ob, 0, 0, pb)),
            pl.BlockSpec((None, None, plan.c * plan.taps, plan.block_o),
                         lambda n, ob, pb: (n, pb, 0, ob)),
        ],
        out_shape=[
            jax.ShapeDtypeStruct((plan.n, plan.n_ob, plan.c, plan.taps, plan.p_pad), x.dtype),
            jax.ShapeDtypeStruct((plan.n, plan.n_pb, plan.c * plan.taps, plan.o_pad), x.dtype),
        ],
        interpret=interpret, name="tanprod_backward",
    )(xflat, wrows, g, suffix)
    cols = gcols.sum(axis=1)[..., :plan.positions]
    grad_input = fold_taps(cols.reshape(plan.n, plan.c, plan.taps, *geometry.out_size), geometry)
    grad_weight = gw.sum(axis=(0, 1))[:, :plan.o].T.reshape(w.shape)
    return grad_input, grad_weight


def forward(input, weight, geometry):
    """Tan-product convolution without bias.

    Args:
        input: ``[N, C, H, W]`` float32/float64.
        weight: ``[O, C, kh, kw]``, same dtype.
        geometry: ``reference.common.Geometry`` from ``tanprod_conv2d_signature``.

    Returns:
        ``[N, O, oh, ow]``.
    """
    if input.shape[0] == 0:
        return jnp.zeros((0, weight.shape[0], *geometry.out_size), input.dtype)
    return _forward(input, weight, geometry, interpret_mode())


def backward(grad_out, input, weight, geometry):
    """Gradients of :func:`forward`: ``(grad_input [N, C, H, W], grad_weight [O, C, kh, kw])``,
    exact where a factor ``tan(x + w)`` is zero (leave-one-out products, no division)."""
    if input.shape[0] == 0:
        return jnp.zeros_like(input), jnp.zeros_like(weight)
    return _backward(grad_out, input, weight, geometry, interpret_mode())
