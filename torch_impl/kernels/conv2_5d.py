# Triton kernels of conv2_5d (2.5D depth-binned convolution), implicit GEMM with tl.dot.
#
# Notation: M = N*oh*ow output positions, O out channels, C in channels, B depth bins
# (BB = B rounded up to a power of two), K = kh*kw taps; the GEMM reduces over
# (tap, bin, C): 2*B*C*K FLOPs per output (every bin is an MMA, B x a conv2d).
# Masks are never stored: every program recomputes them from the depth it loads, in
# float64 whatever the data type (edges d + (k - B/2)*s exactly as docs/conv2_5d.md writes them, so
# a depth on an edge falls in the same bin as in the float64 reference). The bins sit
# side by side in the reduction: the operand [rows, BB*BC] holds x * m_l for every bin
# l (column l*BC + c; the product first, so an infinite input in a closed bin is NaN as
# in the reference) and one tl.dot against the [BB*BC, cols] weight tile reduces over
# bins and channels together.
#
# forward, grid (cdiv(M, BM), cdiv(O, BO)): one program owns a BM x BO output tile. It
#   loads the BM window-centre depths once (s = d*pixel_size/focal), then per tap the BM
#   tap depths (-> BM x BB masks) and, per block of BC channels, the BM x BC input tile,
#   and accumulates tl.dot(x-per-bin [BM, BB*BC], W [BB*BC, BO]) in fp32/fp64.
#   Per output: 2*B*C*K FLOPs; loads per output K*C/BO input + K*B*C/BM weight elements
#   (L1/L2 hits), HBM ~ input + depth + weights + output once: compute bound.
# backward input (gather, deterministic), grid (cdiv(N*H*W, BM), cdiv(C, BC)): one program
#   owns BM input cells x BC channels; per tap it finds the output position reading each
#   cell (stride divisibility), loads that position's centre depth and the cell's own
#   depth, and accumulates tl.dot(grad_out-per-bin [BM, BB*BO], W [BB*BO, BC]) per tap,
#   added where an output reads the cell (a non-finite weight must not reach the others).
#   2*B*O*K FLOPs per input gradient element.
# backward weight, grid (cdiv(O, BO) * cdiv(C, BC), S): one program owns a BO x BC weight
#   tile for every bin and 1/S of the positions; per tap it accumulates
#   tl.dot(grad_out^T [BO, BP], x-per-bin [BP, BB*BC]) over its positions and writes a
#   partial [S, B, O, C, K] that torch sums (deterministic; S = 1 in the interpreter;
#   on a GPU enough splits for 2 programs per SM, each keeping >= 8 position blocks).
#   2*M*K FLOPs per weight element; partials S*|W| bytes written and read.
"""Triton kernels of ``conv2_5d`` (forward and backward). See the comment above for the
tiling; the functions below are the backend contract."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .common import (
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
#: needs >= 16 on a GPU. Positions (output positions, or input cells in the input
#: gradient), out channels, in channels per tile.
POSITIONS = ((16, 128), (16, 64))
OUT_CHANNELS = ((16, 32), (16, 64))
IN_CHANNELS = ((16, 32), (16, 32))


def _scalars(focal: float, pixel_size: float, device) -> torch.Tensor:
    """``[pixel_size, focal]`` in float64: a float kernel argument would be rounded to fp32."""
    return torch.tensor([pixel_size, focal], dtype=torch.float64, device=device)


@triton.jit
def _depth(d_ptr, n, row, col, H, W, ok):
    """Zero-padded depth at (row, col) of image n, in float64."""
    inside = ok & (row >= 0) & (row < H) & (col >= 0) & (col < W)
    return tl.load(d_ptr + (n * H + row) * W + col, mask=inside, other=0.0).to(tl.float64)


@triton.jit
def _grid_size(d_ptr, par_ptr, n, oy, ox, ok, H, W, SH, SW, PH, PW, DH, DW, KH, KW):
    """Window-centre depth and grid size s = d * pixel_size / focal of each position."""
    centre = _depth(d_ptr, n, oy * SH - PH + (KH // 2) * DH, ox * SW - PW + (KW // 2) * DW,
                    H, W, ok)
    pixel_size = tl.load(par_ptr)
    focal = tl.load(par_ptr + 1)
    return centre, centre * pixel_size / focal


@triton.jit
def _bin_masks(centre, s, tap_depth, BINS, BB: tl.constexpr):
    """[rows, BB]: is each row's tap depth in bin l, e_l <= depth < e_{l+1} with
    e_k = d + (k - B/2) * s (bins past B: never)."""
    l = tl.arange(0, BB)
    half = BINS * 0.5
    lower = centre[:, None] + (l - half)[None, :] * s[:, None]
    upper = centre[:, None] + (l + 1 - half)[None, :] * s[:, None]
    depth = tap_depth[:, None]
    return (lower <= depth) & (depth < upper) & (l < BINS)[None, :]


@triton.jit
def _per_bin(values, masks, ROWS: tl.constexpr, BB: tl.constexpr, COLS: tl.constexpr):
    """[ROWS, BB*COLS]: values [ROWS, COLS] times each bin's mask, bins side by side
    (column l*COLS + j), so one tl.dot reduces over bins and channels together. The
    product comes first: an infinite value in a closed bin gives NaN, as in the reference."""
    stacked = values[:, None, :] * masks.to(values.dtype)[:, :, None]
    return tl.reshape(stacked, (ROWS, BB * COLS))


@triton.jit
def _forward_kernel(x_ptr, d_ptr, w_ptr, par_ptr, out_ptr,
                    C, H, W, O, OH, OW, M, BINS,
                    SH, SW, PH, PW, DH, DW, KH, KW,
                    ACC: tl.constexpr, BM: tl.constexpr, BO: tl.constexpr, BC: tl.constexpr,
                    BB: tl.constexpr, IDX: tl.constexpr):
    m = (tl.program_id(0) * BM + tl.arange(0, BM)).to(IDX)
    o = tl.program_id(1) * BO + tl.arange(0, BO)
    m_ok = m < M
    o_ok = o < O
    per_image = OH * OW
    n = m // per_image
    r = m % per_image
    oy = r // OW
    ox = r % OW
    centre, s = _grid_size(d_ptr, par_ptr, n, oy, ox, m_ok, H, W, SH, SW, PH, PW, DH, DW, KH, KW)
    q = tl.arange(0, BB * BC)  # rows of the weight tile: (bin, channel)
    q_bin = q // BC
    K = KH * KW
    acc = tl.full((BM, BO), 0.0, ACC)
    for k in range(K):
        row = oy * SH - PH + (k // KW) * DH
        col = ox * SW - PW + (k % KW) * DW
        inside = m_ok & (row >= 0) & (row < H) & (col >= 0) & (col < W)
        masks = _bin_masks(centre, s, _depth(d_ptr, n, row, col, H, W, m_ok), BINS, BB)
        for c0 in range(0, C, BC):
            c = c0 + tl.arange(0, BC)
            x = tl.load(x_ptr + ((n[:, None] * C + c[None, :]) * H + row[:, None]) * W + col[:, None],
                        mask=inside[:, None] & (c < C)[None, :], other=0.0)
            q_c = c0 + q % BC
            wt = tl.load(w_ptr + ((q_bin[:, None] * O + o[None, :]) * C + q_c[:, None]) * K + k,
                         mask=((q_bin < BINS) & (q_c < C))[:, None] & o_ok[None, :], other=0.0)
            acc = tl.dot(_per_bin(x, masks, BM, BB, BC), wt, acc, input_precision=DOT_PRECISION,
                         out_dtype=ACC)
    out = out_ptr + (n[:, None] * O + o[None, :]) * per_image + r[:, None]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=m_ok[:, None] & o_ok[None, :])


@triton.jit
def _input_grad_kernel(g_ptr, d_ptr, w_ptr, par_ptr, gx_ptr,
                       C, H, W, O, OH, OW, TOTAL, BINS,
                       SH, SW, PH, PW, DH, DW, KH, KW,
                       ACC: tl.constexpr, BM: tl.constexpr, BC: tl.constexpr, BO: tl.constexpr,
                       BB: tl.constexpr, IDX: tl.constexpr):
    e = (tl.program_id(0) * BM + tl.arange(0, BM)).to(IDX)  # input cells (n, h, w)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    e_ok = e < TOTAL
    c_ok = c < C
    w = e % W
    h = (e // W) % H
    n = e // (H * W)
    cell_depth = _depth(d_ptr, n, h, w, H, W, e_ok)
    q = tl.arange(0, BB * BO)  # rows of the weight tile: (bin, out channel)
    q_bin = q // BO
    K = KH * KW
    acc = tl.full((BM, BC), 0.0, ACC)
    for k in range(K):
        ty = h + PH - (k // KW) * DH
        tx = w + PW - (k % KW) * DW
        oy = ty // SH
        ox = tx // SW
        read = (e_ok & (ty >= 0) & (tx >= 0) & (ty == oy * SH) & (tx == ox * SW) & (oy < OH)
                & (ox < OW))
        centre, s = _grid_size(d_ptr, par_ptr, n, oy, ox, read, H, W, SH, SW, PH, PW, DH, DW,
                               KH, KW)
        masks = _bin_masks(centre, s, cell_depth, BINS, BB)
        tap = tl.full((BM, BC), 0.0, ACC)
        for o0 in range(0, O, BO):
            o = o0 + tl.arange(0, BO)
            g = tl.load(g_ptr + ((n[:, None] * O + o[None, :]) * OH + oy[:, None]) * OW + ox[:, None],
                        mask=read[:, None] & (o < O)[None, :], other=0.0)
            q_o = o0 + q % BO
            wt = tl.load(w_ptr + ((q_bin[:, None] * O + q_o[:, None]) * C + c[None, :]) * K + k,
                         mask=((q_bin < BINS) & (q_o < O))[:, None] & c_ok[None, :], other=0.0)
            tap = tl.dot(_per_bin(g, masks, BM, BB, BO), wt, tap, input_precision=DOT_PRECISION,
                         out_dtype=ACC)
        # A cell no output reads through tap k gets nothing from it: its zero rows would
        # still meet an infinite or NaN weight (0 * inf = NaN) in the product.
        acc += tl.where(read[:, None], tap, 0.0)
    gx = gx_ptr + ((n[:, None] * C + c[None, :]) * H + h[:, None]) * W + w[:, None]
    tl.store(gx, acc, mask=e_ok[:, None] & c_ok[None, :])


@triton.jit
def _weight_grad_kernel(x_ptr, d_ptr, g_ptr, par_ptr, part_ptr,
                        C, H, W, O, OH, OW, M, BINS, PER_SPLIT,
                        SH, SW, PH, PW, DH, DW, KH, KW,
                        ACC: tl.constexpr, BP: tl.constexpr, BO: tl.constexpr,
                        BC: tl.constexpr, BB: tl.constexpr, IDX: tl.constexpr):
    c_tiles = (C + BC - 1) // BC
    o = (tl.program_id(0) // c_tiles) * BO + tl.arange(0, BO)
    c0 = (tl.program_id(0) % c_tiles) * BC
    c = c0 + tl.arange(0, BC)
    split = tl.program_id(1)
    o_ok = o < O
    q = tl.arange(0, BB * BC)  # columns of the result: (bin, in channel)
    q_bin = q // BC
    q_c = c0 + q % BC
    per_image = OH * OW
    K = KH * KW
    start = split * PER_SPLIT
    stop = tl.minimum(start + PER_SPLIT, M)
    for k in range(K):
        acc = tl.full((BO, BB * BC), 0.0, ACC)
        for p0 in range(start, stop, BP):
            m = (p0 + tl.arange(0, BP)).to(IDX)
            m_ok = m < stop
            n = m // per_image
            r = m % per_image
            oy = r // OW
            ox = r % OW
            centre, s = _grid_size(d_ptr, par_ptr, n, oy, ox, m_ok, H, W, SH, SW, PH, PW, DH, DW,
                                   KH, KW)
            row = oy * SH - PH + (k // KW) * DH
            col = ox * SW - PW + (k % KW) * DW
            inside = m_ok & (row >= 0) & (row < H) & (col >= 0) & (col < W)
            masks = _bin_masks(centre, s, _depth(d_ptr, n, row, col, H, W, m_ok), BINS, BB)
            x = tl.load(x_ptr + ((n[:, None] * C + c[None, :]) * H + row[:, None]) * W + col[:, None],
                        mask=inside[:, None] & (c < C)[None, :], other=0.0)
            gt = tl.load(g_ptr + (n[None, :] * O + o[:, None]) * per_image + r[None, :],
                         mask=o_ok[:, None] & m_ok[None, :], other=0.0)
            acc = tl.dot(gt, _per_bin(x, masks, BP, BB, BC), acc, input_precision=DOT_PRECISION,
                         out_dtype=ACC)
        part = part_ptr + (((split * BINS + q_bin[None, :]) * O + o[:, None]) * C + q_c[None, :]) * K + k
        tl.store(part, acc, mask=o_ok[:, None] & ((q_bin < BINS) & (q_c < C))[None, :])


def _dot_blocks(m: int, o: int, c: int) -> tuple[int, int, int]:
    return block(m, *POSITIONS), block(o, *OUT_CHANNELS), block(c, *IN_CHANNELS)


@bfloat16_in_float32
def forward(input, depth, weight, geometry, focal: float, pixel_size: float) -> torch.Tensor:
    """2.5D convolution without bias.

    Args:
        input: ``[N, C, H, W]``.
        depth: ``[N, 1, H, W]`` (not differentiable).
        weight: ``[B, O, C, kh, kw]``, kh and kw odd.
        geometry: ``reference.common.Geometry`` of the call (``conv2_5d_signature``).
        focal, pixel_size: positive floats.

    Returns:
        ``[N, O, oh, ow]`` in the input's dtype.
    """
    dtype = check_tensors(input, depth, weight)
    x, d, w = input.contiguous(), depth.contiguous(), weight.contiguous()
    n, c, h, wd = x.shape
    bins, o = w.shape[:2]
    oh, ow = geometry.out_size
    out = torch.empty((n, o, oh, ow), dtype=dtype, device=x.device)
    m = n * oh * ow
    if out.numel() == 0:
        return out
    bm, bo, bc = _dot_blocks(m, o, c)
    launch(_forward_kernel, (triton.cdiv(m, bm), triton.cdiv(o, bo)),
           x, d, w, _scalars(focal, pixel_size, x.device), out,
           c, h, wd, o, oh, ow, m, bins, *window_args(geometry),
           ACC=acc_type(dtype), BM=bm, BO=bo, BC=bc, BB=triton.next_power_of_2(bins),
           IDX=index_type(x, w, out))
    return out


@bfloat16_in_float32
def backward(grad_out, input, depth, weight, geometry, focal: float,
             pixel_size: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of :func:`forward`: ``(grad_input [N,C,H,W], grad_weight [B,O,C,kh,kw])``.

    Depth gets no gradient (the masks are piecewise constant). Both results are
    deterministic: the input gradient is gathered (each cell reads the outputs whose
    windows cover it), the weight gradient is reduced per program and summed by torch.
    """
    dtype = check_tensors(grad_out, input, depth, weight)
    g, x, d, w = (t.contiguous() for t in (grad_out, input, depth, weight))
    n, c, h, wd = x.shape
    bins, o, _, kh, kw = w.shape
    oh, ow = geometry.out_size
    work = acc_dtype(dtype)
    m = n * oh * ow
    if m == 0:
        return torch.zeros_like(x), torch.zeros_like(w)
    scalars = _scalars(focal, pixel_size, x.device)
    geo = window_args(geometry)
    bm, bo, bc = _dot_blocks(m, o, c)
    bb = triton.next_power_of_2(bins)

    grad_x = torch.empty(x.shape, dtype=work, device=x.device)
    cells = n * h * wd
    bi = block(cells, *POSITIONS)
    launch(_input_grad_kernel, (triton.cdiv(cells, bi), triton.cdiv(c, bc)),
           g, d, w, scalars, grad_x, c, h, wd, o, oh, ow, cells, bins, *geo,
           ACC=acc_type(dtype), BM=bi, BC=bc, BO=bo, BB=bb, IDX=index_type(g, w, grad_x))

    tiles = triton.cdiv(o, bo) * triton.cdiv(c, bc)
    splits = parallel_splits(tiles, triton.cdiv(m, bm), min_chunks=8)
    per_split = triton.cdiv(triton.cdiv(m, splits), bm) * bm
    splits = triton.cdiv(m, per_split)
    partial = torch.empty((splits, *w.shape), dtype=work, device=x.device)
    launch(_weight_grad_kernel, (tiles, splits),
           x, d, g, scalars, partial, c, h, wd, o, oh, ow, m, bins, per_split, *geo,
           ACC=acc_type(dtype), BP=bm, BO=bo, BC=bc, BB=bb, IDX=index_type(x, g, partial))
    return grad_x.to(dtype), partial.sum(dim=0).to(dtype)
