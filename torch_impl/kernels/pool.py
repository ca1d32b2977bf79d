# Triton kernels of max_pool2d and avg_pool2d (torch semantics exactly).
#
# Notation: P = N*C*oh*ow output cells, E = N*C*H*W input cells, K = kh*kw taps. Every
# kernel is elementwise over a flat index: grid (cdiv(P or E, BLOCK),), one program owns
# BLOCK cells and loops over the taps, so nothing is scattered and no atomics are used:
# every result is deterministic. The loops visit only the rows I0..I1 and columns J0..J1
# of the window that read the input at some output (Geometry.input_tap_range, closed
# form on the host): the other taps read padding everywhere, and skipping them keeps
# the row-major order of the rest. K below is the taps visited: kh*kw for an ordinary
# window, at most about (2H + sh)(2W + sw) for one far larger than the input.
#
# max forward: one program = BLOCK outputs; visits the window's taps in row-major order
#   from best = -inf, index = first tap inside the input, and takes a tap when
#   v > best or v is NaN (ties keep the first index, NaN wins, the last NaN is kept:
#   torch's CPU order). Per output: K loads (L1/L2 hits when windows overlap), 2K
#   compares; 4 B (fp32) + 8 B index written: memory bound (HBM ~ input + 3x output).
# max backward (gather): one program = BLOCK input cells; per tap, the output whose window
#   reads the cell at that tap (stride divisibility) adds its gradient when its index is
#   this cell. Per input cell: K index + K gradient loads (cached), K adds.
# avg forward: one program = BLOCK outputs; sum of the K taps (0 for padding, in tap
#   order) divided by the window's divisor (count_include_pad, ceil-mode overhang and
#   divisor_override are recomputed per output from its window). K loads + K adds + 1
#   divide per output: memory bound.
# avg backward (gather): one program = BLOCK input cells; per tap, grad / divisor of the
#   output reading the cell. Same cost per input cell.
"""Triton kernels of ``max_pool2d`` and ``avg_pool2d`` (forward and backward). See the
comment above for the tiling; the functions below are the backend contract."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .common import (
    acc_type,
    bfloat16_in_float32,
    block,
    check_tensors,
    divide,
    index_type,
    launch,
    window_args,
)

#: Block-size range ``(low, high)`` of cells per program, interpreted then compiled.
CELLS = ((16, 4096), (16, 1024))


def _geometry_args(geometry):
    """Sizes, the window's scalars and the ranges of its rows and columns that read the
    input (the loops' bounds, inclusive)."""
    (h, w), (oh, ow) = geometry.in_size, geometry.out_size
    return (h, w, oh, ow, *window_args(geometry), *geometry.input_tap_range(0),
            *geometry.input_tap_range(1))


def _blocks(count: int) -> int:
    return block(count, *CELLS)


@triton.jit
def _output_cells(e, OH, OW):
    """(plane n*C + c, output row, output col) of flat output indices."""
    return e // (OH * OW), (e // OW) % OH, e % OW


@triton.jit
def _input_cells(e, H, W):
    """(plane, row, col) of flat input indices."""
    return e // (H * W), (e // W) % H, e % W


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


@triton.jit
def _max_forward_kernel(x_ptr, out_ptr, idx_ptr, TOTAL,
                        H, W, OH, OW, SH, SW, PH, PW, DH, DW, KH, KW, I0, I1, J0, J1,
                        BLOCK: tl.constexpr, IDX: tl.constexpr):
    e = (tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)).to(IDX)
    ok = e < TOTAL
    plane, oy, ox = _output_cells(e, OH, OW)
    best = tl.full((BLOCK,), float("-inf"), x_ptr.dtype.element_ty)
    index = tl.full((BLOCK,), -1, tl.int64)
    for i in range(I0, I1 + 1):
        for j in range(J0, J1 + 1):
            row = oy * SH - PH + i * DH
            col = ox * SW - PW + j * DW
            inside = ok & (row >= 0) & (row < H) & (col >= 0) & (col < W)
            flat = row * W + col
            v = tl.load(x_ptr + plane * (H * W) + flat, mask=inside, other=float("-inf"))
            index = tl.where(inside & (index < 0), flat, index)
            better = inside & ((v > best) | (v != v))
            best = tl.where(better, v, best)
            index = tl.where(better, flat, index)
    tl.store(out_ptr + e, best, mask=ok)
    tl.store(idx_ptr + e, index, mask=ok)


