# Triton kernels of tanprod_conv2d:
#     out[n,o,y,x] = prod_{c,i,j} tan(xpad[n, c, y*sh + i*dh, x*sw + j*dw] + w[o,c,i,j])
#
# Notation: M = N*oh*ow output positions, F = C*kh*kw factors per output, O out channels.
# The factors of a position are handled as a register tile [FB, BM] (FB factors x BM
# positions), FB = F rounded up to a power of two, at most 64;
# larger F is walked in chunks. There is no tl.dot: this is not a sum of products.
#
# forward, grid (cdiv(M, BM), cdiv(O, BO)): one program owns BM positions x BO output
#   channels. Per chunk it gathers the FB x BM inputs once (0 where a tap is padding);
#   per channel it adds the FB weights, takes tan, and reduces the product along the
#   factor axis in registers (the last row of a cumprod) into its row of the BO x BM
#   accumulator. Only the output is written. Per output: F tan (libdevice, ~20-40 FP32
#   instructions) + ~3F FLOPs; loads F/BO inputs (L1/L2 hits: kh*kw windows read each
#   input) + F weights; HBM ~ input + weights + 4 B of output once: compute bound (tan).
# backward, grid (cdiv(M, BM),): one program owns BM positions and all O channels. Per
#   chunk it gathers the inputs once; per channel o it forms the factors and their
#   leave-one-out products without division: before[f] = prod_{m<f} and
#   after[f] = prod_{m>f} are an inclusive cumprod and a reverse cumprod shifted by one
#   lane with tl.gather; other chunks' products are recomputed (cost x chunks when F > FB;
#   F is small in practice, since a product of many tangents under- or overflows).
#   grad_u = g * before * after * (1 + t^2) is summed over positions into a per-program
#   grad_weight partial [programs, O, F] (summed by torch: no atomics) and over o into
#   the chunk's column gradient [FB, BM], which goes to grad_input by tl.atomic_add
#   (default; not deterministic on a GPU) or, under
#   torch.are_deterministic_algorithms_enabled(), is stored in a column buffer [F, M] that
#   _col2im_kernel gathers in a fixed order (one program per BLOCK input cells, looping
#   over the kh*kw taps that read each cell).
#   Per output: ~O*F*(tan + 2 scans + 10 FLOPs) (x chunks); bytes: gathers as in the
#   forward, 4*F*O/BM B of partials, and on the deterministic path 8*F B of column buffer
#   (written and read back) per position.
"""Triton kernels of ``tanprod_conv2d`` (forward and backward). See the comment above
for the tiling; the functions below are the backend contract."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .common import (
    ADD,
    MUL,
    acc_dtype,
    acc_type,
    bfloat16_in_float32,
    block,
    check_tensors,
    index_type,
    launch,
    tan,
    window_args,
)

#: Block-size ranges ``(low, high)``, interpreted then compiled (common.block): positions
#: per program (forward, backward), out channels per forward program, factors per chunk,
#: input cells per col2im program.
FORWARD_POSITIONS = ((16, 256), (16, 64))
OUT_CHANNELS = ((1, 8), (1, 16))
BACKWARD_POSITIONS = ((16, 128), (16, 32))
FACTORS = ((2, 64), (2, 64))
CELLS = ((16, 4096), (16, 1024))


@triton.jit
def _chunk_inputs(x_ptr, q, n, oy, ox, m_ok, C, H, W, F, SH, SW, PH, PW, DH, DW, KH, KW,
                  ACC: tl.constexpr, FB: tl.constexpr):
    """Factors ``q*FB ..`` of every position: inputs [FB, BM] (0 on padding), where each
    lies in the input (flat index, and whether it is a real cell), and which are factors."""
    f = q * FB + tl.arange(0, FB)
    f_ok = f < F
    K = KH * KW
    c = f // K
    k = f % K
    row = oy[None, :] * SH - PH + (k // KW)[:, None] * DH
    col = ox[None, :] * SW - PW + (k % KW)[:, None] * DW
    inside = (f_ok[:, None] & m_ok[None, :] & (row >= 0) & (row < H) & (col >= 0)
              & (col < W))
    index = ((n[None, :] * C + c[:, None]) * H + row) * W + col
    xv = tl.load(x_ptr + index, mask=inside, other=0.0).to(ACC)
    return f, f_ok, xv, index, inside


@triton.jit
def _chunk_factors(xv, w_ptr, o, f, f_ok, F, ACC: tl.constexpr):
    """tan(x + w[o]) of a chunk, 1 where f is past the last factor."""
    wv = tl.load(w_ptr + o * F + f, mask=f_ok, other=0.0).to(ACC)
    return tl.where(f_ok[:, None], tan(xv + wv[:, None]), 1.0)


@triton.jit
def _chunk_product(t, last):
    """Product of a chunk's factors [FB, BM] per position: the last row of the cumprod."""
    return tl.reduce(tl.where(last, tl.associative_scan(t, 0, MUL), 0.0), 0, ADD)


