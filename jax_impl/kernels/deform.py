# Pallas kernels for deform_conv2d (torchvision semantics, docs/deform.md):
# out[n,o,p] = sum_{c in group(o), t} w[o,c,t] * mask[n,og(c),t,p] * bilinear(x[n,c], y(p,t), x(p,t)).
#
# Segments: the input channels of one weight group g that share one offset group go
# (og(c) = c // (C/Go)); with Go = 1 or Go = G each group is one segment. All channels
# of a segment sample at the same points, so the bilinear geometry (four corner indices
# and weights) is computed once per (tap, BP positions) and shared by the channels.
#
# Tiling (forward): one program per (sample n, segment s and block of OB <= 64 output
# channels of its group, block of BP = 64 flat output positions). For each of the K taps
# (a loop) it reads the segment's offsets and mask for its BP positions, computes the
# corners, then for each chunk of CB <= 32 channels gathers the corner values straight
# from the input in HBM (clamped indices, masked lanes), forms the [CB, BP] sample tile in
# registers and feeds it to W[g, t][OB, CB] @ samples into an [OB, BP] accumulator: no
# column buffer in HBM. A group with several segments sums their partial outputs in XLA.
#
# Backward, two kernels and one XLA scatter:
# - per (n, segment, position block): recompute the samples; per tap and channel chunk
#   the column gradient W^T @ g_out [CB, BP] (dots over blocks of OB output channels), the
#   offset and mask gradients with torchvision's conventions (right-hand derivatives at
#   integer points, no early-out for the offset gradient) reduced over the segment's
#   channels in registers (one offset group per segment; XLA sums the segments of an
#   offset group), and the masked column gradient written as [N, C, K, P].
# - weight gradient: one program per (segment and tap, OB x CB block, split s) loops over
#   its share of the (n, position block) pairs, recomputes the samples and accumulates
#   g_out [OB, BP] @ samples^T [BP, CB]; XLA sums the S <= 8 split partials.
# - input gradient: the one data-dependent scatter. It is NOT done with Pallas atomics
#   (interpret mode drops duplicate-index contributions within one call, so the CPU tests
#   could not vouch for it): XLA's scatter-add spreads the column gradient onto the four
#   corners of every sample, exact and sequential on the CPU; on a GPU XLA lowers it to
#   atomic adds that keep every duplicate (the summation order, so the last bits, may
#   vary between runs as with torchvision's CUDA kernel;
#   XLA_FLAGS=--xla_gpu_deterministic_ops=true makes it deterministic). That column
#   gradient is the backward's one large HBM buffer, the size of torchvision's backward
#   "columns" (K x the input).
#
# Per output element (K taps, Cg channels per group, Og per group, itemsize b): forward
# 2*Cg*K FLOPs in the dot + ~8*Cg*K/OB to weight the corner values (the corner geometry,
# ~40 operations per sample point, is shared by a segment's channels); HBM bytes ~ b
# (write) + 4*Cg*K*b/OB of corner gathers (L1/L2 hits for neighbouring samples: the
# unique input is read once per output-channel block) + 3*K*b/OB of offsets and mask.
# Backward: 2x the dot FLOPs (column and weight gradients) + the samples twice + ~16*Cg*K/Og
# elementwise for the derivatives; HBM ~ 2*Cg*K*b/Og for the column gradient (written,
# then read by the scatter with 4 corner updates each).