@triton.jit
def _max_backward_kernel(g_ptr, idx_ptr, gx_ptr, TOTAL,
                         H, W, OH, OW, SH, SW, PH, PW, DH, DW, KH, KW, I0, I1, J0, J1,
                         ACC: tl.constexpr, BLOCK: tl.constexpr, IDX: tl.constexpr):
    e = (tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)).to(IDX)
    ok = e < TOTAL
    plane, h, w = _input_cells(e, H, W)
    acc = tl.full((BLOCK,), 0.0, ACC)
    for i in range(I0, I1 + 1):
        for j in range(J0, J1 + 1):
            oy, ox, read = _reader(h, w, i, j, OH, OW, SH, SW, PH, PW, DH, DW)
            out = (plane * OH + oy) * OW + ox
            chosen = tl.load(idx_ptr + out, mask=ok & read, other=-1) == h * W + w
            acc += tl.load(g_ptr + out, mask=ok & read & chosen, other=0.0).to(ACC)
    tl.store(gx_ptr + e, acc.to(gx_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _divisor(oy, ox, H, W, SH, SW, PH, PW, KH, KW, INCLUDE_PAD, OVERRIDE):
    """torch's divisor of each window: the override if non-zero, else the cells it covers
    inside the padded border (count_include_pad; never the ceil-mode overhang) or inside
    the input."""
    top = oy * SH - PH
    left = ox * SW - PW
    if INCLUDE_PAD != 0:
        rows = tl.minimum(top + KH, H + PH) - top
        cols = tl.minimum(left + KW, W + PW) - left
    else:
        rows = tl.minimum(top + KH, H) - tl.maximum(top, 0)
        cols = tl.minimum(left + KW, W) - tl.maximum(left, 0)
    return tl.where(OVERRIDE != 0, OVERRIDE, rows * cols)


@triton.jit
def _avg_forward_kernel(x_ptr, out_ptr, TOTAL, INCLUDE_PAD, OVERRIDE,
                        H, W, OH, OW, SH, SW, PH, PW, DH, DW, KH, KW, I0, I1, J0, J1,
                        ACC: tl.constexpr, BLOCK: tl.constexpr, IDX: tl.constexpr):
    e = (tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)).to(IDX)
    ok = e < TOTAL
    plane, oy, ox = _output_cells(e, OH, OW)
    total = tl.full((BLOCK,), 0.0, ACC)
    for i in range(I0, I1 + 1):
        for j in range(J0, J1 + 1):
            row = oy * SH - PH + i * DH
            col = ox * SW - PW + j * DW
            inside = ok & (row >= 0) & (row < H) & (col >= 0) & (col < W)
            total += tl.load(x_ptr + (plane * H + row) * W + col, mask=inside, other=0.0).to(ACC)
    divisor = _divisor(oy, ox, H, W, SH, SW, PH, PW, KH, KW, INCLUDE_PAD, OVERRIDE)
    tl.store(out_ptr + e, divide(total, divisor.to(ACC)).to(out_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _avg_backward_kernel(g_ptr, gx_ptr, TOTAL, INCLUDE_PAD, OVERRIDE,
                         H, W, OH, OW, SH, SW, PH, PW, DH, DW, KH, KW, I0, I1, J0, J1,
                         ACC: tl.constexpr, BLOCK: tl.constexpr, IDX: tl.constexpr):
    e = (tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)).to(IDX)
    ok = e < TOTAL
    plane, h, w = _input_cells(e, H, W)
    acc = tl.full((BLOCK,), 0.0, ACC)
    for i in range(I0, I1 + 1):
        for j in range(J0, J1 + 1):
            oy, ox, read = _reader(h, w, i, j, OH, OW, SH, SW, PH, PW, DH, DW)
            g = tl.load(g_ptr + (plane * OH + oy) * OW + ox, mask=ok & read, other=0.0).to(ACC)
            divisor = _divisor(oy, ox, H, W, SH, SW, PH, PW, KH, KW, INCLUDE_PAD, OVERRIDE)
            acc += tl.where(ok & read, divide(g, divisor.to(ACC)), 0.0)
    tl.store(gx_ptr + e, acc.to(gx_ptr.dtype.element_ty), mask=ok)


@bfloat16_in_float32
def max_forward(input: torch.Tensor, geometry) -> tuple[torch.Tensor, torch.Tensor]:
    """Max pooling: ``(out [N, C, oh, ow], indices int64 flat h*W + w per plane)``.

    ``geometry`` from ``reference.pool.max_pool2d_signature`` (ceil-mode overhang in
    ``pad_after``; padding never wins). NaN wins; ties keep the first tap in row-major order.
    """
    dtype = check_tensors(input)
    x = input.contiguous()
    n, c = x.shape[:2]
    out = torch.empty((n, c, *geometry.out_size), dtype=dtype, device=x.device)
    indices = torch.empty(out.shape, dtype=torch.int64, device=x.device)
    total = out.numel()
    if total:
        size = _blocks(total)
        launch(_max_forward_kernel, (triton.cdiv(total, size),), x, out, indices, total,
               *_geometry_args(geometry), BLOCK=size, IDX=index_type(x, out, indices))
    return out, indices


@bfloat16_in_float32
def max_backward(grad_out: torch.Tensor, indices: torch.Tensor, geometry) -> torch.Tensor:
    """Gradient of :func:`max_forward`: each output's gradient goes to its index only
    (gathered per input cell: deterministic). Returns ``[N, C, H, W]``."""
    dtype = check_tensors(grad_out)
    g, idx = grad_out.contiguous(), indices.contiguous()
    n, c = g.shape[:2]
    grad_x = torch.empty((n, c, *geometry.in_size), dtype=dtype, device=g.device)
    total = grad_x.numel()
    if total:
        size = _blocks(total)
        launch(_max_backward_kernel, (triton.cdiv(total, size),), g, idx, grad_x, total,
               *_geometry_args(geometry), ACC=acc_type(dtype), BLOCK=size,
               IDX=index_type(g, idx, grad_x))
    return grad_x


def _override(divisor_override) -> int:
    return 0 if divisor_override is None else int(divisor_override)


@bfloat16_in_float32
def avg_forward(input: torch.Tensor, geometry, count_include_pad: bool,
                divisor_override) -> torch.Tensor:
    """Average pooling ``[N, C, oh, ow]`` (``geometry`` from ``avg_pool2d_signature``)."""
    dtype = check_tensors(input)
    x = input.contiguous()
    n, c = x.shape[:2]
    out = torch.empty((n, c, *geometry.out_size), dtype=dtype, device=x.device)
    total = out.numel()
    if total:
        size = _blocks(total)
        launch(_avg_forward_kernel, (triton.cdiv(total, size),), x, out, total,
               int(count_include_pad), _override(divisor_override), *_geometry_args(geometry),
               ACC=acc_type(dtype), BLOCK=size, IDX=index_type(x, out))
    return out


@bfloat16_in_float32
def avg_backward(grad_out: torch.Tensor, geometry, count_include_pad: bool,
                 divisor_override) -> torch.Tensor:
    """Gradient of :func:`avg_forward`, gathered per input cell (deterministic):
    ``[N, C, H, W]``."""
    dtype = check_tensors(grad_out)
    g = grad_out.contiguous()
    n, c = g.shape[:2]
    grad_x = torch.empty((n, c, *geometry.in_size), dtype=dtype, device=g.device)
    total = grad_x.numel()
    if total:
        size = _blocks(total)
        launch(_avg_backward_kernel, (triton.cdiv(total, size),), g, grad_x, total,
               int(count_include_pad), _override(divisor_override), *_geometry_args(geometry),
               ACC=acc_type(dtype), BLOCK=size, IDX=index_type(g, grad_x))
    return grad_x

