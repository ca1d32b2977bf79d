"""Depth-aware convolution and average pooling in vectorised torch: the ``impl="native"``
contract functions (no autograd inside, bias not included: the op adds it)::

    conv_forward(input, depth, weight, geometry, alpha) -> out
    conv_backward(grad_out, input, depth, weight, geometry, alpha)
        -> (grad_input, grad_depth, grad_weight)
    pool_forward(input, depth, geometry, alpha, count_include_pad) -> out
    pool_backward(grad_out, input, depth, geometry, alpha, count_include_pad)
        -> (grad_input, grad_depth)

Every window weighs tap t by ``F_t = exp(-alpha |depth[centre] - depth[tap]|)``
(docs/depthaware.md), so the convolution is ``out = sum_t W_t @ (x_t * F_t)``: a
convolution whose columns are scaled per position, which no ``F.conv2d`` call can do.
The unfolded, weighted input is kh*kw times the input, so it is built a chunk of output
positions at a time (:class:`Tiling`: whole samples, or rows of one sample;
:data:`CHUNK` elements): the chunk's columns ``U = x_taps * F`` (``[C*kh*kw,
positions]``) come from one multiplication of a strided view of the padded input
(:func:`torch_impl.geometry.taps`: nothing is copied to make it) and are reduced by one
matrix product with the ``[O, C*kh*kw]`` weight. The backward rebuilds the columns per
chunk: ``grad_W += g @ U^T``, ``grad_U = W^T @ g``, the input gets ``grad_U * F`` at the
taps (:func:`torch_impl.geometry.add_to_taps`), and the depth ``dL/dF * F = sum_c grad_U
* U`` (which is all the depth gradient needs, below) from the contiguous columns rather
than the strided input. F is computed a block of positions at a time (:data:`BLOCK`).

Depth gradients: ``dF_t / d depth[tap] = F_t * alpha * sign(depth[centre] - depth[tap])
= -dF_t / d depth[centre]``, with ``sign(0) = 0`` (torch's ``sign``; for a NaN
difference F itself is NaN, so the product is NaN as in the reference). Each tap's share
is added at the cells the tap reads, each window's total, negated, at its centre
(``index_add_``: pooling windows may share one). Taps outside the image, windows whose
centre is outside and ``alpha = 0`` form no F and pass no depth gradient.

Products are formed in the reference's order (``x * F`` first, then the weight), so NaN
and infinities land where the reference puts them. float16/bfloat16 compute in float32.
"""

from __future__ import annotations

import torch

from .. import geometry as geo
from ..common import compute_dtype

#: Elements of one chunk's columns ``[C*kh*kw, positions]`` (4 MiB in float32). Smaller
#: chunks keep the columns in a core's cache but cost more operations (microseconds of
#: dispatch each, and a barrier per parallel region); on the 2-core benchmark machine
#: chunks of 1 to 8 MiB were fastest.
CHUNK = 1 << 20
#: Elements of one block's similarity weights ``[kh, kw, positions]``: F is computed (and
#: the depth gradient scattered) a block at a time, for all of the block's chunks.
BLOCK = 1 << 20