"""Pallas kernels of ``deform_conv2d`` (the contract's ``forward`` / ``backward``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from .. import geometry as geo
from .common import (
    DOT_MIN,
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

#: Flat output positions per program; output channels per block; channels per chunk.
BLOCK_PIXELS = 64
BLOCK_OUT = 64
BLOCK_IN = 32
#: At most this many programs share the weight gradient of one (segment, tap, block).
WEIGHT_SPLITS = 8


@dataclass(frozen=True)
class _Plan:
    n: int
    c: int
    h: int
    w: int
    o: int
    groups: int
    offset_groups: int
    taps: int
    positions: int
    block_p: int
    #: ``(g, go, first channel, end channel)`` of every segment, in channel order.
    segments: tuple

    @property
    def cg(self):
        return self.c // self.groups

    @property
    def og(self):
        return self.o // self.groups

    @property
    def block_o(self):
        return min(BLOCK_OUT, pow2(self.og, DOT_MIN))

    @property
    def n_ob(self):
        return blocks(self.og, self.block_o)

    @property
    def og_pad(self):
        return self.n_ob * self.block_o

    @property
    def block_c(self):
        return min(BLOCK_IN, pow2(max(hi - lo for _, _, lo, hi in self.segments), DOT_MIN))

    @property
    def n_chunks(self):
        return blocks(max(hi - lo for _, _, lo, hi in self.segments), self.block_c)

    @property
    def n_pb(self):
        return blocks(self.positions, self.block_p)

    @property
    def splits(self):
        return min(WEIGHT_SPLITS, self.n * self.n_pb)

    @property
    def p_pad(self):
        return self.n_pb * self.block_p

    def table(self):
        """``[segments, 4]`` int32: group, offset group, first channel, channel count."""
        return jnp.asarray([(g, go, lo, hi - lo) for g, go, lo, hi in self.segments],
                           dtype=jnp.int32)

    def of_group(self, g):
        return [s for s, seg in enumerate(self.segments) if seg[0] == g]

    def of_offset_group(self, go):
        return [s for s, seg in enumerate(self.segments) if seg[1] == go]


def _plan(x_shape, w_shape, geometry, groups, offset_groups) -> _Plan:
    n, c, h, w = x_shape
    cg, cpo = c // groups, c // offset_groups
    segments = tuple(
        (g, go, max(g * cg, go * cpo), min((g + 1) * cg, (go + 1) * cpo))
        for g in range(groups) for go in range(offset_groups)
        if max(g * cg, go * cpo) < min((g + 1) * cg, (go + 1) * cpo)
    )
    positions = geometry.out_size[0] * geometry.out_size[1]
    return _Plan(n, c, h, w, w_shape[0], groups, offset_groups,
                 geometry.kernel[0] * geometry.kernel[1], positions,
                 min(BLOCK_PIXELS, pow2(positions, DOT_MIN)), segments)


# ----------------------------------------------------------------------------- sampling
# Plain jnp code: used inside the kernels on [BP] positions and by XLA on whole arrays,
# so the kernels and the input-gradient scatter follow one definition.


@dataclass(frozen=True)
class _Corner:
    index: jax.Array  # flat h*W + w; 0 where off the image
    inside: jax.Array
    weight: jax.Array  # bilinear weight
    contributes: jax.Array  # inside with both weight factors > 0: gets input gradient
    d_dy: jax.Array  # d weight / d y
    d_dx: jax.Array  # d weight / d x


def _points(geometry, position, t, dy, dx):
    """Sample coordinates of tap ``t`` at flat output ``position`` shifted by ``dy, dx``."""
    (sh, sw), (dh, dw), (ph, pw) = geometry.stride, geometry.dilation, geometry.pad_before
    kw, ow = geometry.kernel[1], geometry.out_size[1]
    base_y = idiv(position, ow) * sh - ph + idiv(t, kw) * dh
    base_x = imod(position, ow) * sw - pw + imod(t, kw) * dw
    return base_y.astype(dy.dtype) + dy, base_x.astype(dx.dtype) + dx


def _corners(y, x, height, width):
    """The four bilinear corners of every point (docs/deform.md's order), which points are NaN, and
    which are outside (sample 0 by the border rule)."""
    not_a_point, outside, row0, col0, ly, lx = geo.sample_cells(y, x, height, width)
    corners = []
    for row, wy, sy in ((row0, 1 - ly, -1.0), (row0 + 1, ly, 1.0)):
        for col, wx, sx in ((col0, 1 - lx, -1.0), (col0 + 1, lx, 1.0)):
            inside = (row >= 0) & (row < height) & (col >= 0) & (col < width)
            index = jnp.where(inside, row * width + col, 0)
            contributes = inside & (wy > 0) & (wx > 0)
            corners.append(_Corner(index, inside, wy * wx, contributes, sy * wx, wy * sx))
    return corners, not_a_point, outside


def _weighted(corners, values, field):
    """``sum_k getattr(corner_k, field) * values_k`` in corner order."""
    total = getattr(corners[0], field) * values[0]
    for corner, v in zip(corners[1:], values[1:]):
        total = total + getattr(corner, field) * v
    return total


@dataclass(frozen=True)
class _TapPoints:
    """Where one tap samples, for the BP positions of a program (shared by a segment)."""
    corners: list
    not_a_point: jax.Array
    outside: jax.Array
    mask: jax.Array | float


def _tap_points(off_ref, mask_ref, go, t, position, plan, geometry, sample=()):
    """Tap ``t``'s points for offset group ``go``; ``sample`` is ``(n,)`` where the refs
    hold every sample."""
    k = plan.taps
    dy = off_ref[(*sample, go * (2 * k) + 2 * t, position)]
    dx = off_ref[(*sample, go * (2 * k) + 2 * t + 1, position)]
    y, x = _points(geometry, position, t, dy, dx)
    corners, not_a_point, outside = _corners(y, x, plan.h, plan.w)
    mask = 1.0 if mask_ref is None else mask_ref[(*sample, go * k + t, position)]
    return _TapPoints(corners, not_a_point, outside, mask)


def _chunk_channels(lo, length, k, plan):
    """Channels of chunk ``k`` of a segment: clamped global indices and which are real."""
    r = k * plan.block_c + jnp.arange(plan.block_c, dtype=jnp.int32)
    return lo + jnp.minimum(r, length - 1), r < length


def _corner_values(x_ref, channels, points, sample=()):
    """Corner values ``[CB, BP]`` of every channel, 0 off the image."""
    return [jnp.where(c.inside[None, :], x_ref[(*sample, channels[:, None], c.index[None, :])], 0)
            for c in points.corners]


def _sample(values, points):
    """Bilinear samples ``[CB, BP]`` without the mask: NaN points NaN, outside ones 0."""
    sample = _weighted(points.corners, values, "weight")
    return jnp.where(points.not_a_point, jnp.nan, jnp.where(points.outside, 0, sample))


def _segment(table_ref, s):
    return table_ref[s, 0], table_ref[s, 1], table_ref[s, 2], table_ref[s, 3]


# ----------------------------------------------------------------------------- kernels


def _forward_kernel(*refs, geometry, plan, has_mask):
    table_ref, x_ref, off_ref, *rest = refs
    mask_ref = rest.pop(0) if has_mask else None
    w_ref, out_ref = rest
    position, _ = lanes(2, plan.block_p, plan.positions)
    s, ob = idiv(pl.program_id(1), plan.n_ob), imod(pl.program_id(1), plan.n_ob)
    g, go, lo, length = _segment(table_ref, s)
    o_rows = ob * plan.block_o + jnp.arange(plan.block_o, dtype=jnp.int32)

    def tap(t, acc):
        points = _tap_points(off_ref, mask_ref, go, t, position, plan, geometry)

        def chunk(k, acc):
            channels, real = _chunk_channels(lo, length, k, plan)
            sample = _sample(_corner_values(x_ref, channels, points), points)
            cols = jnp.where(real[:, None], sample * points.mask, 0)
            w = w_ref[g * plan.taps + t, o_rows[:, None], (channels - g * plan.cg)[None, :]]
            return acc + dot(jnp.where(real[None, :], w, 0), cols)

        return fori(plan.n_chunks, chunk, acc)

    out_ref[...] = fori(plan.taps, tap, jnp.zeros((plan.block_o, plan.block_p), out_ref.dtype))


def _backward_kernel(*refs, geometry, plan, has_mask):
    table_ref, x_ref, off_ref, *rest = refs
    mask_ref = rest.pop(0) if has_mask else None
    wt_ref, g_ref, gs_ref, goff_ref, *gmask_ref = rest
    position, valid = lanes(2, plan.block_p, plan.positions)
    g, go, lo, length = _segment(table_ref, pl.program_id(1))
    lane = jnp.zeros(plan.block_p, gs_ref.dtype)

    def tap(t, carry):
        points = _tap_points(off_ref, mask_ref, go, t, position, plan, geometry)

        def chunk(k, sums):
            channels, real = _chunk_channels(lo, length, k, plan)
            values = _corner_values(x_ref, channels, points)
            sample = _sample(values, points)
            w_cols = (channels - g * plan.cg)[:, None]

            def out_block(j, grad_cols):
                o_rows = j * plan.block_o + jnp.arange(plan.block_o, dtype=jnp.int32)
                grad = g_ref[g, o_rows[:, None], position[None, :]]
                wt = jnp.where(real[:, None], wt_ref[g * plan.taps + t, w_cols, o_rows[None, :]], 0)
                return grad_cols + dot(wt, grad)

            grad_cols = fori(plan.n_ob, out_block, jnp.zeros_like(sample))
            grad_sample = grad_cols * points.mask
            gs_ref[t, pl.ds(k * plan.block_c, plan.block_c), :] = jnp.where(
                real[:, None], grad_sample, 0)
            mine = real[:, None]
            grad_y = jnp.where(points.not_a_point, jnp.nan,
                               grad_sample * _weighted(points.corners, values, "d_dy"))
            grad_x = jnp.where(points.not_a_point, jnp.nan,
                               grad_sample * _weighted(points.corners, values, "d_dx"))
            return (sums[0] + jnp.sum(jnp.where(mine, grad_y, 0), axis=0),
                    sums[1] + jnp.sum(jnp.where(mine, grad_x, 0), axis=0),
                    sums[2] + jnp.sum(jnp.where(mine, grad_cols * sample, 0), axis=0))

        grad_y, grad_x, grad_m = fori(plan.n_chunks, chunk, (lane, lane, lane))
        goff_ref[2 * t] = grad_y
        goff_ref[2 * t + 1] = grad_x
        if gmask_ref:
            gmask_ref[0][t] = grad_m
        return carry

    fori(plan.taps, tap, 0)


def _weight_grad_kernel(*refs, geometry, plan, has_mask):
    table_ref, x_ref, off_ref, *rest = refs
    mask_ref = rest.pop(0) if has_mask else None
    g_ref, gw_ref = rest
    s, t = idiv(pl.program_id(0), plan.taps), imod(pl.program_id(0), plan.taps)
    ob, k = idiv(pl.program_id(1), plan.n_chunks), imod(pl.program_id(1), plan.n_chunks)
    split = pl.program_id(2)
    g, go, lo, length = _segment(table_ref, s)
    channels, real = _chunk_channels(lo, length, k, plan)
    o_rows = ob * plan.block_o + jnp.arange(plan.block_o, dtype=jnp.int32)
    total = plan.n * plan.n_pb

    def block(r, acc):
        item = split + plan.splits * r
        item_real = item < total
        item = jnp.minimum(item, total - 1)
        n, pb = idiv(item, plan.n_pb), imod(item, plan.n_pb)
        position = pb * plan.block_p + jnp.arange(plan.block_p, dtype=jnp.int32)
        valid = item_real & (position < plan.positions)
        position = jnp.minimum(position, plan.positions - 1)
        points = _tap_points(off_ref, mask_ref, go, t, position, plan, geometry, (n,))
        sample = _sample(_corner_values(x_ref, channels, points, (n,)), points)
        cols = jnp.where(real[:, None] & valid[None, :], sample * points.mask, 0)
        grad = g_ref[n, g, o_rows[:, None], position[None, :]]
        return acc + dot_t(grad, cols)

    gw_ref[...] = fori(blocks(total, plan.splits), block,
                       jnp.zeros((plan.block_o, plan.block_c), gw_ref.dtype))


# ----------------------------------------------------------------------------- launch


def _inputs(x, offset, mask, plan):
    xs = x.reshape(plan.n, plan.c, plan.h * plan.w)
    off = offset.reshape(plan.n, offset.shape[1], plan.positions)
    m = None if mask is None else mask.reshape(plan.n, mask.shape[1], plan.positions)
    return [plan.table(), xs, off] + ([] if m is None else [m])


def _in_specs(arrays):
    """The segment table whole, then the per-sample arrays one sample per program."""
    def per_sample(a):
        return pl.BlockSpec((None, *a.shape[1:]), lambda n, s, pb: (n,) + (0,) * (a.ndim - 1))

    return [whole(arrays[0].shape)] + [per_sample(a) for a in arrays[1:]]


def _weight_taps(w, plan, transpose):
    """``[G*K, Og_pad, Cg]`` (``transpose``: ``[G*K, Cg, Og_pad]``), row ``g*K + t``."""
    taps = w.reshape(plan.groups, plan.og, plan.cg, plan.taps).transpose(0, 3, 1, 2)
    taps = pad_axis(taps, 2, plan.og_pad)
    if transpose:
        taps = taps.transpose(0, 1, 3, 2)
    return taps.reshape(plan.groups * plan.taps, *taps.shape[2:])


def _by_group(parts, plan, axis):
    """Sum the per-segment ``parts`` (segments on ``axis``) of each weight group."""
    return jnp.stack([sum(jnp.take(parts, s, axis=axis) for s in plan.of_group(g))
                      for g in range(plan.groups)], axis=axis)


def _by_offset_group(parts, plan, axis):
    return jnp.stack([sum(jnp.take(parts, s, axis=axis) for s in plan.of_offset_group(go))
                      for go in range(plan.offset_groups)], axis=axis)


@functools.partial(jax.jit, static_argnums=(4, 5, 6, 7))
def _forward(x, offset, w, mask, geometry, groups, offset_groups, interpret):
    plan = _plan(x.shape, w.shape, geometry, groups, offset_groups)
    arrays = _inputs(x, offset, mask, plan)
    wt = _weight_taps(w, plan, transpose=False)
    n_seg = len(plan.segments)
    parts = pallas_call(
        functools.partial(_forward_kernel, geometry=geometry, plan=plan, has_mask=mask is not None),
        grid=(plan.n, n_seg * plan.n_ob, plan.n_pb),
        in_specs=[*_in_specs(arrays), whole(wt.shape)],
        out_specs=pl.BlockSpec((None, None, plan.block_o, plan.block_p),
                               lambda n, so, pb: (n, idiv(so, plan.n_ob), imod(so, plan.n_ob), pb)),
        out_shape=jax.ShapeDtypeStruct((plan.n, n_seg, plan.og_pad, plan.p_pad), x.dtype),
        interpret=interpret, name="deform_forward",
    )(*arrays, wt)
    out = _by_group(parts, plan, axis=1)[:, :, :plan.og, :plan.positions]
    return out.reshape(plan.n, plan.o, *geometry.out_size)


def _scatter_input_grad(grad_sample, offset, geometry, plan):
    """Input gradient: ``grad_sample [N, C, K, P]`` times each corner's bilinear weight,
    added at the corners that contribute (XLA scatter-add: duplicates accumulate)."""
    n, go, k, p = plan.n, plan.offset_groups, plan.taps, plan.positions
    off = offset.reshape(n, go, k, 2, p)
    t = jnp.arange(k, dtype=jnp.int32)[:, None]
    position = jnp.arange(p, dtype=jnp.int32)[None, :]
    y, x = _points(geometry, position, t, off[:, :, :, 0], off[:, :, :, 1])
    corners, _, _ = _corners(y, x, plan.h, plan.w)
    per_group = plan.c // go
    gs = grad_sample.reshape(n, go, per_group, k, p)
    planes = (jnp.arange(n * plan.c, dtype=jnp.int32) * (plan.h * plan.w))
    planes = planes.reshape(n, go, per_group, 1, 1)
    grad = jnp.zeros(n * plan.c * plan.h * plan.w, grad_sample.dtype)
    for corner in corners:
        value = jnp.where(corner.contributes[:, :, None], gs * corner.weight[:, :, None], 0)
        grad = grad.at[(planes + corner.index[:, :, None]).ravel()].add(value.ravel())
    return grad.reshape(n, plan.c, plan.h, plan.w)


def _weight_grad(parts, plan):
    """``[O, Cg, K]`` from the split partials ``[splits, S*K, chunks, Og_pad, CB]``."""
    parts = parts.sum(axis=0).reshape(len(plan.segments), plan.taps, *parts.shape[2:])
    per_segment = []
    for s, (_, _, lo, hi) in enumerate(plan.segments):
        block = parts[s].transpose(0, 2, 1, 3)  # [K, Og_pad, chunks, CB]
        block = block.reshape(plan.taps, plan.og_pad, -1)[:, :plan.og, :hi - lo]
        per_segment.append(block)
    groups = [jnp.concatenate([per_segment[s] for s in plan.of_group(g)], axis=2)
              for g in range(plan.groups)]
    grad = jnp.stack(groups)  # [G, K, Og, Cg]
    return grad.transpose(0, 2, 3, 1).reshape(plan.o, plan.cg, plan.taps)


@functools.partial(jax.jit, static_argnums=(5, 6, 7, 8))
def _backward(grad_out, x, offset, w, mask, geometry, groups, offset_groups, interpret):
    plan = _plan(x.shape, w.shape, geometry, groups, offset_groups)
    arrays = _inputs(x, offset, mask, plan)
    wt = _weight_taps(w, plan, transpose=True)
    k, n_seg, dtype = plan.taps, len(plan.segments), x.dtype
    grad = grad_out.reshape(plan.n, plan.groups, plan.og, plan.positions)
    grad = pad_axis(grad, 2, plan.og_pad)
    chunk_rows = plan.n_chunks * plan.block_c
    out_specs = [
        pl.BlockSpec((None, None, k, chunk_rows, plan.block_p), lambda n, s, pb: (n, s, 0, 0, pb)),
        pl.BlockSpec((None, None, 2 * k, plan.block_p), lambda n, s, pb: (n, s, 0, pb)),
    ]
    out_shape = [
        jax.ShapeDtypeStruct((plan.n, n_seg, k, chunk_rows, plan.p_pad), dtype),
        jax.ShapeDtypeStruct((plan.n, n_seg, 2 * k, plan.p_pad), dtype),
    ]
    if mask is not None:
        out_specs.append(pl.BlockSpec((None, None, k, plan.block_p), lambda n, s, pb: (n, s, 0, pb)))
        out_shape.append(jax.ShapeDtypeStruct((plan.n, n_seg, k, plan.p_pad), dtype))
    outs = pallas_call(
        functools.partial(_backward_kernel, geometry=geometry, plan=plan, has_mask=mask is not None),
        grid=(plan.n, n_seg, plan.n_pb),
        in_specs=[*_in_specs(arrays), whole(wt.shape),
                  pl.BlockSpec((None, *grad.shape[1:]), lambda n, s, pb: (n, 0, 0, 0))],
        out_specs=out_specs, out_shape=out_shape,
        interpret=interpret, name="deform_backward", num_warps=8,
    )(*arrays, wt, grad)
    gs, goff = outs[:2]
    gs = jnp.concatenate([gs[:, s, :, :hi - lo, :plan.positions]
                          for s, (_, _, lo, hi) in enumerate(plan.segments)], axis=2)
    grad_input = _scatter_input_grad(gs.transpose(0, 2, 1, 3), offset, geometry, plan)
    grad_offset = _by_offset_group(goff, plan, axis=1)[..., :plan.positions].reshape(offset.shape)
    grad_mask = None
    if mask is not None:
        grad_mask = _by_offset_group(outs[2], plan, axis=1)[..., :plan.positions]
        grad_mask = grad_mask.reshape(mask.shape)
    parts = pallas_call(
        functools.partial(_weight_grad_kernel, geometry=geometry, plan=plan,
                          has_mask=mask is not None),
        grid=(n_seg * k, plan.n_ob * plan.n_chunks, plan.splits),
        in_specs=[whole(a.shape) for a in (*arrays, grad)],
        out_specs=pl.BlockSpec(
            (None, None, None, plan.block_o, plan.block_c),
            lambda st, oc, s: (s, st, imod(oc, plan.n_chunks), idiv(oc, plan.n_chunks), 0)),
        out_shape=jax.ShapeDtypeStruct(
            (plan.splits, n_seg * k, plan.n_chunks, plan.og_pad, plan.block_c), dtype),
        interpret=interpret, name="deform_grad_weight", num_warps=8,
    )(*arrays, grad)
    return grad_input, grad_offset, _weight_grad(parts, plan).reshape(w.shape), grad_mask


def forward(input, offset, weight, mask, geometry, groups, offset_groups):
    """Deformable convolution (v1 when ``mask`` is None, v2 otherwise) without bias.

    Args:
        input: ``[N, C, H, W]`` float32/float64.
        offset: ``[N, 2*Go*kh*kw, oh, ow]``, interleaved ``(dy, dx)`` per tap.
        weight: ``[O, C/G, kh, kw]``.
        mask: ``[N, Go*kh*kw, oh, ow]`` or None.
        geometry: ``reference.common.Geometry`` from ``deform_conv2d_signature``.
        groups, offset_groups: G and Go from ``deform_conv2d_signature``.

    Returns:
        ``[N, O, oh, ow]``.
    """
    if input.shape[0] == 0:
        return jnp.zeros((0, weight.shape[0], *geometry.out_size), input.dtype)
    return _forward(input, offset, weight, mask, geometry, int(groups), int(offset_groups),
                    interpret_mode())


def backward(grad_out, input, offset, weight, mask, geometry, groups, offset_groups):
    """Gradients of :func:`forward` with torchvision's conventions: ``(grad_input,
    grad_offset, grad_weight, grad_mask)``, ``grad_mask`` None without a mask.

    The input gradient's scatter-add is exact on the CPU; on a GPU its summation order is
    not deterministic (XLA atomics), as torchvision's CUDA kernel."""
    if input.shape[0] == 0:
        return (jnp.zeros_like(input), jnp.zeros_like(offset), jnp.zeros_like(weight),
                None if mask is None else jnp.zeros_like(mask))
    return _backward(grad_out, input, offset, weight, mask, geometry, int(groups),
                     int(offset_groups), interpret_mode())