@triton.jit
def _forward_kernel(x_ptr, w_ptr, out_ptr,
                    C, H, W, O, OH, OW, M,
                    SH, SW, PH, PW, DH, DW, KH, KW,
                    ACC: tl.constexpr, BM: tl.constexpr, BO: tl.constexpr, FB: tl.constexpr,
                    IDX: tl.constexpr):
    m = (tl.program_id(0) * BM + tl.arange(0, BM)).to(IDX)
    o0 = tl.program_id(1) * BO
    lanes = tl.arange(0, BO)
    m_ok = m < M
    per_image = OH * OW
    n = m // per_image
    r = m % per_image
    oy = r // OW
    ox = r % OW
    F = C * KH * KW
    last = (tl.arange(0, FB) == FB - 1)[:, None]
    acc = tl.full((BO, BM), 1.0, ACC)
    for q in range((F + FB - 1) // FB):
        # The chunk's inputs are gathered once and reused for the BO channels.
        f, f_ok, xv, _, _ = _chunk_inputs(x_ptr, q, n, oy, ox, m_ok, C, H, W, F, SH, SW, PH, PW,
                                          DH, DW, KH, KW, ACC, FB)
        for j in range(tl.minimum(BO, O - o0)):
            product = _chunk_product(_chunk_factors(xv, w_ptr, o0 + j, f, f_ok, F, ACC), last)
            acc = tl.where((lanes == j)[:, None], acc * product[None, :], acc)
    o = o0 + lanes
    out = out_ptr + (n[None, :] * O + o[:, None]) * per_image + r[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=(o < O)[:, None] & m_ok[None, :])


@triton.jit
def _backward_kernel(x_ptr, w_ptr, g_ptr, gx_ptr, cols_ptr, gw_ptr,
                     C, H, W, O, OH, OW, M,
                     SH, SW, PH, PW, DH, DW, KH, KW,
                     SCATTER, ACC: tl.constexpr, BM: tl.constexpr, FB: tl.constexpr,
                     IDX: tl.constexpr):
    pid = tl.program_id(0)
    m = (pid * BM + tl.arange(0, BM)).to(IDX)
    m_ok = m < M
    per_image = OH * OW
    n = m // per_image
    r = m % per_image
    oy = r // OW
    ox = r % OW
    F = C * KH * KW
    chunks = (F + FB - 1) // FB
    lane = tl.arange(0, FB)
    previous = tl.broadcast_to(tl.maximum(lane - 1, 0)[:, None], (FB, BM))
    following = tl.broadcast_to(tl.minimum(lane + 1, FB - 1)[:, None], (FB, BM))
    first = (lane == 0)[:, None]
    last = (lane == FB - 1)[:, None]
    for q in range(chunks):
        f, f_ok, xv, index, inside = _chunk_inputs(x_ptr, q, n, oy, ox, m_ok, C, H, W, F, SH, SW,
                                                   PH, PW, DH, DW, KH, KW, ACC, FB)
        column = tl.full((FB, BM), 0.0, ACC)
        for o in range(O):
            t = _chunk_factors(xv, w_ptr, o, f, f_ok, F, ACC)
            # Leave-one-out within the chunk: prod_{m<f} * prod_{m>f}, no division.
            before = tl.gather(tl.associative_scan(t, 0, MUL), previous, axis=0)
            before = tl.where(first, 1.0, before)
            after = tl.gather(tl.associative_scan(t, 0, MUL, reverse=True), following, axis=0)
            after = tl.where(last, 1.0, after)
            others = before * after
            for q2 in range(chunks):
                if q2 != q:
                    f2, f2_ok, x2, _, _ = _chunk_inputs(x_ptr, q2, n, oy, ox, m_ok, C, H, W, F,
                                                        SH, SW, PH, PW, DH, DW, KH, KW, ACC, FB)
                    t2 = _chunk_factors(x2, w_ptr, o, f2, f2_ok, F, ACC)
                    others = others * _chunk_product(t2, last)[None, :]
            g = tl.load(g_ptr + (n * O + o) * per_image + r, mask=m_ok, other=0.0).to(ACC)
            grad_u = g[None, :] * others * (1.0 + t * t)  # sec^2 = 1 + tan^2
            grad_u = tl.where(f_ok[:, None] & m_ok[None, :], grad_u, 0.0)
            tl.store(gw_ptr + (pid * O + o) * F + f, tl.reduce(grad_u, 1, ADD), mask=f_ok)
            column += grad_u
        if SCATTER != 0:  # a runtime flag: one build serves both paths
            tl.atomic_add(gx_ptr + index, column, mask=inside)
        else:
            tl.store(cols_ptr + f[:, None] * M + m[None, :], column,
                     mask=f_ok[:, None] & m_ok[None, :])


@triton.jit
def _col2im_kernel(cols_ptr, gx_ptr, C, H, W, OH, OW, M, TOTAL,
                   SH, SW, PH, PW, DH, DW, KH, KW, BLOCK: tl.constexpr, IDX: tl.constexpr):
    """grad_input[n,c,h,w] = sum over taps k reading (h, w) of cols[c*K + k, position]."""
    e = (tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)).to(IDX)
    ok = e < TOTAL
    w = e % W
    h = (e // W) % H
    c = (e // (H * W)) % C
    n = e // (C * H * W)
    K = KH * KW
    acc = tl.full((BLOCK,), 0.0, cols_ptr.dtype.element_ty)
    for k in range(K):
        ty = h + PH - (k // KW) * DH
        tx = w + PW - (k % KW) * DW
        oy = ty // SH
        ox = tx // SW
        hit = (ok & (ty >= 0) & (tx >= 0) & (ty == oy * SH) & (tx == ox * SW) & (oy < OH)
               & (ox < OW))
        acc += tl.load(cols_ptr + (c * K + k) * M + (n * OH + oy) * OW + ox, mask=hit, other=0.0)
    tl.store(gx_ptr + e, acc, mask=ok)


@bfloat16_in_float32
def forward(input: torch.Tensor, weight: torch.Tensor, geometry) -> torch.Tensor:
    """Tan-product convolution without bias.

    Args:
        input: ``[N, C, H, W]``.
        weight: ``[O, C, kh, kw]``.
        geometry: ``reference.common.Geometry`` of the call (``tanprod_conv2d_signature``).

    Returns:
        ``[N, O, oh, ow]`` in the input's dtype.
    """
    dtype = check_tensors(input, weight)
    x, w = input.contiguous(), weight.contiguous()
    n, c, h, wd = x.shape
    o = w.shape[0]
    oh, ow = geometry.out_size
    out = torch.empty((n, o, oh, ow), dtype=dtype, device=x.device)
    m = n * oh * ow
    if out.numel() == 0:
        return out
    bm = block(m, *FORWARD_POSITIONS)
    bo = block(o, *OUT_CHANNELS)
    fb = block(c * geometry.kernel[0] * geometry.kernel[1], *FACTORS)
    launch(_forward_kernel, (triton.cdiv(m, bm), triton.cdiv(o, bo)), x, w, out,
           c, h, wd, o, oh, ow, m, *window_args(geometry),
           ACC=acc_type(dtype), BM=bm, BO=bo, FB=fb, IDX=index_type(x, w, out))
    return out


@bfloat16_in_float32
def backward(grad_out: torch.Tensor, input: torch.Tensor, weight: torch.Tensor,
             geometry) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of :func:`forward`: ``(grad_input [N,C,H,W], grad_weight [O,C,kh,kw])``.

    Exact where a factor is 0 (leave-one-out products, no division). By default the input
    gradient is scattered with ``tl.atomic_add``, so on a GPU its float rounding (not its
    value beyond that) can change from run to run: **not deterministic**. Under
    ``torch.use_deterministic_algorithms(True)`` a column buffer ``[C*kh*kw, N*oh*ow]``
    is written instead and gathered in a fixed order (deterministic). The weight gradient
    is always deterministic (per-program partials summed by torch).
    """
    dtype = check_tensors(grad_out, input, weight)
    g, x, w = grad_out.contiguous(), input.contiguous(), weight.contiguous()
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = geometry.out_size
    work = acc_dtype(dtype)
    grad_x = torch.zeros(x.shape, dtype=work, device=x.device)
    m, factors = n * oh * ow, c * kh * kw
    if m == 0 or o == 0:
        return grad_x.to(dtype), torch.zeros_like(w)
    bm = block(m, *BACKWARD_POSITIONS)
    fb = block(factors, *FACTORS)
    programs = triton.cdiv(m, bm)
    partial = torch.empty((programs, o, factors), dtype=work, device=x.device)
    deterministic = torch.are_deterministic_algorithms_enabled()
    cols = torch.empty((factors, m), dtype=work, device=x.device) if deterministic else grad_x
    geo = window_args(geometry)
    launch(_backward_kernel, (programs,), x, w, g, grad_x, cols, partial,
           c, h, wd, o, oh, ow, m, *geo,
           int(not deterministic), ACC=acc_type(dtype), BM=bm, FB=fb,
           IDX=index_type(x, w, g, cols, partial))
    if deterministic:
        total = grad_x.numel()
        size = block(total, *CELLS)
        launch(_col2im_kernel, (triton.cdiv(total, size),), cols, grad_x,
               c, h, wd, oh, ow, m, total, *geo, BLOCK=size, IDX=index_type(cols, grad_x))
    grad_w = partial.sum(dim=0).reshape(w.shape)
    return grad_x.to(dtype), grad_w.to(dtype)
