# Triton kernels of depthaware_conv2d (implicit GEMM with tl.dot) and
# depthaware_avg_pool2d (elementwise over positions x channels).
#
# Notation: M = N*oh*ow output positions, K = kh*kw taps, C in channels, O out channels.
# Every window weighs tap t by F = exp(-alpha |d[centre] - d[tap]|). No F tensor exists:
# each program loads the depths it needs and forms F in registers (float32, float64 for
# float64 data): the centre of output row y / column x comes from two small int32
# tables [oh] / [ow] (torch_impl.geometry.conv_centres / pool_centres: the centre rule
# lives in one place), a tap or centre outside the image forms no F (F = 1 in the
# convolution, 0 in pooling), alpha = 0 gives F = 1 whatever the depth. The product x * F
# is formed before the weight multiplies it, as in the reference, so NaN and infinities
# land where the reference puts them.
#
# conv forward, grid (cdiv(M, BM), cdiv(O, BO)): a program owns BM positions x BO out
#   channels; per tap it loads the BM tap depths (the centre depths once), per block of BC
#   channels the [BM, BC] input tile, scales its rows by F and accumulates
#   tl.dot(x * F [BM, BC], W [BC, BO]). Per output: 2*C*K FLOPs in the MMA + K exps per
#   position (amortised over BO); HBM: input, depth, weights and output once (the K
#   re-reads of an input tile hit L1/L2): compute bound, the FLOPs of conv2d.
# conv input gradient (gather, deterministic), grid (cdiv(N*H*W, BM), cdiv(C, BC)): a
#   program owns BM input cells x BC channels; per tap it finds the output reading each
#   cell (stride divisibility), that output's centre depth and F, and accumulates
#   F * (grad_out [BM, BO] @ W [BO, BC]) over blocks of out channels. 2*O*K FLOPs per
#   input-gradient element.
# conv weight gradient, grid (cdiv(O, BO) * cdiv(C, BC), S): a program owns a BO x BC
#   weight tile and 1/S of the positions; per tap it accumulates
#   tl.dot(grad_out^T [BO, BP], x * F [BP, BC]) and writes a partial [S, O, C, K] that
#   torch sums (deterministic; S = 1 in the interpreter). 2*M*K FLOPs per weight element.
# conv depth push, grid (cdiv(M, BM),): a program owns BM positions; per tap and block of
#   BC channels it forms grad_cols = grad_out [BM, O] @ W_tap [O, BC] (blocks of BO) and
#   reduces dL/dF = sum_c grad_cols * x in registers, then writes
#   push = dL/dF * F * alpha * sign(d[centre] - d[tap]) (sign(0) = 0) to [N, K, oh, ow].
#   2*O*C*K FLOPs per position (a fourth GEMM's worth: dL/dF needs the unweighted
#   grad_cols); 4*K bytes per position written. torch then adds each tap's push at the
#   cell it reads and minus the window's total at its centre (torch_impl.geometry:
#   add_to_taps, add_to_centres; index_add_, deterministic in torch's deterministic mode).
# pool kernels: K is the taps they visit, the block of rows and columns of the window
#   that read the image in some window (Geometry.input_tap_range, on the host; the other
#   taps read padding everywhere and only count in the divisor): kh*kw for an ordinary
#   window, a few times the image's size for one far larger than the image.
# pool forward, grid (cdiv(M, BM), cdiv(C, BC)): a program owns BM positions x BC
#   channels; per tap it forms F once per position and accumulates F * x and the divisor
#   (kh*kw - #taps in the image + sum F, or sum F). K loads + 2K FLOPs + K/BC exps per
#   output: memory bound.
# pool depth push, grid (cdiv(M, BM),): a program owns BM positions and all channels (in
#   blocks of BC): the divisor, then per channel block the output and, per tap,
#   dL/dF += sum_c g/div * (x - out), kept as a [BM, KB] tile (KB = K rounded up to a
#   power of two); writes the divisor [N, oh, ow] and push [N, K, oh, ow]. 2K loads per
#   input element read.
# pool input gradient (gather), grid (cdiv(N*H*W, BM), cdiv(C, BC)): a program owns BM
#   input cells x BC channels; per tap the output reading the cell adds g / div * F.
"""Triton kernels of ``depthaware_conv2d`` and ``depthaware_avg_pool2d`` (forward and
backward). See the comment above for the tiling; the functions below are the backend
contract, with the names of :mod:`torch_impl.native.depthaware`."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import geometry as geo
from .common import (
    ADD,
    DOT_PRECISION,
    acc_dtype,
    acc_type,
    bfloat16_in_float32,
    block,
    check_tensors,
    divide,
    index_type,
    launch,
    parallel_splits,
    window_args,
)

#: Block-size ranges ``(low, high)``, interpreted then compiled (common.block); tl.dot
#: needs >= 16 on a GPU. Positions (output positions, or input cells in the input
#: gradients), out channels, in channels per tile.
POSITIONS = ((16, 128), (16, 64))
OUT_CHANNELS = ((16, 32), (16, 64))
IN_CHANNELS = ((16, 32), (16, 32))


@triton.jit
def _similarity(d_ptr, crow_ptr, ccol_ptr, alpha, n, oy, ox, row, col, ok, H, W,
                FILL: tl.constexpr, ACC: tl.constexpr):
    """``(F, direction, active)`` of the tap at input (row, col) of the windows at output
    (oy, ox) of sample n: ``F = exp(-alpha |d[centre] - d[tap]|)`` where the tap and the
    centre are in the image (else FILL), ``direction = alpha * sign(d[centre] - d[tap])``
    (sign(0) = 0), so that dF/d d[tap] = F * direction, and ``active``: F is formed and
    alpha > 0 (the depth gets this tap's gradient)."""
    crow = tl.load(crow_ptr + oy, mask=ok, other=-1)
    ccol = tl.load(ccol_ptr + ox, mask=ok, other=-1)
    centre_in = ok & (crow >= 0) & (crow < H) & (ccol >= 0) & (ccol < W)
    formed = centre_in & (row >= 0) & (row < H) & (col >= 0) & (col < W)
    centre = tl.load(d_ptr + (n * H + crow) * W + ccol, mask=centre_in, other=0.0).to(ACC)
    tap = tl.load(d_ptr + (n * H + row) * W + col, mask=formed, other=0.0).to(ACC)
    diff = centre - tap
    a = alpha.to(ACC)
    f = tl.where(a == 0, 1.0, tl.exp(-a * tl.abs(diff)))
    sign = tl.where(diff > 0, 1.0, tl.where(diff < 0, -1.0, 0.0))
    active = tl.where(a != 0, formed, False)  # (& with a scalar comparison fails in the interpreter)
    return tl.where(formed, f, FILL).to(ACC), (a * sign).to(ACC), active


@triton.jit
def _positions(m, OH, OW):
    """(sample, output row, output col) of flat output positions."""
    r = m % (OH * OW)
    return m // (OH * OW), r // OW, r % OW


@triton.jit
def _reader(h, w, i, j, OH, OW, SH, SW, PH, PW, DH, DW):
    """The output (row, col) whose window reads input cell (h, w) at tap (i, j), and
    whether there is one."""
    ty = h + PH - i * DH
    tx = w + PW - j * DW
    oy = ty // SH
    ox = tx // SW
    read = (ty >= 0) & (tx >= 0) & (ty == oy * SH) & (tx == ox * SW) & (oy < OH) & (ox < OW)
    return oy, ox, read


# ----------------------------------------------------------------------------- conv kernels


@triton.jit
def _conv_forward_kernel(x_ptr, d_ptr, w_ptr, crow_ptr, ccol_ptr, alpha_ptr, out_ptr,
                         C, H, W, O, OH, OW, M,
                         SH, SW, PH, PW, DH, DW, KH, KW,
                         ACC: tl.constexpr, BM: tl.constexpr, BO: tl.constexpr,
                         BC: tl.constexpr, IDX: tl.constexpr):
    m = (tl.program_id(0) * BM + tl.arange(0, BM)).to(IDX)
    o = tl.program_id(1) * BO + tl.arange(0, BO)
    m_ok = m < M
    o_ok = o < O
    n, oy, ox = _positions(m, OH, OW)
    alpha = tl.load(alpha_ptr)
    K = KH * KW
    acc = tl.full((BM, BO), 0.0, ACC)
    for k in range(K):
        row = oy * SH - PH + (k // KW) * DH
        col = ox * SW - PW + (k % KW) * DW
        inside = m_ok & (row >= 0) & (row < H) & (col >= 0) & (col < W)
        f, _, _ = _similarity(d_ptr, crow_ptr, ccol_ptr, alpha, n, oy, ox, row, col, m_ok, H, W,
                           1.0, ACC)
        for c0 in range(0, C, BC):
            c = c0 + tl.arange(0, BC)
            x = tl.load(x_ptr + ((n[:, None] * C + c[None, :]) * H + row[:, None]) * W
                        + col[:, None], mask=inside[:, None] & (c < C)[None, :], other=0.0)
            xf = (x.to(ACC) * f[:, None]).to(x.dtype)
            wt = tl.load(w_ptr + (o[None, :] * C + c[:, None]) * K + k,
                         mask=(c < C)[:, None] & o_ok[None, :], other=0.0)
            acc = tl.dot(xf, wt, acc, input_precision=DOT_PRECISION, out_dtype=ACC)
    out = out_ptr + (n[:, None] * O + o[None, :]) * (OH * OW) + (oy * OW + ox)[:, None]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=m_ok[:, None] & o_ok[None, :])


@triton.jit
def _conv_input_grad_kernel(g_ptr, d_ptr, w_ptr, crow_ptr, ccol_ptr, alpha_ptr, gx_ptr,
                            C, H, W, O, OH, OW, TOTAL,
                            SH, SW, PH, PW, DH, DW, KH, KW,
                            ACC: tl.constexpr, BM: tl.constexpr, BC: tl.constexpr,
                            BO: tl.constexpr, IDX: tl.constexpr):
    e = (tl.program_id(0) * BM + tl.arange(0, BM)).to(IDX)  # input cells (n, h, w)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    e_ok = e < TOTAL
    c_ok = c < C
    w = e % W
    h = (e // W) % H
    n = e // (H * W)
    alpha = tl.load(alpha_ptr)
    K = KH * KW
    acc = tl.full((BM, BC), 0.0, ACC)
    for k in range(K):
        oy, ox, read = _reader(h, w, k // KW, k % KW, OH, OW, SH, SW, PH, PW, DH, DW)
        read = e_ok & read
        f, _, _ = _similarity(d_ptr, crow_ptr, ccol_ptr, alpha, n, oy, ox, h, w, read, H, W,
                           1.0, ACC)
        part = tl.full((BM, BC), 0.0, ACC)
        for o0 in range(0, O, BO):
            o = o0 + tl.arange(0, BO)
            g = tl.load(g_ptr + ((n[:, None] * O + o[None, :]) * OH + oy[:, None]) * OW
                        + ox[:, None], mask=read[:, None] & (o < O)[None, :], other=0.0)
            wt = tl.load(w_ptr + (o[:, None] * C + c[None, :]) * K + k,
                         mask=(o < O)[:, None] & c_ok[None, :], other=0.0)
            part = tl.dot(g, wt, part, input_precision=DOT_PRECISION, out_dtype=ACC)
        acc += tl.where(read[:, None], part * f[:, None], 0.0)
    gx = gx_ptr + ((n[:, None] * C + c[None, :]) * H + h[:, None]) * W + w[:, None]
    tl.store(gx, acc, mask=e_ok[:, None] & c_ok[None, :])


@triton.jit
def _conv_weight_grad_kernel(x_ptr, d_ptr, g_ptr, crow_ptr, ccol_ptr, alpha_ptr, part_ptr,
                             C, H, W, O, OH, OW, M, PER_SPLIT,
                             SH, SW, PH, PW, DH, DW, KH, KW,
                             ACC: tl.constexpr, BP: tl.constexpr, BO: tl.constexpr,
                             BC: tl.constexpr, IDX: tl.constexpr):
    c_tiles = (C + BC - 1) // BC
    o = (tl.program_id(0) // c_tiles) * BO + tl.arange(0, BO)
    c = (tl.program_id(0) % c_tiles) * BC + tl.arange(0, BC)
    split = tl.program_id(1)
    o_ok = o < O
    c_ok = c < C
    alpha = tl.load(alpha_ptr)
    K = KH * KW
    start = split * PER_SPLIT
    stop = tl.minimum(start + PER_SPLIT, M)
    for k in range(K):
        acc = tl.full((BO, BC), 0.0, ACC)
        for p0 in range(start, stop, BP):
            m = (p0 + tl.arange(0, BP)).to(IDX)
            m_ok = m < stop
            n, oy, ox = _positions(m, OH, OW)
            row = oy * SH - PH + (k // KW) * DH
            col = ox * SW - PW + (k % KW) * DW
            inside = m_ok & (row >= 0) & (row < H) & (col >= 0) & (col < W)
            f, _, _ = _similarity(d_ptr, crow_ptr, ccol_ptr, alpha, n, oy, ox, row, col, m_ok,
                               H, W, 1.0, ACC)
            x = tl.load(x_ptr + ((n[:, None] * C + c[None, :]) * H + row[:, None]) * W
                        + col[:, None], mask=inside[:, None] & c_ok[None, :], other=0.0)
            xf = (x.to(ACC) * f[:, None]).to(x.dtype)
            gt = tl.load(g_ptr + (n[None, :] * O + o[:, None]) * (OH * OW) + (oy * OW + ox)[None, :],
                         mask=o_ok[:, None] & m_ok[None, :], other=0.0)
            acc = tl.dot(gt, xf, acc, input_precision=DOT_PRECISION, out_dtype=ACC)
        part = part_ptr + ((split * O + o[:, None]) * C + c[None, :]) * K + k
        tl.store(part, acc, mask=o_ok[:, None] & c_ok[None, :])


@triton.jit
def _conv_depth_kernel(x_ptr, d_ptr, g_ptr, w_ptr, crow_ptr, ccol_ptr, alpha_ptr, push_ptr,
                       C, H, W, O, OH, OW, M,
                       SH, SW, PH, PW, DH, DW, KH, KW,
                       ACC: tl.constexpr, BM: tl.constexpr, BO: tl.constexpr,
                       BC: tl.constexpr, IDX: tl.constexpr):
    m = (tl.program_id(0) * BM + tl.arange(0, BM)).to(IDX)
    m_ok = m < M
    n, oy, ox = _positions(m, OH, OW)
    alpha = tl.load(alpha_ptr)
    K = KH * KW
    for k in range(K):
        row = oy * SH - PH + (k // KW) * DH
        col = ox * SW - PW + (k % KW) * DW
        inside = m_ok & (row >= 0) & (row < H) & (col >= 0) & (col < W)
        f, direction, active = _similarity(d_ptr, crow_ptr, ccol_ptr, alpha, n, oy, ox, row,
                                           col, m_ok, H, W, 1.0, ACC)
        grad_f = tl.full((BM,), 0.0, ACC)
        for c0 in range(0, C, BC):
            c = c0 + tl.arange(0, BC)
            grad_cols = tl.full((BM, BC), 0.0, ACC)
            for o0 in range(0, O, BO):
                o = o0 + tl.arange(0, BO)
                g = tl.load(g_ptr + (n[:, None] * O + o[None, :]) * (OH * OW)
                            + (oy * OW + ox)[:, None],
                            mask=m_ok[:, None] & (o < O)[None, :], other=0.0)
                wt = tl.load(w_ptr + (o[:, None] * C + c[None, :]) * K + k,
                             mask=(o < O)[:, None] & (c < C)[None, :], other=0.0)
                grad_cols = tl.dot(g, wt, grad_cols, input_precision=DOT_PRECISION,
                                   out_dtype=ACC)
            x = tl.load(x_ptr + ((n[:, None] * C + c[None, :]) * H + row[:, None]) * W
                        + col[:, None], mask=inside[:, None] & (c < C)[None, :], other=0.0)
            grad_f += tl.reduce(grad_cols * x.to(ACC), 1, ADD)
        push = tl.where(active, grad_f * f * direction, 0.0)
        tl.store(push_ptr + (n * K + k) * (OH * OW) + oy * OW + ox, push, mask=m_ok)


# ----------------------------------------------------------------------------- pool kernels


@triton.jit
def _pool_window(x_ptr, d_ptr, crow_ptr, ccol_ptr, alpha, n, oy, ox, c, m_ok, C, H, W,
                 SH, SW, PH, PW, I0, J0, RH, RW, PADDED, INCLUDE_PAD, ACC: tl.constexpr,
                 BM: tl.constexpr, BC: tl.constexpr):
    """``(out [BM, BC], divisor [BM])`` of the windows at (oy, ox) of sample n, channels c.
    The taps visited are rows I0.. and columns J0.. of the window, RH x RW of them; the
    window's PADDED other taps read padding in every window."""
    num = tl.full((BM, BC), 0.0, ACC)
    weight = tl.full((BM,), 0.0, ACC)
    outside = tl.full((BM,), 0.0, ACC) + PADDED
    for k in range(RH * RW):
        row = oy * SH - PH + I0 + k // RW
        col = ox * SW - PW + J0 + k % RW
        inside = m_ok & (row >= 0) & (row < H) & (col >= 0) & (col < W)
        f, _, _ = _similarity(d_ptr, crow_ptr, ccol_ptr, alpha, n, oy, ox, row, col, m_ok, H, W,
                           0.0, ACC)
        x = tl.load(x_ptr + ((n[:, None] * C + c[None, :]) * H + row[:, None]) * W
                    + col[:, None], mask=inside[:, None] & (c < C)[None, :], other=0.0)
        num += x.to(ACC) * f[:, None]
        weight += f
        outside += tl.where(inside, 0.0, 1.0)
    if INCLUDE_PAD != 0:  # kh*kw - sum over the image's taps of (1 - F)
        divisor = outside + weight
    else:
        divisor = weight
    return divide(num, divisor[:, None]), divisor


@triton.jit
def _pool_forward_kernel(x_ptr, d_ptr, crow_ptr, ccol_ptr, alpha_ptr, out_ptr,
                         C, H, W, OH, OW, M, INCLUDE_PAD,
                         SH, SW, PH, PW, I0, J0, RH, RW, PADDED,
                         ACC: tl.constexpr, BM: tl.constexpr, BC: tl.constexpr,
                         IDX: tl.constexpr):
    m = (tl.program_id(0) * BM + tl.arange(0, BM)).to(IDX)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    m_ok = m < M
    n, oy, ox = _positions(m, OH, OW)
    alpha = tl.load(alpha_ptr)
    out, _ = _pool_window(x_ptr, d_ptr, crow_ptr, ccol_ptr, alpha, n, oy, ox, c, m_ok, C, H, W,
                          SH, SW, PH, PW, I0, J0, RH, RW, PADDED, INCLUDE_PAD, ACC, BM, BC)
    dst = out_ptr + (n[:, None] * C + c[None, :]) * (OH * OW) + (oy * OW + ox)[:, None]
    tl.store(dst, out.to(out_ptr.dtype.element_ty), mask=m_ok[:, None] & (c < C)[None, :])


@triton.jit
def _pool_depth_kernel(x_ptr, d_ptr, g_ptr, crow_ptr, ccol_ptr, alpha_ptr, div_ptr, push_ptr,
                       C, H, W, OH, OW, M, INCLUDE_PAD,
                       SH, SW, PH, PW, I0, J0, RH, RW, PADDED,
                       ACC: tl.constexpr, BM: tl.constexpr, BC: tl.constexpr,
                       KB: tl.constexpr, IDX: tl.constexpr):
    m = (tl.program_id(0) * BM + tl.arange(0, BM)).to(IDX)
    m_ok = m < M
    n, oy, ox = _positions(m, OH, OW)
    alpha = tl.load(alpha_ptr)
    taps = tl.arange(0, KB)
    grad_f = tl.full((BM, KB), 0.0, ACC)  # dL/dF per tap
    divisor = tl.full((BM,), 1.0, ACC)
    for c0 in range(0, C, BC):
        c = c0 + tl.arange(0, BC)
        out, divisor = _pool_window(x_ptr, d_ptr, crow_ptr, ccol_ptr, alpha, n, oy, ox, c, m_ok,
                                    C, H, W, SH, SW, PH, PW, I0, J0, RH, RW, PADDED,
                                    INCLUDE_PAD, ACC, BM, BC)
        g = tl.load(g_ptr + (n[:, None] * C + c[None, :]) * (OH * OW) + (oy * OW + ox)[:, None],
                    mask=m_ok[:, None] & (c < C)[None, :], other=0.0).to(ACC)
        share = divide(g, divisor[:, None])
        c_ok = (c < C)[None, :]
        for k in range(RH * RW):
            row = oy * SH - PH + I0 + k // RW
            col = ox * SW - PW + J0 + k % RW
            inside = m_ok & (row >= 0) & (row < H) & (col >= 0) & (col < W)
            x = tl.load(x_ptr + ((n[:, None] * C + c[None, :]) * H + row[:, None]) * W
                        + col[:, None], mask=inside[:, None] & (c < C)[None, :], other=0.0)
            part = tl.reduce(tl.where(c_ok, share * (x.to(ACC) - out), 0.0), 1, ADD)
            grad_f += tl.where(taps[None, :] == k, part[:, None], 0.0)
    tl.store(div_ptr + m, divisor, mask=m_ok)
    for k in range(RH * RW):
        row = oy * SH - PH + I0 + k // RW
        col = ox * SW - PW + J0 + k % RW
        f, direction, active = _similarity(d_ptr, crow_ptr, ccol_ptr, alpha, n, oy, ox, row,
                                           col, m_ok, H, W, 0.0, ACC)
        tap_grad = tl.reduce(tl.where(taps[None, :] == k, grad_f, 0.0), 1, ADD)
        push = tl.where(active, tap_grad * f * direction, 0.0)
        tl.store(push_ptr + (n * (RH * RW) + k) * (OH * OW) + oy * OW + ox, push, mask=m_ok)


@triton.jit
def _pool_input_grad_kernel(g_ptr, d_ptr, crow_ptr, ccol_ptr, alpha_ptr, div_ptr, gx_ptr,
                            C, H, W, OH, OW, TOTAL,
                            SH, SW, PH, PW, I0, J0, RH, RW, PADDED,
                            ACC: tl.constexpr, BM: tl.constexpr, BC: tl.constexpr,
                            IDX: tl.constexpr):
    e = (tl.program_id(0) * BM + tl.arange(0, BM)).to(IDX)  # input cells (n, h, w)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    e_ok = e < TOTAL
    c_ok = c < C
    w = e % W
    h = (e // W) % H
    n = e // (H * W)
    alpha = tl.load(alpha_ptr)
    acc = tl.full((BM, BC), 0.0, ACC)
    for k in range(RH * RW):
        oy, ox, read = _reader(h, w, I0 + k // RW, J0 + k % RW, OH, OW, SH, SW, PH, PW, 1, 1)
        read = e_ok & read
        f, _, _ = _similarity(d_ptr, crow_ptr, ccol_ptr, alpha, n, oy, ox, h, w, read, H, W,
                           0.0, ACC)
        position = (n * OH + oy) * OW + ox
        divisor = tl.load(div_ptr + position, mask=read, other=1.0)
        g = tl.load(g_ptr + (n[:, None] * C + c[None, :]) * (OH * OW) + (oy * OW + ox)[:, None],
                    mask=read[:, None] & c_ok[None, :], other=0.0).to(ACC)
        acc += tl.where(read[:, None], divide(g, divisor[:, None]) * f[:, None], 0.0)
    gx = gx_ptr + ((n[:, None] * C + c[None, :]) * H + h[:, None]) * W + w[:, None]
    tl.store(gx, acc, mask=e_ok[:, None] & c_ok[None, :])


# ----------------------------------------------------------------------------- contract


def _tables(geometry, centres, alpha: float, device):
    """The centre tables ``[oh]``, ``[ow]`` (int32) and ``alpha`` as a float64 scalar
    tensor (a float kernel argument would be rounded to float32)."""
    rows, cols = centres(geometry, device)
    return (rows.to(torch.int32), cols.to(torch.int32),
            torch.tensor([alpha], dtype=torch.float64, device=device))


def _depth_gradient(push, depth, geometry, centres, first=(0, 0), taps=None) -> torch.Tensor:
    """``[N, 1, H, W]`` from ``push [N, K, oh, ow]``: each tap's push at the cell it reads,
    minus each window's total at its centre. ``first``, ``taps``: the block of the
    window's taps ``push`` holds (default: the whole kernel)."""
    n = push.shape[0]
    grad_pad = torch.zeros((n, *geo.padded_size(geometry)), dtype=push.dtype, device=push.device)
    geo.add_to_taps(grad_pad, push.view(n, *(taps or geometry.kernel), *geometry.out_size),
                    geometry, first=first)
    grad = geo.unpad(grad_pad, geometry).contiguous()
    geo.add_to_centres(grad, -push.sum(1), geometry, centres(geometry, push.device))
    return grad[:, None].to(depth.dtype)


def _dot_blocks(m: int, o: int, c: int) -> tuple[int, int, int]:
    return block(m, *POSITIONS), block(o, *OUT_CHANNELS), block(c, *IN_CHANNELS)


@bfloat16_in_float32
def conv_forward(input, depth, weight, geometry, alpha: float) -> torch.Tensor:
    """Depth-aware convolution without bias.

    Args:
        input: ``[N, C, H, W]``.
        depth: ``[N, 1, H, W]``.
        weight: ``[O, C, kh, kw]``.
        geometry: ``reference.common.Geometry`` of the call.
        alpha: the similarity scale (>= 0).

    Returns:
        ``[N, O, oh, ow]`` in the input's dtype.
    """
    dtype = check_tensors(input, depth, weight)
    x, d, w = input.contiguous(), depth.contiguous(), weight.contiguous()
    n, c, h, wd = x.shape
    o = w.shape[0]
    oh, ow = geometry.out_size
    out = torch.empty((n, o, oh, ow), dtype=dtype, device=x.device)
    m = n * oh * ow
    if out.numel() == 0:
        return out
    bm, bo, bc = _dot_blocks(m, o, c)
    launch(_conv_forward_kernel, (triton.cdiv(m, bm), triton.cdiv(o, bo)),
           x, d, w, *_tables(geometry, geo.conv_centres, alpha, x.device), out,
           c, h, wd, o, oh, ow, m, *window_args(geometry),
           ACC=acc_type(dtype), BM=bm, BO=bo, BC=bc, IDX=index_type(x, w, out))
    return out


@bfloat16_in_float32
def conv_backward(grad_out, input, depth, weight, geometry, alpha: float):
    """Gradients of :func:`conv_forward`: ``(grad_input [N,C,H,W], grad_depth [N,1,H,W],
    grad_weight [O,C,kh,kw])``, all deterministic (gathered input gradient, weight
    partials summed by torch, depth pushes added by torch)."""
    dtype = check_tensors(grad_out, input, depth, weight)
    g, x, d, w = (t.contiguous() for t in (grad_out, input, depth, weight))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = geometry.out_size
    work = acc_dtype(dtype)
    m = n * oh * ow
    if m == 0:
        return torch.zeros_like(x), torch.zeros_like(d), torch.zeros_like(w)
    tables = _tables(geometry, geo.conv_centres, alpha, x.device)
    geo_args = window_args(geometry)
    bm, bo, bc = _dot_blocks(m, o, c)

    grad_x = torch.empty(x.shape, dtype=work, device=x.device)
    cells = n * h * wd
    bi = block(cells, *POSITIONS)
    launch(_conv_input_grad_kernel, (triton.cdiv(cells, bi), triton.cdiv(c, bc)),
           g, d, w, *tables, grad_x, c, h, wd, o, oh, ow, cells, *geo_args,
           ACC=acc_type(dtype), BM=bi, BC=bc, BO=bo, IDX=index_type(g, w, grad_x))

    tiles = triton.cdiv(o, bo) * triton.cdiv(c, bc)
    splits = parallel_splits(tiles, triton.cdiv(m, bm), min_chunks=8)
    per_split = triton.cdiv(triton.cdiv(m, splits), bm) * bm
    splits = triton.cdiv(m, per_split)
    partial = torch.empty((splits, *w.shape), dtype=work, device=x.device)
    launch(_conv_weight_grad_kernel, (tiles, splits),
           x, d, g, *tables, partial, c, h, wd, o, oh, ow, m, per_split, *geo_args,
           ACC=acc_type(dtype), BP=bm, BO=bo, BC=bc, IDX=index_type(x, g, partial))

    push = torch.empty((n, kh * kw, oh, ow), dtype=work, device=x.device)
    if alpha == 0:
        push.zero_()
    else:
        launch(_conv_depth_kernel, (triton.cdiv(m, bm),),
               x, d, g, w, *tables, push, c, h, wd, o, oh, ow, m, *geo_args,
               ACC=acc_type(dtype), BM=bm, BO=bo, BC=bc, IDX=index_type(x, g, w, push))
    return (grad_x.to(dtype), _depth_gradient(push, d, geometry, geo.conv_centres),
            partial.sum(dim=0).to(dtype))


def _pool_taps(geometry):
    """``((I0, J0), (RH, RW))``: the block of the window's taps that read the image in some
    window (Geometry.input_tap_range, closed form); the others read padding everywhere."""
    (i0, i1), (j0, j1) = geometry.input_tap_range(0), geometry.input_tap_range(1)
    return (i0, j0), (max(0, i1 - i0 + 1), max(0, j1 - j0 + 1))


def _pool_args(geometry):
    """Pooling's window scalars (no dilation): stride, padding before, the block of taps
    the kernels visit and how many other taps the window has."""
    (sh, sw), (ph, pw), (kh, kw) = geometry.stride, geometry.pad_before, geometry.kernel
    (i0, j0), (rh, rw) = _pool_taps(geometry)
    return sh, sw, ph, pw, i0, j0, rh, rw, kh * kw - rh * rw


@bfloat16_in_float32
def pool_forward(input, depth, geometry, alpha: float, count_include_pad: bool) -> torch.Tensor:
    """Depth-aware average pooling ``[N, C, oh, ow]`` (``geometry`` from
    ``depthaware_avg_pool2d_signature``: no dilation, no ceil_mode)."""
    dtype = check_tensors(input, depth)
    x, d = input.contiguous(), depth.contiguous()
    n, c, h, w = x.shape
    oh, ow = geometry.out_size
    out = torch.empty((n, c, oh, ow), dtype=dtype, device=x.device)
    m = n * oh * ow
    if out.numel() == 0:
        return out
    bm, bc = block(m, *POSITIONS), block(c, *IN_CHANNELS)
    launch(_pool_forward_kernel, (triton.cdiv(m, bm), triton.cdiv(c, bc)),
           x, d, *_tables(geometry, geo.pool_centres, alpha, x.device), out,
           c, h, w, oh, ow, m, int(count_include_pad), *_pool_args(geometry),
           ACC=acc_type(dtype), BM=bm, BC=bc, IDX=index_type(x, out))
    return out


@bfloat16_in_float32
def pool_backward(grad_out, input, depth, geometry, alpha: float, count_include_pad: bool):
    """Gradients of :func:`pool_forward`: ``(grad_input [N,C,H,W], grad_depth
    [N,1,H,W])``, deterministic."""
    dtype = check_tensors(grad_out, input, depth)
    g, x, d = (t.contiguous() for t in (grad_out, input, depth))
    n, c, h, w = x.shape
    first, (rh, rw) = _pool_taps(geometry)
    oh, ow = geometry.out_size
    work = acc_dtype(dtype)
    m = n * oh * ow
    if m == 0 or c == 0:
        return torch.zeros_like(x), torch.zeros_like(d)
    tables = _tables(geometry, geo.pool_centres, alpha, x.device)
    bm, bc = block(m, *POSITIONS), block(c, *IN_CHANNELS)
    divisor = torch.empty((n, oh, ow), dtype=work, device=x.device)
    push = torch.empty((n, rh * rw, oh, ow), dtype=work, device=x.device)
    launch(_pool_depth_kernel, (triton.cdiv(m, bm),),
           x, d, g, *tables, divisor, push, c, h, w, oh, ow, m, int(count_include_pad),
           *_pool_args(geometry), ACC=acc_type(dtype), BM=bm, BC=bc,
           KB=triton.next_power_of_2(max(rh * rw, 1)), IDX=index_type(x, g, push))

    grad_x = torch.empty(x.shape, dtype=work, device=x.device)
    cells = n * h * w
    bi = block(cells, *POSITIONS)
    launch(_pool_input_grad_kernel, (triton.cdiv(cells, bi), triton.cdiv(c, bc)),
           g, d, *tables, divisor, grad_x, c, h, w, oh, ow, cells, *_pool_args(geometry),
           ACC=acc_type(dtype), BM=bi, BC=bc, IDX=index_type(g, grad_x))
    return grad_x.to(dtype), _depth_gradient(push, d, geometry, geo.pool_centres, first,
                                             (rh, rw))
