# Triton kernels of deform_conv2d (DCN v1/v2, torchvision semantics): bilinear sampling
# inside an implicit GEMM; no column buffer in global memory in the forward.
#
# Notation: M = N*oh*ow positions, K = kh*kw taps, G weight groups (C/G in-channels and
# O/G out-channels each), Go offset groups (C/Go channels each). Per output the GEMM does
# 2*K*C/G FLOPs, and every sample costs 4 corner loads + ~20 FLOPs of bilinear weights.
#
# forward, grid (cdiv(M, BM), G, cdiv(O/G, BO)): one program owns BM positions x BO output
#   channels of one weight group. Per tap and per offset group overlapping its channels it
#   loads the BM offsets (and mask values), computes the sampling points, corner rows/cols
#   and bilinear weights once as BM-vectors (in float64, as the reference: a float32
#   -1 + (-1e-9) must not round onto the image), then per block of BC channels gathers
#   the four corners [BM, BC], forms the samples in registers and feeds them straight to
#   tl.dot(samples [BM, BC], W[o, c, i, j] [BC, BO]).
#   Per output: 2*K*C/G FLOPs (MMA) + (K*C/G)/BO samples (gathers, ~20 FLOPs each); HBM:
#   input, offsets, mask, weights and output once (corner re-reads hit L1/L2).
# backward, grid (S, Go): one program owns one offset group and walks position tiles
#   t = s, s+S, ... (S = 1 in the interpreter; on a GPU enough for 2 programs per SM, each
#   keeping >= 2 tiles). Per (tile, tap, block of BC channels) it recomputes the samples,
#   then per block of BO output channels of the weight groups involved does two MMAs:
#   grad_col [BM, BC] += grad_out [BM, BO] @ W^T [BO, BC] (W masked to same-group pairs) and
#   grad_W partial [BO, BC] += grad_out^T [BO, BM] @ samples [BM, BC] (accumulated in the
#   program's own slice of an [S, O, C/G, K] buffer, summed by torch: deterministic).
#   From grad_col it reduces grad_offset (the bilinear weights' right-hand derivatives)
#   and grad_mask over the group's channels in registers (one writer each: deterministic)
#   and scatters grad_input to the four corners with tl.atomic_add (default; NOT
#   deterministic on a GPU) or, under torch.are_deterministic_algorithms_enabled(), writes
#   the corner contributions of one tap at a time ([4, N, C, oh*ow] values and indices) and
#   adds them with torch's deterministic index_add_ (two passes, K launches).
#   Per output: 4*K*C/G FLOPs (two MMAs) + the sampling work again.
"""Triton kernels of ``deform_conv2d`` (forward and backward). See the comment above for
the tiling; the functions below are the backend contract."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .common import (
    ADD,
    DOT_PRECISION,
    acc_dtype,
    acc_type,
    bfloat16_in_float32,
    block,
    check_tensors,
    index_type,
    launch,
    parallel_splits,
    window_args,
)

#: Block-size ranges ``(low, high)``, interpreted then compiled (common.block); tl.dot
#: needs >= 16 on a GPU. Positions, out channels (of a weight group), in channels per tile.
POSITIONS = ((16, 128), (16, 64))
OUT_CHANNELS = ((16, 32), (16, 64))
IN_CHANNELS = ((16, 32), (16, 32))


@triton.jit
def _point(off_ptr, n, go, k, r, ok, oy, ox, GO, OH, OW, H, W,
           SH, SW, PH, PW, DH, DW, KH, KW, IDX: tl.constexpr):
    """Sampling point of tap k, offset group go, at each position (BM-vectors).

    Computed in float64 whatever the data type, as the reference does: a float32
    ``-1 + (-1e-9)`` must stay below -1 (a rounded -1.0 would move the point onto the
    image and change the right-hand derivative). Returns the top-left corner (row, col)
    as ints, the fractions (ly, lx) in float64, whether the point is NaN (and a NaN), and
    whether the border rule zeroes the sample (y <= -1, y >= H, x <= -1 or x >= W). NaN
    points are moved to (-2, -2) and far points clipped to [-2, size + 1], which keeps
    every corner of them off the image."""
    K = KH * KW
    per_image = OH * OW
    channel = (n * GO + go) * (2 * K) + 2 * k
    dy = tl.load(off_ptr + channel * per_image + r, mask=ok, other=0.0).to(tl.float64)
    dx = tl.load(off_ptr + (channel + 1) * per_image + r, mask=ok, other=0.0).to(tl.float64)
    y = (oy * SH - PH + (k // KW) * DH).to(tl.float64) + dy
    x = (ox * SW - PW + (k % KW) * DW).to(tl.float64) + dx
    nan = (y != y) | (x != x)
    nan_value = y + x
    y = tl.minimum(tl.maximum(tl.where(nan, -2.0, y), -2.0), H + 1.0)
    x = tl.minimum(tl.maximum(tl.where(nan, -2.0, x), -2.0), W + 1.0)
    outside = (y <= -1.0) | (y >= H) | (x <= -1.0) | (x >= W)
    y0 = tl.floor(y)
    x0 = tl.floor(x)
    return y0.to(IDX), x0.to(IDX), y - y0, x - x0, nan, nan_value, outside


@triton.jit
def _sample(x_ptr, n, c, row0, col0, ly, lx, nan, nan_value, outside, C, H, W, ok,
            ACC: tl.constexpr):
    """Bilinear samples [BM, BC] of channels c at the points: the corners (row0, col0) +
    {0, 1}^2, each read as 0 off the image, weighted (1-ly)(1-lx), (1-ly)lx, ly(1-lx),
    ly*lx (formed in float64) and summed in that order; 0 outside by the border rule,
    NaN at a NaN point. Also returns the corner values, flat indices and whether each
    corner is on the image (one call per block: the interpreter pays per call)."""
    plane = (n[:, None] * C + c[None, :]) * (H * W)
    top = (row0 >= 0) & (row0 < H)
    bottom = (row0 + 1 >= 0) & (row0 + 1 < H)
    left = (col0 >= 0) & (col0 < W)
    right = (col0 + 1 >= 0) & (col0 + 1 < W)
    in1, in2, in3, in4 = top & left, top & right, bottom & left, bottom & right
    i1 = plane + (row0 * W + col0)[:, None]
    i2 = i1 + 1
    i3 = i1 + W
    i4 = i3 + 1
    v1 = tl.load(x_ptr + i1, mask=ok & in1[:, None], other=0.0).to(ACC)
    v2 = tl.load(x_ptr + i2, mask=ok & in2[:, None], other=0.0).to(ACC)
    v3 = tl.load(x_ptr + i3, mask=ok & in3[:, None], other=0.0).to(ACC)
    v4 = tl.load(x_ptr + i4, mask=ok & in4[:, None], other=0.0).to(ACC)
    hy = 1.0 - ly
    hx = 1.0 - lx
    value = ((hy * hx).to(ACC)[:, None] * v1 + (hy * lx).to(ACC)[:, None] * v2
             + (ly * hx).to(ACC)[:, None] * v3 + (ly * lx).to(ACC)[:, None] * v4)
    value = tl.where(outside[:, None], 0.0, value)
    value = tl.where(nan[:, None], nan_value.to(ACC)[:, None], value)
    return value, v1, v2, v3, v4, i1, i2, i3, i4, in1, in2, in3, in4


@triton.jit
def _forward_kernel(x_ptr, off_ptr, w_ptr, msk_ptr, out_ptr,
                    C, H, W, O, OH, OW, M, G, GO, HAS_MASK,
                    SH, SW, PH, PW, DH, DW, KH, KW,
                    ACC: tl.constexpr, BM: tl.constexpr, BO: tl.constexpr, BC: tl.constexpr,
                    IDX: tl.constexpr):
    m = (tl.program_id(0) * BM + tl.arange(0, BM)).to(IDX)
    g = tl.program_id(1)
    m_ok = m < M
    per_image = OH * OW
    n = m // per_image
    r = m % per_image
    oy = r // OW
    ox = r % OW
    CG = C // G
    OG = O // G
    CPG = C // GO
    o_local = tl.program_id(2) * BO + tl.arange(0, BO)
    o_ok = o_local < OG
    o = g * OG + o_local
    K = KH * KW
    c_first = g * CG
    c_end = c_first + CG
    acc = tl.full((BM, BO), 0.0, ACC)
    for k in range(K):
        for go in range(c_first // CPG, (c_end - 1) // CPG + 1):
            row0, col0, ly, lx, nan, nan_value, outside = _point(
                off_ptr, n, go, k, r, m_ok, oy, ox, GO, OH, OW, H, W,
                SH, SW, PH, PW, DH, DW, KH, KW, IDX)
            modulation = tl.load(msk_ptr + ((n * GO + go) * K + k) * per_image + r,
                                 mask=m_ok & (HAS_MASK != 0), other=1.0).to(ACC)
            lo = tl.maximum(c_first, go * CPG)
            hi = tl.minimum(c_end, (go + 1) * CPG)
            for c0 in range(lo, hi, BC):
                c = c0 + tl.arange(0, BC)
                ok = m_ok[:, None] & (c < hi)[None, :]
                sample, _, _, _, _, _, _, _, _, _, _, _, _ = _sample(
                    x_ptr, n, c, row0, col0, ly, lx, nan, nan_value, outside, C, H, W, ok, ACC)
                col = tl.where(ok, sample * modulation[:, None], 0.0)
                wt = tl.load(w_ptr + (o[None, :] * CG + (c - c_first)[:, None]) * K + k,
                             mask=(c < hi)[:, None] & o_ok[None, :], other=0.0)
                acc = tl.dot(col.to(wt.dtype), wt, acc, input_precision=DOT_PRECISION,
                             out_dtype=ACC)
    out = out_ptr + (n[:, None] * O + o[None, :]) * per_image + r[:, None]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=m_ok[:, None] & o_ok[None, :])


@triton.jit
def _input_gradient(gx_ptr, vals_ptr, idx_ptr, slot, CORNER, grad_sample, ly, lx,
                    i1, i2, i3, i4, in1, in2, in3, in4, ok, SCATTER, DUMMY, ACC: tl.constexpr):
    """grad_sample times each corner's weight, to the corners whose two weight factors
    are > 0 (torchvision's |y - row| < 1 and |x - col| < 1): atomically added to the
    input gradient, or written to the two-pass buffers [4, N, C, oh*ow] (value, target
    index; DUMMY where a corner gets nothing)."""
    hy = 1.0 - ly
    hx = 1.0 - lx
    g1 = grad_sample * (hy * hx).to(ACC)[:, None]
    g2 = grad_sample * (hy * lx).to(ACC)[:, None]
    g3 = grad_sample * (ly * hx).to(ACC)[:, None]
    g4 = grad_sample * (ly * lx).to(ACC)[:, None]
    c1 = ok & (in1 & (hy > 0) & (hx > 0))[:, None]
    c2 = ok & (in2 & (hy > 0) & (lx > 0))[:, None]
    c3 = ok & (in3 & (ly > 0) & (hx > 0))[:, None]
    c4 = ok & (in4 & (ly > 0) & (lx > 0))[:, None]
    if SCATTER != 0:
        tl.atomic_add(gx_ptr + i1, g1, mask=c1)
        tl.atomic_add(gx_ptr + i2, g2, mask=c2)
        tl.atomic_add(gx_ptr + i3, g3, mask=c3)
        tl.atomic_add(gx_ptr + i4, g4, mask=c4)
    else:
        tl.store(vals_ptr + slot, tl.where(c1, g1, 0.0), mask=ok)
        tl.store(vals_ptr + slot + CORNER, tl.where(c2, g2, 0.0), mask=ok)
        tl.store(vals_ptr + slot + 2 * CORNER, tl.where(c3, g3, 0.0), mask=ok)
        tl.store(vals_ptr + slot + 3 * CORNER, tl.where(c4, g4, 0.0), mask=ok)
        tl.store(idx_ptr + slot, tl.where(c1, i1, DUMMY), mask=ok)
        tl.store(idx_ptr + slot + CORNER, tl.where(c2, i2, DUMMY), mask=ok)
        tl.store(idx_ptr + slot + 2 * CORNER, tl.where(c3, i3, DUMMY), mask=ok)
        tl.store(idx_ptr + slot + 3 * CORNER, tl.where(c4, i4, DUMMY), mask=ok)


@triton.jit
def _backward_kernel(x_ptr, off_ptr, w_ptr, msk_ptr, g_ptr,
                     gx_ptr, goff_ptr, gmsk_ptr, gw_ptr, vals_ptr, idx_ptr,
                     C, H, W, O, OH, OW, M, G, GO, HAS_MASK, SCATTER, K_FIRST, K_STOP,
                     SH, SW, PH, PW, DH, DW, KH, KW,
                     ACC: tl.constexpr, BM: tl.constexpr, BO: tl.constexpr, BC: tl.constexpr,
                     IDX: tl.constexpr):
    split = tl.program_id(0)
    splits = tl.num_programs(0)
    go = tl.program_id(1)
    per_image = OH * OW
    CG = C // G
    OG = O // G
    CPG = C // GO
    K = KH * KW
    c_first = go * CPG
    c_end = c_first + CPG
    DUMMY = (M // per_image).to(IDX) * C * H * W  # the slot past grad_input's last cell
    CORNER = M.to(IDX) * C  # one corner's block of the two-pass buffers [4, N, C, oh*ow]
    for tile in range(split, (M + BM - 1) // BM, splits):
        m = (tile * BM + tl.arange(0, BM)).to(IDX)
        m_ok = m < M
        n = m // per_image
        r = m % per_image
        oy = r // OW
        ox = r % OW
        for k in range(K_FIRST, K_STOP):
            row0, col0, ly, lx, nan, nan_value, outside = _point(
                off_ptr, n, go, k, r, m_ok, oy, ox, GO, OH, OW, H, W,
                SH, SW, PH, PW, DH, DW, KH, KW, IDX)
            modulation = tl.load(msk_ptr + ((n * GO + go) * K + k) * per_image + r,
                                 mask=m_ok & (HAS_MASK != 0), other=1.0).to(ACC)
            hy = 1.0 - ly
            hx = 1.0 - lx
            grad_y = tl.full((BM,), 0.0, ACC)
            grad_x = tl.full((BM,), 0.0, ACC)
            grad_m = tl.full((BM,), 0.0, ACC)
            for c0 in range(c_first, c_end, BC):
                c = c0 + tl.arange(0, BC)
                c_ok = c < c_end
                ok = m_ok[:, None] & c_ok[None, :]
                sample, v1, v2, v3, v4, i1, i2, i3, i4, in1, in2, in3, in4 = _sample(
                    x_ptr, n, c, row0, col0, ly, lx, nan, nan_value, outside, C, H, W, ok, ACC)
                col = tl.where(ok, sample * modulation[:, None], 0.0).to(g_ptr.dtype.element_ty)
                # Output channels of the weight groups this channel block touches.
                c_group = c // CG
                o_start = (c0 // CG) * OG
                o_stop = ((tl.minimum(c0 + BC, c_end) - 1) // CG + 1) * OG
                grad_col = tl.full((BM, BC), 0.0, ACC)
                for o0 in range(o_start, o_stop, BO):
                    o = o0 + tl.arange(0, BO)
                    pair = (o < o_stop)[:, None] & c_ok[None, :] & ((o // OG)[:, None] == c_group[None, :])
                    gv = tl.load(g_ptr + (n[:, None] * O + o[None, :]) * per_image + r[:, None],
                                 mask=m_ok[:, None] & (o < o_stop)[None, :], other=0.0)
                    w_index = (o[:, None] * CG + (c - c_group * CG)[None, :]) * K + k
                    wt = tl.load(w_ptr + w_index, mask=pair, other=0.0)
                    grad_col = tl.dot(gv, wt, grad_col, input_precision=DOT_PRECISION,
                                      out_dtype=ACC)
                    part = gw_ptr + split * (O * CG * K) + w_index
                    dw = tl.dot(tl.trans(gv), col, input_precision=DOT_PRECISION, out_dtype=ACC)
                    tl.store(part, tl.load(part, mask=pair, other=0.0) + dw, mask=pair)
                grad_m += tl.reduce(tl.where(ok, grad_col * sample, 0.0), 1, ADD)
                grad_sample = grad_col * modulation[:, None]
                # Right-hand derivatives of the bilinear weights (no border early-out).
                d_dy = ((-hx).to(ACC)[:, None] * v1 + (-lx).to(ACC)[:, None] * v2
                        + hx.to(ACC)[:, None] * v3 + lx.to(ACC)[:, None] * v4)
                d_dx = ((-hy).to(ACC)[:, None] * v1 + hy.to(ACC)[:, None] * v2
                        + (-ly).to(ACC)[:, None] * v3 + ly.to(ACC)[:, None] * v4)
                grad_y += tl.reduce(tl.where(ok, grad_sample * d_dy, 0.0), 1, ADD)
                grad_x += tl.reduce(tl.where(ok, grad_sample * d_dx, 0.0), 1, ADD)
                slot = (n[:, None] * C + c[None, :]) * per_image + r[:, None]
                _input_gradient(gx_ptr, vals_ptr, idx_ptr, slot, CORNER, grad_sample, ly, lx,
                                i1, i2, i3, i4, in1, in2, in3, in4, ok, SCATTER, DUMMY, ACC)
            grad_y = tl.where(nan, nan_value.to(ACC), grad_y)
            grad_x = tl.where(nan, nan_value.to(ACC), grad_x)
            channel = (n * GO + go) * (2 * K) + 2 * k
            tl.store(goff_ptr + channel * per_image + r, grad_y, mask=m_ok)
            tl.store(goff_ptr + (channel + 1) * per_image + r, grad_x, mask=m_ok)
            tl.store(gmsk_ptr + ((n * GO + go) * K + k) * per_image + r, grad_m,
                     mask=m_ok & (HAS_MASK != 0))


def _blocks(m: int, o_per_group: int, c_block: int) -> tuple[int, int, int]:
    return block(m, *POSITIONS), block(o_per_group, *OUT_CHANNELS), block(c_block, *IN_CHANNELS)


@bfloat16_in_float32
def forward(input, offset, weight, mask, geometry, groups: int, offset_groups: int) -> torch.Tensor:
    """Deformable convolution without bias.

    Args:
        input: ``[N, C, H, W]``.
        offset: ``[N, 2*offset_groups*kh*kw, oh, ow]``, interleaved (dy, dx) per tap.
        weight: ``[O, C/groups, kh, kw]``.
        mask: ``[N, offset_groups*kh*kw, oh, ow]`` (v2) or None (v1).
        geometry, groups, offset_groups: from ``reference.deform.deform_conv2d_signature``.

    Returns:
        ``[N, O, oh, ow]`` in the input's dtype.
    """
    dtype = check_tensors(input, offset, weight, mask)
    x, off, w = input.contiguous(), offset.contiguous(), weight.contiguous()
    msk = off if mask is None else mask.contiguous()
    n, c, h, wd = x.shape
    o = w.shape[0]
    oh, ow = geometry.out_size
    out = torch.empty((n, o, oh, ow), dtype=dtype, device=x.device)
    m = n * oh * ow
    if out.numel() == 0:
        return out
    bm, bo, bc = _blocks(m, o // groups, min(c // groups, c // offset_groups))
    launch(_forward_kernel, (triton.cdiv(m, bm), groups, triton.cdiv(o // groups, bo)),
           x, off, w, msk, out, c, h, wd, o, oh, ow, m, groups, offset_groups,
           int(mask is not None), *window_args(geometry),
           ACC=acc_type(dtype), BM=bm, BO=bo, BC=bc, IDX=index_type(x, off, w, msk, out))
    return out


@bfloat16_in_float32
def backward(grad_out, input, offset, weight, mask, geometry, groups: int, offset_groups: int):
    """Gradients of :func:`forward`: ``(grad_input, grad_offset, grad_weight, grad_mask)``
    (``grad_mask`` None without a mask), torchvision's conventions (right-hand
    derivatives at integer coordinates, no border early-out in the offset gradient, NaN
    points: NaN offset and mask gradients, nothing to the input gradient).

    **Not deterministic by default**: the input gradient is scattered to the bilinear
    corners with ``tl.atomic_add``, whose float additions land in a different order from
    run to run on a GPU. Under ``torch.use_deterministic_algorithms(True)`` it is computed
    in two passes instead: per tap, the corner contributions and their target cells are
    written to a buffer ``[4, N, C, oh*ow]`` and added with ``index_add_`` (deterministic in
    that mode). The other gradients are deterministic on both paths.
    """
    dtype = check_tensors(grad_out, input, offset, weight, mask)
    g, x, off, w = (t.contiguous() for t in (grad_out, input, offset, weight))
    msk = off if mask is None else mask.contiguous()
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = geometry.out_size
    work = acc_dtype(dtype)
    m, taps = n * oh * ow, kh * kw
    # One slot past the last cell: where the two-pass buffers send non-contributions.
    grad_x = torch.zeros(x.numel() + 1, dtype=work, device=x.device)
    grad_off = torch.empty(off.shape, dtype=work, device=x.device)
    grad_mask = torch.empty(msk.shape, dtype=work, device=x.device) if mask is not None else grad_off
    if m == 0:
        grads = (grad_x[:-1].view(x.shape), grad_off, torch.zeros_like(w, dtype=work),
                 grad_mask if mask is not None else None)
        return tuple(None if t is None else t.to(dtype) for t in grads)
    bm, bo, bc = _blocks(m, o // groups, c // offset_groups)
    tiles = triton.cdiv(m, bm)
    splits = parallel_splits(offset_groups, tiles, min_chunks=2)
    partial = torch.zeros((splits, *w.shape), dtype=work, device=x.device)
    deterministic = torch.are_deterministic_algorithms_enabled()
    if deterministic:
        values = torch.empty((4, n, c, oh * ow), dtype=work, device=x.device)
        targets = torch.full((4, n, c, oh * ow), x.numel(), dtype=torch.int64, device=x.device)
        tap_ranges = [(k, k + 1) for k in range(taps)]
    else:
        # Unused on this path; typed like the two-pass buffers so one build serves both.
        values = grad_x
        targets = torch.empty(1, dtype=torch.int64, device=x.device)
        tap_ranges = [(0, taps)]
    for first, stop in tap_ranges:
        launch(_backward_kernel, (splits, offset_groups),
               x, off, w, msk, g, grad_x, grad_off, grad_mask, partial, values, targets,
               c, h, wd, o, oh, ow, m, groups, offset_groups, int(mask is not None),
               int(not deterministic), first, stop, *window_args(geometry),
               ACC=acc_type(dtype), BM=bm, BO=bo, BC=bc,
               IDX=index_type(x, off, msk, grad_x, partial, values, targets))
        if deterministic:
            grad_x.index_add_(0, targets.view(-1), values.view(-1))
    return (grad_x[:-1].view(x.shape).to(dtype), grad_off.to(dtype),
            partial.sum(dim=0).to(dtype), grad_mask.to(dtype) if mask is not None else None)