def _split(samples: slice, rows: slice, per_row: int, budget: int):
    """``(samples, rows)`` slices covering a region of ``[N, oh]`` output rows, each of
    about ``budget / per_row`` rows: several whole samples, or rows of one sample."""
    height = rows.stop - rows.start
    fit = max(1, budget // max(per_row, 1))
    if fit >= height:
        step = fit // height
        for n in range(samples.start, samples.stop, step):
            yield slice(n, min(samples.stop, n + step)), rows
        return
    for n in range(samples.start, samples.stop):
        for r in range(rows.start, rows.stop, fit):
            yield slice(n, n + 1), slice(r, min(rows.stop, r + fit))


def _local(part: slice, whole: slice) -> slice:
    """``part`` relative to ``whole``'s start."""
    return slice(part.start - whole.start, part.stop - whole.start)


class Tiling:
    """Blocks of output positions (similarity weights) made of chunks (columns).

    ``blocks``: ``[(samples, rows, chunks)]`` with ``chunks`` ``[(samples, rows,
    local_samples, local_rows)]`` (local: relative to the block); ``largest``: elements
    of the largest chunk's columns.
    """

    def __init__(self, n: int, channels: int, geometry):
        (kh, kw), (oh, ow) = geometry.kernel, geometry.out_size
        per_row = channels * kh * kw * ow
        self.blocks, self.largest = [], 0
        for bs, br in _split(slice(0, n), slice(0, oh), kh * kw * ow, BLOCK):
            chunks = [(s, r, _local(s, bs), _local(r, br))
                      for s, r in _split(bs, br, per_row, CHUNK)]
            self.blocks.append((bs, br, chunks))
            self.largest = max([self.largest] + [(s.stop - s.start) * (r.stop - r.start)
                                                 * per_row for s, r, _, _ in chunks])


class Similarity:
    """The similarity weights of every window of ``geometry``, block by block.

    Args:
        depth: ``[N, 1, H, W]``.
        centres: input ``(rows [oh], cols [ow])`` of the window centres
            (:func:`torch_impl.geometry.conv_centres` / ``pool_centres``).
        alpha: the similarity scale (0: F = 1 whatever the depth).
        unformed: the value F takes where it is not formed (tap or centre outside the
            image): 1 for the convolution (a plain conv window), 0 for pooling (the tap
            is not in the sum).
    """

    def __init__(self, depth, geometry, centres, alpha: float, unformed: float, dtype):
        n = depth.shape[0]
        d = depth[:, 0].to(dtype)
        self.geometry, self.alpha, self.fill = geometry, alpha, unformed
        self.centres = centres
        self.flat, self.centre_inside = geo.centre_cells(geometry, centres)
        self.centre = d.reshape(n, d.shape[1] * d.shape[2])[:, self.flat.reshape(-1)].view(
            n, *geometry.out_size)
        self.taps = geo.taps(geo.pad(d, geometry), geometry)  # [N, kh, kw, oh, ow] view
        self.unformed = ~(geo.in_input(geometry, depth.device) & self.centre_inside)
        #: Output rows with a window whose F is not formed everywhere (masking work).
        self.rows_unformed = self.unformed.any(3).any(1).any(0).tolist()
        self.grad_pad = self.grad_centre = None

    def block(self, samples: slice, rows: slice, direction: bool = False):
        """``(F, direction)`` of a block of output positions, ``[kh, kw, nb, r, ow]``: F,
        and with ``direction`` also ``alpha * sign(depth[centre] - depth[tap])`` (0 where
        F is not formed; else None), so that ``dF/d depth[tap] = F * direction``. With
        ``alpha = 0``: ``(None, None)``, i.e. F = 1 wherever it is formed."""
        if self.alpha == 0:
            return None, None
        tap_depth = self.taps[samples, :, :, rows].permute(1, 2, 0, 3, 4)
        # Contiguous: F is broadcast over the channels of every column multiplication,
        # which runs several times slower with the tap view's strides.
        diff = torch.empty(tap_depth.shape, dtype=tap_depth.dtype, device=tap_depth.device)
        torch.sub(self.centre[samples, rows], tap_depth, out=diff)
        f = diff.abs().mul_(-self.alpha).exp_()
        signs = torch.sign(diff).mul_(self.alpha) if direction else None
        if any(self.rows_unformed[rows]):
            unformed = self.unformed[:, :, None, rows]
            f.masked_fill_(unformed, self.fill)
            if direction:
                signs.masked_fill_(unformed, 0.0)
        return f, signs

    def push(self, samples: slice, rows: slice, grad_f_f, direction) -> None:
        """Record the depth gradient of a block from ``grad_f_f = dL/dF * F`` (``[kh, kw,
        nb, r, ow]``): ``grad_f_f * direction`` at each tap's depth, minus it at its
        window's centre. (Only ``dL/dF * F`` is needed, so the convolution forms it from
        the weighted columns ``x * F``.)"""
        if self.grad_pad is None:
            n = self.centre.shape[0]
            self.grad_pad = torch.zeros((n, *geo.padded_size(self.geometry)),
                                        dtype=self.centre.dtype, device=self.centre.device)
            self.grad_centre = torch.zeros_like(self.centre)
        push = grad_f_f.mul_(direction)
        if any(self.rows_unformed[rows]):  # dL/dF may be NaN where F is not formed
            push.masked_fill_(self.unformed[:, :, None, rows], 0.0)
        geo.add_to_taps(self.grad_pad[samples], push.permute(2, 0, 1, 3, 4), self.geometry, rows)
        self.grad_centre[samples, rows] -= push.sum((0, 1))

    def depth_gradient(self, depth) -> torch.Tensor:
        """``[N, 1, H, W]``: the taps' shares plus each window's centre share."""
        if self.grad_pad is None:  # alpha = 0, or no window
            return torch.zeros_like(depth)
        grad = geo.unpad(self.grad_pad, self.geometry).contiguous()
        geo.add_to_centres(grad, self.grad_centre, self.geometry, self.centres)
        return grad[:, None].to(depth.dtype)


def _columns(xtaps, samples, rows):
    """The chunk's ``[C, kh, kw, nb, r, ow]`` view of the input taps."""
    return xtaps[samples, :, :, :, rows].permute(1, 2, 3, 0, 4, 5)


def _positions(cols) -> int:
    """Output positions of a chunk's ``[C, kh, kw, nb, r, ow]`` columns."""
    return cols.shape[3] * cols.shape[4] * cols.shape[5]


def _weighted(cols, f, buffer):
    """``cols * F`` (``cols`` when F is 1) into ``buffer``, ``[C, kh, kw, nb, r, ow]``."""
    out = buffer[: cols.numel()].view(cols.shape)
    return out.copy_(cols) if f is None else torch.mul(cols, f, out=out)


def _setup(input, depth, geometry, centres, alpha, unformed):
    dtype = compute_dtype(input.dtype)
    x = input.to(dtype)
    sim = Similarity(depth, geometry, centres(geometry, input.device), alpha, unformed, dtype)
    xpad = geo.pad(x, geometry)
    tiling = Tiling(x.shape[0], x.shape[1], geometry)
    buffer = torch.empty(tiling.largest, dtype=dtype, device=input.device)
    return xpad, geo.taps(xpad, geometry), sim, tiling, buffer


# ----------------------------------------------------------------------------- conv


def conv_forward(input, depth, weight, geometry, alpha: float) -> torch.Tensor:
    """``[N, C, H, W]``, ``[N, 1, H, W]``, ``[O, C, kh, kw]`` -> ``[N, O, oh, ow]``."""
    _, xtaps, sim, tiling, buffer = _setup(input, depth, geometry, geo.conv_centres, alpha, 1.0)
    o = weight.shape[0]
    w = weight.to(buffer.dtype).reshape(o, -1)
    out = torch.empty((input.shape[0], o, *geometry.out_size), dtype=buffer.dtype,
                      device=input.device)
    for block_samples, block_rows, chunks in tiling.blocks:
        f, _ = sim.block(block_samples, block_rows)
        for samples, rows, local_samples, local_rows in chunks:
            f_chunk = None if f is None else f[:, :, local_samples, local_rows]
            u = _weighted(_columns(xtaps, samples, rows), f_chunk, buffer)
            columns = u.view(w.shape[1], _positions(u))
            if u.shape[3] == 1:  # one sample: its rows are an [O, r*ow] matrix of out
                torch.mm(w, columns, out=out[samples.start, :, rows].view(o, columns.shape[1]))
            else:
                product = torch.mm(w, columns).view(o, *u.shape[3:])  # [O, nb, r, ow]
                out[samples, :, rows] = product.transpose(0, 1)
    return out.to(input.dtype)


def conv_backward(grad_out, input, depth, weight, geometry, alpha: float):
    """Gradients of :func:`conv_forward`: ``(grad_input, grad_depth, grad_weight)``."""
    xpad, xtaps, sim, tiling, buffer = _setup(input, depth, geometry, geo.conv_centres,
                                              alpha, 1.0)
    o = weight.shape[0]
    w = weight.to(buffer.dtype).reshape(o, -1)
    g = grad_out.to(buffer.dtype)
    grad_xpad = torch.zeros_like(xpad)
    grad_w = torch.zeros_like(w.t())  # [C*kh*kw, O]: MKL's faster orientation here
    grad_buffer = torch.empty_like(buffer)
    for block_samples, block_rows, chunks in tiling.blocks:
        f, direction = sim.block(block_samples, block_rows, direction=True)
        grad_f_f = None if f is None else torch.empty_like(f)  # dL/dF * F
        for samples, rows, local_samples, local_rows in chunks:
            f_chunk = None if f is None else f[:, :, local_samples, local_rows]
            u = _weighted(_columns(xtaps, samples, rows), f_chunk, buffer)
            positions = _positions(u)
            g_chunk = g[samples, :, rows].transpose(0, 1).reshape(o, positions)
            grad_w.addmm_(u.view(w.shape[1], positions), g_chunk.t())
            grad_u = torch.mm(w.t(), g_chunk,
                              out=grad_buffer[: u.numel()].view(w.shape[1], positions))
            grad_u = grad_u.view(u.shape)
            if f is not None:  # dL/dF * F = sum_c grad_u * x * F
                torch.sum(torch.mul(grad_u, u, out=u), 0,
                          out=grad_f_f[:, :, local_samples, local_rows])
                f_chunk = f_chunk.permute(2, 0, 1, 3, 4).unsqueeze(1)  # [nb, 1, kh, kw, r, ow]
            geo.add_to_taps(grad_xpad[samples], grad_u.permute(3, 0, 1, 2, 4, 5), geometry, rows,
                            f_chunk)
        if f is not None:
            sim.push(block_samples, block_rows, grad_f_f, direction)
    grad_input = geo.unpad(grad_xpad, geometry).to(input.dtype)
    return (grad_input.contiguous(), sim.depth_gradient(depth),
            grad_w.t().reshape(weight.shape).to(weight.dtype))


# ----------------------------------------------------------------------------- pooling


def _pool_chunk(cols, f, sim, rows, count_include_pad, buffer):
    """``(out, divisor)`` of a chunk: ``[C, nb, r, ow]`` and ``[nb, r, ow]``."""
    kh, kw = sim.geometry.kernel
    inside = ~sim.unformed[:, :, None, rows]  # the centre is always inside: tap in the image
    if f is None:  # alpha = 0: F = 1 inside the image, 0 outside
        f = inside.to(cols.dtype).expand(cols.shape[1:])
    num = _weighted(cols, f, buffer).sum((1, 2))
    weight = f.sum((0, 1))
    if count_include_pad:  # pool - sum over the image's taps of (1 - F); pool = kh*kw
        # (without ceil_mode no window reaches beyond the padded border)
        divisor = (kh * kw - inside.sum((0, 1)).to(f.dtype)) + weight
    else:
        divisor = weight
    return num / divisor, divisor, f


def pool_forward(input, depth, geometry, alpha: float, count_include_pad: bool) -> torch.Tensor:
    """``[N, C, H, W]``, ``[N, 1, H, W]`` -> ``[N, C, oh, ow]``."""
    _, xtaps, sim, tiling, buffer = _setup(input, depth, geometry, geo.pool_centres, alpha, 0.0)
    out = torch.empty((*input.shape[:2], *geometry.out_size), dtype=buffer.dtype,
                      device=input.device)
    for block_samples, block_rows, chunks in tiling.blocks:
        f, _ = sim.block(block_samples, block_rows)
        for samples, rows, local_samples, local_rows in chunks:
            f_chunk = None if f is None else f[:, :, local_samples, local_rows]
            chunk, _, _ = _pool_chunk(_columns(xtaps, samples, rows), f_chunk, sim, rows,
                                      count_include_pad, buffer)
            out[samples, :, rows] = chunk.transpose(0, 1)
    return out.to(input.dtype)


def pool_backward(grad_out, input, depth, geometry, alpha: float, count_include_pad: bool):
    """Gradients of :func:`pool_forward`: ``(grad_input, grad_depth)``."""
    xpad, xtaps, sim, tiling, buffer = _setup(input, depth, geometry, geo.pool_centres,
                                              alpha, 0.0)
    g = grad_out.to(buffer.dtype)
    grad_xpad = torch.zeros_like(xpad)
    for block_samples, block_rows, chunks in tiling.blocks:
        f, direction = sim.block(block_samples, block_rows, direction=True)
        grad_f_f = None if f is None else torch.empty_like(f)  # dL/dF * F
        for samples, rows, local_samples, local_rows in chunks:
            f_chunk = None if f is None else f[:, :, local_samples, local_rows]
            cols = _columns(xtaps, samples, rows)
            out, divisor, f_used = _pool_chunk(cols, f_chunk, sim, rows, count_include_pad,
                                               buffer)
            share = g[samples, :, rows].transpose(0, 1) / divisor  # dL/d num, [C, nb, r, ow]
            spread = buffer[: cols.numel()].view(cols.shape)
            torch.mul(share[:, None, None], f_used, out=spread)
            geo.add_to_taps(grad_xpad[samples], spread.permute(3, 0, 1, 2, 4, 5), geometry,
                            rows)
            if f is not None:  # dL/dF = sum_c share * (x - out)
                torch.sub(cols, out[:, None, None], out=spread).mul_(share[:, None, None])
                local = grad_f_f[:, :, local_samples, local_rows]
                torch.sum(spread, 0, out=local).mul_(f_chunk)
        if f is not None:
            sim.push(block_samples, block_rows, grad_f_f, direction)
    grad_input = geo.unpad(grad_xpad, geometry).to(input.dtype)
    return grad_input.contiguous(), sim.depth_gradient(depth)
