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
positions at a time (:class:`Tiling`: rows of one sample, or whole samples; :data:`CHUNK`
elements), and never for the whole batch. Chunks are grouped into tasks of whole samples
that run on single-threaded worker threads (:mod:`.workers`): a task owns its samples'
output rows and input gradient, returns its partial weight gradient (summed in task
order, so the result does not depend on the schedule) and pushes its depth gradient into
its own samples' rows.

Forward: the chunk's columns ``U = x_taps * F`` (``[C*kh*kw, positions]``) come from one
multiplication of a strided view of the task's padded input
(:func:`torch_impl.geometry.taps`) and one matrix product with the ``[O, C*kh*kw]``
weight writes the chunk's output rows.

Backward, channels last: the task's padded input is one row of C values per cell, a
chunk's columns ``[positions, kh*kw*C]`` are one gather of those rows, each scaled by its
F (``embedding_bag`` with bags of one row and per-row weights), then ``grad_W += g @ U``,
``grad_U = g^T @ W``, the depth's ``dL/dF * F = sum_c grad_U * U`` (row sums; it is all
the depth gradient needs, below), and every input cell gets the F-weighted sum of the
``grad_U`` rows that read it: one ``embedding_bag`` over the rows sorted by cell, the
adjoint of the gather, in place of one strided add per tap. The cells depend only on the
geometry and the chunk's shape (:func:`_chunk_cells`, cached). F is computed a block of
positions at a time (:data:`BLOCK`).

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

import functools

import torch
import torch.nn.functional as F

from .. import geometry as geo
from ..common import compute_dtype
from . import workers

#: Elements of one chunk's columns (``C*kh*kw`` per output position; 1 MiB in float32).
#: Smaller chunks keep the columns in a core's cache but cost more operations
#: (microseconds of dispatch each); on the 2-core benchmark machine the convolution was
#: fastest with 1 MiB (8 rows of a 56x56 output at 64 channels), 2 to 5% slower with 0.5,
#: 2 or 4 MiB; pooling does not mind.
CHUNK = 1 << 18
#: Elements of one block's similarity weights ``[kh, kw, positions]``: F is computed (and
#: the depth gradient scattered) a block at a time, for all of the block's chunks.
BLOCK = 1 << 20
#: Elements of one convolution task's columns: whole samples (at least one), each task on
#: a single-threaded worker (:mod:`.workers`).
TASK = 1 << 21


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
    """Tasks of whole samples, made of blocks of output positions (similarity weights),
    made of chunks (columns).

    ``tasks``: ``[(samples, blocks)]``; ``blocks``: ``[(samples, rows, chunks)]`` with
    ``chunks`` ``[(samples, rows, local_samples, local_rows)]`` (local: relative to the
    block); ``largest``: elements of the largest chunk's columns. ``task``: columns'
    elements per task (at least one sample); None: one task.
    """

    def __init__(self, n: int, per_row: int, geometry, task: int | None = None):
        (kh, kw), (oh, ow) = geometry.kernel, geometry.out_size
        step = max(1, n if task is None else task // max(per_row * oh, 1))
        self.tasks, self.blocks, self.largest = [], [], 0
        for first in range(0, n, step):
            samples, blocks = slice(first, min(n, first + step)), []
            for bs, br in _split(samples, slice(0, oh), kh * kw * ow, BLOCK):
                chunks = [(s, r, _local(s, bs), _local(r, br))
                          for s, r in _split(bs, br, per_row, CHUNK)]
                blocks.append((bs, br, chunks))
                self.largest = max([self.largest] + [
                    (s.stop - s.start) * (r.stop - r.start) * per_row for s, r, _, _ in chunks])
            self.tasks.append((samples, blocks))
            self.blocks += blocks


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
        signs = diff.sign_().mul_(self.alpha) if direction else None
        if any(self.rows_unformed[rows]):
            unformed = self.unformed[:, :, None, rows]
            f.masked_fill_(unformed, self.fill)
            if direction:
                signs.masked_fill_(unformed, 0.0)
        return f, signs

    def start_gradients(self) -> None:
        """Allocate the depth gradient's accumulators (before tasks push concurrently)."""
        if self.grad_pad is None:
            n = self.centre.shape[0]
            self.grad_pad = torch.zeros((n, *geo.padded_size(self.geometry)),
                                        dtype=self.centre.dtype, device=self.centre.device)
            self.grad_centre = torch.zeros_like(self.centre)

    def push(self, samples: slice, rows: slice, grad_f_f, direction) -> None:
        """Record the depth gradient of a block from ``grad_f_f = dL/dF * F`` (``[kh, kw,
        nb, r, ow]``): ``grad_f_f * direction`` at each tap's depth, minus it at its
        window's centre. (Only ``dL/dF * F`` is needed, so the convolution forms it from
        the weighted columns ``x * F``.)"""
        self.start_gradients()
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
    (kh, kw), ow = geometry.kernel, geometry.out_size[1]
    tiling = Tiling(x.shape[0], x.shape[1] * kh * kw * ow, geometry)
    buffer = torch.empty(tiling.largest, dtype=dtype, device=input.device)
    return xpad, geo.taps(xpad, geometry), sim, tiling, buffer


# ----------------------------------------------------------------------------- conv


@functools.lru_cache(maxsize=16)
def _chunk_cells(geometry, samples: int, rows: int, device) -> tuple:
    """Where a chunk of ``samples`` x ``rows`` output rows reads the padded input, flat
    channels-last rows counted from the chunk's first padded row: ``(cells, starts,
    order, offsets, span)``. ``cells`` ``[samples*rows*ow*kh*kw]``: the cell of each
    column row (position-major, then tap; the columns' order); ``starts``: one bag per
    column row (the gather); ``order``: the column rows sorted by cell, ``offsets``: where
    each of the ``span`` cells' bags starts in it (the scatter)."""
    (kh, kw), (sh, sw), (dh, dw), ow = (geometry.kernel, geometry.stride, geometry.dilation,
                                        geometry.out_size[1])
    hp, wp = geo.padded_size(geometry)
    a = functools.partial(torch.arange, device=device)
    cells = (a(samples).view(-1, 1, 1, 1, 1) * (hp * wp)
             + (a(rows).view(-1, 1, 1, 1) * sh + a(kh).view(-1, 1) * dh) * wp
             + a(ow).view(-1, 1, 1) * sw + a(kw) * dw).reshape(-1)
    span = (samples - 1) * hp * wp + ((rows - 1) * sh + (kh - 1) * dh + 1) * wp
    order = torch.sort(cells, stable=True).indices
    counts = torch.bincount(cells, minlength=span)
    return cells, a(cells.numel()), order, counts.cumsum(0).sub_(counts), span


class _Conv:
    """What every task of one convolution call shares, read-only while the tasks run: the
    tiling, the similarity weights, the weight as ``[O, C*kh*kw]`` (``weight``, the
    forward's columns) and ``[O, kh*kw*C]`` (``weight_last``, tap-major: the backward's
    channels-last columns), and the cells of the backward's chunks."""

    def __init__(self, input, depth, weight, geometry, alpha: float, backward: bool = False):
        self.dtype = compute_dtype(input.dtype)
        self.geometry = geometry
        n, c = input.shape[:2]
        o, _, kh, kw = weight.shape
        self.sim = Similarity(depth, geometry, geo.conv_centres(geometry, input.device), alpha,
                              1.0, self.dtype)
        self.tiling = Tiling(n, c * kh * kw * geometry.out_size[1], geometry, task=TASK)
        weight = weight.to(self.dtype)
        self.weight = weight.reshape(o, c * kh * kw)
        self.weight_last = weight.permute(0, 2, 3, 1).reshape(o, kh * kw * c)
        shapes = {(s.stop - s.start, r.stop - r.start)
                  for _, _, chunks in self.tiling.blocks for s, r, _, _ in chunks}
        self.cells = {shape: _chunk_cells(geometry, *shape, input.device)
                      for shape in (shapes if backward else ())}

    def buffer(self, blocks) -> torch.Tensor:
        """A buffer for the largest chunk's columns among ``blocks``."""
        width = self.geometry.out_size[1] * self.weight.shape[1]
        largest = max((s.stop - s.start) * (r.stop - r.start) * width
                      for _, _, chunks in blocks for s, r, _, _ in chunks)
        return torch.empty(largest, dtype=self.dtype, device=self.weight.device)

    def columns(self, xtaps, task: slice, f, chunk, buffer):
        """A chunk's columns ``x * F``, ``[C, kh, kw, nb, r, ow]`` in ``buffer``, from the
        task's padded input's tap view ``xtaps`` ``[nb, C, kh, kw, oh, ow]``; ``f``: the
        block's F or None."""
        samples, rows, local_samples, local_rows = chunk
        cols = xtaps[_local(samples, task), :, :, :, rows].permute(1, 2, 3, 0, 4, 5)
        out = buffer[: cols.numel()].view(cols.shape)
        if f is None:
            return out.copy_(cols)
        return torch.mul(cols, f[:, :, local_samples, local_rows], out=out)

    def padded_rows(self, input, samples: slice) -> torch.Tensor:
        """The samples' padded input, channels last, one row per cell ``[nb*Hp*Wp, C]``."""
        g = self.geometry
        (top, left), (h, w) = g.pad_before, g.in_size
        nb, c = samples.stop - samples.start, input.shape[1]
        xpad = torch.zeros((nb, *geo.padded_size(g), c), dtype=self.dtype, device=input.device)
        xpad[:, top : top + h, left : left + w] = input[samples].permute(0, 2, 3, 1)
        return xpad.view(-1, c)

    def first_cell(self, task: slice, chunk) -> int:
        """The chunk's first padded cell in its task's rows."""
        (hp, wp), sh = geo.padded_size(self.geometry), self.geometry.stride[0]
        samples, rows = chunk[:2]
        return (samples.start - task.start) * hp * wp + rows.start * sh * wp

    def gather(self, xrows, task: slice, chunk, weights):
        """A chunk's channels-last columns ``x * F`` ``[positions, kh*kw*C]``: one gather of
        the padded input's rows, each scaled by its F (``weights`` ``[positions*kh*kw]``,
        None: F = 1)."""
        samples, rows = chunk[:2]
        cells, starts = self.cells[samples.stop - samples.start, rows.stop - rows.start][:2]
        table = xrows[self.first_cell(task, chunk) :]
        if weights is None:
            u = table.index_select(0, cells)
        else:
            u = F.embedding_bag(cells, table, starts, mode="sum", per_sample_weights=weights)
        return u.view(-1, self.weight_last.shape[1])

    def scatter(self, grad_rows, task: slice, chunk, grad_columns, weights) -> None:
        """The adjoint of :meth:`gather`: ``grad_rows`` += each column row times its F at
        its cell (one weighted sum of the rows that read each cell)."""
        samples, rows = chunk[:2]
        _, _, order, offsets, span = self.cells[samples.stop - samples.start,
                                                rows.stop - rows.start]
        c = grad_rows.shape[1]
        sums = F.embedding_bag(order, grad_columns.view(-1, c), offsets, mode="sum",
                               per_sample_weights=None if weights is None
                               else weights.index_select(0, order))
        first = self.first_cell(task, chunk)
        grad_rows[first : first + span] += sums


def conv_forward(input, depth, weight, geometry, alpha: float) -> torch.Tensor:
    """``[N, C, H, W]``, ``[N, 1, H, W]``, ``[O, C, kh, kw]`` -> ``[N, O, oh, ow]``."""
    plan = _Conv(input, depth, weight, geometry, alpha)
    o, w = weight.shape[0], plan.weight
    out = torch.empty((input.shape[0], o, *geometry.out_size), dtype=plan.dtype,
                      device=input.device)

    def task(samples: slice, blocks):
        xtaps = geo.taps(geo.pad(input[samples].to(plan.dtype), geometry), geometry)
        buffer = plan.buffer(blocks)
        for block_samples, block_rows, chunks in blocks:
            f, _ = plan.sim.block(block_samples, block_rows)
            for chunk in chunks:
                u = plan.columns(xtaps, samples, f, chunk, buffer)
                chunk_samples, rows = chunk[:2]
                columns = u.view(w.shape[1], -1)
                if u.shape[3] == 1:  # one sample: its rows are an [O, r*ow] matrix of out
                    torch.mm(w, columns, out=out[chunk_samples.start, :, rows].view(o, -1))
                else:
                    product = torch.mm(w, columns).view(o, *u.shape[3:])  # [O, nb, r, ow]
                    out[chunk_samples, :, rows] = product.transpose(0, 1)

    workers.run(task, plan.tiling.tasks, input.device)
    return out.to(input.dtype)


def conv_backward(grad_out, input, depth, weight, geometry, alpha: float):
    """Gradients of :func:`conv_forward`: ``(grad_input, grad_depth, grad_weight)``."""
    plan = _Conv(input, depth, weight, geometry, alpha, backward=True)
    (o, c), w = weight.shape[:2], plan.weight_last
    g = grad_out.to(plan.dtype).contiguous()
    grad_input = torch.empty(input.shape, dtype=plan.dtype, device=input.device)
    if alpha != 0:
        plan.sim.start_gradients()  # before the tasks push concurrently

    def task(samples: slice, blocks):
        xrows = plan.padded_rows(input, samples)
        grad_rows = torch.zeros_like(xrows)
        grad_w = torch.zeros_like(w)
        for block_samples, block_rows, chunks in blocks:
            f, direction = plan.sim.block(block_samples, block_rows, direction=True)
            grad_f_f = None  # dL/dF * F, position-major: [nb, r, ow, kh, kw]
            if f is not None:
                f = f.permute(2, 3, 4, 0, 1).contiguous()
                grad_f_f = torch.empty_like(f)
            for chunk in chunks:
                chunk_samples, rows, local_samples, local_rows = chunk
                weights = None if f is None else f[local_samples, local_rows].view(-1)
                u = plan.gather(xrows, samples, chunk, weights)
                grad_u = torch.empty_like(u)
                nb = chunk_samples.stop - chunk_samples.start
                g_chunk = g[chunk_samples, :, rows].view(nb, o, -1)
                per_sample = u.shape[0] // nb
                for s in range(nb):
                    part = slice(s * per_sample, (s + 1) * per_sample)
                    grad_w.addmm_(g_chunk[s], u[part])
                    torch.mm(g_chunk[s].t(), w, out=grad_u[part])
                if f is not None:  # dL/dF * F = sum_c grad_u * x * F (u is spent)
                    torch.sum(u.mul_(grad_u).view(-1, c), 1,
                              out=grad_f_f[local_samples, local_rows].view(-1))
                plan.scatter(grad_rows, samples, chunk, grad_u, weights)
            if f is not None:
                plan.sim.push(block_samples, block_rows,
                              grad_f_f.permute(3, 4, 0, 1, 2).contiguous(), direction)
        (top, left), (h, w_in) = geometry.pad_before, geometry.in_size
        grad_pad = grad_rows.view(-1, *geo.padded_size(geometry), c)
        grad_input[samples] = grad_pad[:, top : top + h, left : left + w_in].permute(0, 3, 1, 2)
        return grad_w

    partials = workers.run(task, plan.tiling.tasks, input.device)
    grad_w = partials[0] if partials else torch.zeros_like(w)
    for partial in partials[1:]:  # in task order: deterministic
        grad_w += partial
    kh, kw = geometry.kernel
    grad_w = grad_w.view(o, kh, kw, c).permute(0, 3, 1, 2)
    return (grad_input.to(input.dtype), plan.sim.depth_gradient(depth),
            grad_w.contiguous().to(weight.dtype))


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
