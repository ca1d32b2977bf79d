"""Deformable convolution in vectorised torch: the ``impl="native"`` contract functions.

``forward(input, offset, weight, mask, geometry, groups, offset_groups) -> out`` and
``backward(grad_out, input, offset, weight, mask, geometry, groups, offset_groups) ->
(grad_input, grad_offset, grad_weight, grad_mask or None)``; no autograd inside, bias
not included (the op adds it). Semantics and gradient conventions are torchvision's, as
``docs/deform.md`` and ``reference/deform.py`` state them.

How it runs, per chunk of samples (``_Plan.chunks``):

- The chunk's input is stored channels-last with a zero border of two cells
  (:meth:`_Plan.rows`): row ``(plane, r, c)`` holds the ``C/Go`` channels of one cell of
  one offset group's plane. Sample coordinates are clamped to ``[-2, H] x [-2, W]``
  (which keeps every point on the same side of the border rule), so the four bilinear
  corners of every point are the rows ``cell, cell + 1, cell + W+4, cell + W+5`` of its
  own plane, and a corner off the image reads the border: no bounds test on the data.
- Gather: ``F.embedding_bag`` with one bag of four corners per (sample, position, tap)
  and the bilinear weights times the mask as per-sample weights writes torchvision's
  "columns" ``[n, oh*ow, K*C]``; the output is one matrix product per sample with the
  weight as ``[O, K*C]``, so the multiply-adds run in the BLAS as in a convolution. The
  forward gathers and multiplies the positions in blocks (:data:`COLUMN_FLOATS`) written
  straight into the output, so the columns stay in cache and their memory is bounded.
- Backward: the column gradient ``grad_out^T @ W`` and the weight gradient
  ``grad_out @ columns`` are matrix products (the columns are gathered again);
  ``E[q, corner] = grad_cols[q] . corner row`` (aten's gradient of an embedding bag
  w.r.t. its per-sample weights) gives the offset and mask gradients with the bilinear
  weights and their derivatives; the input gradient, the transpose of the
  gather, is a gather too: points sorted by their top-left cell (a stable sort, so each
  sum has a fixed order and the result is deterministic), one ``embedding_bag`` sums per
  cell each corner's weighted column gradients (four planes), and the planes, shifted by
  the corner offsets, add up to the gradient rows.

Chunks run on single-threaded worker threads (:mod:`.workers`) when there are enough of
them: no torch parallel region, so nothing stalls at a barrier when other processes
compete for the cores; the chunk order fixes every sum, so results do not depend on the
schedule.

Floors, border tests and zero fractions agree with the reference exactly whatever the
input dtype (:meth:`_Plan.points`): float64 offsets are added to the base coordinates in
float64 as the reference does; float32 ones (and float16/bfloat16, converted exactly) are
clamped and floored on their own, ``floor(base + dy) = base + floor(dy)``, which needs no
float64; fractions are then rounded once. Bulk work runs in the input dtype (float32 for
float16/bfloat16). Non-finite data takes
exact detours, chosen per chunk from cheap sums: a NaN or infinite input cell could
leak through a zero weight into a point the border rule zeroes (those points are zeroed
after the gather), a non-finite mask is applied after sampling instead of folded into
the weights, and column gradients that may be non-finite go only to the corners whose
two weight factors are > 0 (``index_add_``, as the reference). Memory per chunk in
flight: the padded input, the ``[n, oh*ow, K*C]`` columns and their gradient (the
forward: one block of them), and the geometry of the chunk's points.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..common import compute_dtype
from . import workers

#: Sample points (offset groups x positions x taps) per chunk: one sample of the
#: benchmark shape (28 224 points); tiny problems form a single chunk.
POINTS_PER_CHUNK = 1 << 15

#: torch sorts a 1-D integer tensor with a radix sort from this many keys on; shorter
#: key arrays of the input-gradient gather are padded up to it (a 5x faster sort).
RADIX_KEYS = 1 << 15

#: Border of zero cells around each plane (clamped points reach two cells out).
BORDER = 2

#: Floats of the forward's columns per block of positions (2 MiB in float32): gathered
#: and multiplied while they are in a core's cache, and bounded whatever the image size.
COLUMN_FLOATS = 1 << 19


# ----------------------------------------------------------------------------- geometry


@dataclass
class _Points:
    """The sample points of a chunk, ``Q = n * Go * P * K`` of them in that order (``P``
    the chunk's positions). Geometry is kept row-wise (``[2, Q]``: y then x; ``[2, 2,
    Q]``: ``1 - frac`` then ``frac`` of y then x), so every elementwise step runs over
    contiguous rows. ``floors`` are offsets from ``base`` (see :meth:`_Plan.points`)."""

    corners: torch.Tensor  # [Q, 4] int64 rows of the chunk's rows read by each point
    floor_offsets: torch.Tensor  # [2, Q] floors of the coordinates minus ``base``
    base: torch.Tensor  # [2, 1, P, K] (or 0) broadcasting against ``floor_offsets.view(2, n*Go, P, K)``
    fractions: torch.Tensor  # [2, 2, Q] (1 - frac, frac) x (y, x)
    not_a_point: torch.Tensor | None  # [Q] bool, a NaN coordinate (None: offsets finite)

    @property
    def cell(self):
        """``[Q]`` top-left corner rows."""
        return self.corners[:, 0]

    @property
    def floors(self):
        """``[2, Q]``: floors of the (clamped) coordinates."""
        if self.base.dim() == 0:
            return self.floor_offsets
        p, k = self.base.shape[-2:]
        return (self.floor_offsets.view(2, -1, p, k) + self.base).view(2, -1)

    def weights(self):
        """``[4, Q]`` bilinear weights of the corners (y0, x0), (y0, x0+1), (y0+1, x0),
        (y0+1, x0+1) (NaN for NaN points)."""
        f = self.fractions
        weights = (f[:, 0, None] * f[None, :, 1]).view(4, -1)  # (hy, ly) x (hx, lx)
        if self.not_a_point is not None:
            weights.masked_fill_(self.not_a_point, torch.nan)
        return weights

    def outside(self, size):
        """``[Q]`` bool: the sample is 0 by the border rule, ``y <= -1 or y >= H or x <= -1
        or x >= W`` (NaN points excluded): from the floors and fractions, exactly."""
        (y0, x0), (h, w) = self.floors, size
        ly, lx = self.fractions[1]
        out = (y0 <= -2) | ((y0 == -1) & (ly == 0)) | (y0 >= h)
        out |= (x0 <= -2) | ((x0 == -1) & (lx == 0)) | (x0 >= w)
        return out if self.not_a_point is None else out & ~self.not_a_point

    def contributes(self, size):
        """``[4, Q]`` bool: the corner is on the image with both weight factors > 0."""
        (y0, x0), (h, w) = self.floors, size
        (hy, hx), (ly, lx) = self.fractions
        top, bottom = (y0 >= 0) & (y0 < h) & (hy > 0), (y0 >= -1) & (y0 < h - 1) & (ly > 0)
        left, right = (x0 >= 0) & (x0 < w) & (hx > 0), (x0 >= -1) & (x0 < w - 1) & (lx > 0)
        ok = torch.stack((top & left, top & right, bottom & left, bottom & right))
        return ok if self.not_a_point is None else ok & ~self.not_a_point


class _Weight:
    """The weight as per-group matrices ``[G, O/G, K*C/G]`` (tap-major, then channel)."""

    def __init__(self, weight, groups, dtype):
        o, cg, kh, kw = weight.shape
        self.groups, self.k, self.shape = groups, kh * kw, weight.shape
        matrix = weight.to(dtype).view(groups, o // groups, cg, kh * kw)
        self.matrix = matrix.transpose(2, 3).reshape(groups, o // groups, kh * kw * cg)

    def _grouped(self, cols):
        """``[n, P, K*C]`` -> ``[G, n*P, K*C/G]``."""
        n, p, kc = cols.shape
        g, k = self.groups, self.k
        return cols.reshape(n * p, k, g, kc // (k * g)).permute(2, 0, 1, 3).reshape(g, n * p, kc // g)

    def apply(self, cols, out):
        """``out [n, O, P] = W @ cols[n]^T`` for ``cols [n, P, K*C]``."""
        if self.groups == 1:
            for s in range(cols.shape[0]):
                torch.mm(self.matrix[0], cols[s].t(), out=out[s])
            return
        grouped = torch.bmm(self.matrix, self._grouped(cols).transpose(1, 2))  # [G, O/G, n*P]
        out.copy_(grouped.view(out.shape[1], out.shape[0], -1).transpose(0, 1))

    def backward(self, grad, cols):
        """``(grad_cols [n, P, K*C], weight-matrix gradient [G, O/G, K*C/G])`` for
        ``grad [n, O, P]``; ``cols`` is overwritten by ``grad_cols``."""
        n, o, p = grad.shape
        if self.groups == 1:
            grad_matrix = torch.zeros_like(self.matrix)
            for s in range(n):
                grad_matrix[0].addmm_(grad[s], cols[s])
                torch.mm(grad[s].t(), self.matrix[0], out=cols[s])
            return cols, grad_matrix
        g, k = self.groups, self.k
        grouped = grad.view(n, g, o // g, p).permute(1, 2, 0, 3).reshape(g, o // g, n * p)
        grad_matrix = torch.bmm(grouped, self._grouped(cols))
        grad_cols = torch.bmm(grouped.transpose(1, 2), self.matrix)  # [G, n*P, K*C/G]
        kcg = grad_cols.shape[2]
        cols.view(n, p, k, g, kcg // k).copy_(grad_cols.view(g, n, p, k, kcg // k).permute(1, 2, 3, 0, 4))
        return cols, grad_matrix

    def grad(self, matrix_grad, dtype):
        """``[G, O/G, K*C/G]`` -> ``[O, C/G, kh, kw]``."""
        o, cg, kh, kw = self.shape
        grad = matrix_grad.view(self.groups, o // self.groups, kh * kw, cg).transpose(2, 3)
        return grad.reshape(o, cg, kh, kw).to(dtype)


class _Plan:
    """What every chunk of one call shares (read-only while the chunks run)."""

    def __init__(self, input, offset, weight, geometry, groups, offset_groups):
        self.dtype = compute_dtype(input.dtype)
        self.device = input.device
        n, c, h, w = input.shape
        (kh, kw), (oh, ow) = geometry.kernel, geometry.out_size
        self.size, self.out_size = (h, w), (oh, ow)
        self.offset_groups, self.k, self.positions = offset_groups, kh * kw, oh * ow
        self.width = w + 2 * BORDER
        self.plane_rows = (h + 2 * BORDER) * self.width
        #: Row offsets of a cell's corners (y0, x0), (y0, x0+1), (y0+1, x0), (y0+1, x0+1).
        self.corners = (0, 1, self.width, self.width + 1)
        self.kernel = _Weight(weight, groups, self.dtype)
        f64, device = torch.float64, offset.device
        taps_i = torch.arange(kh, device=device, dtype=f64).repeat_interleave(kw)
        taps_j = torch.arange(kw, device=device, dtype=f64).repeat(kh)
        out_y = torch.arange(oh, device=device, dtype=f64) * geometry.stride[0] - geometry.pad_before[0]
        out_x = torch.arange(ow, device=device, dtype=f64) * geometry.stride[1] - geometry.pad_before[1]
        #: [2, oh*ow, K]: unshifted y and x of every (position, tap), integers
        base = torch.stack((
            (out_y[:, None, None] + taps_i * geometry.dilation[0]).expand(oh, ow, self.k),
            (out_x[None, :, None] + taps_j * geometry.dilation[1]).expand(oh, ow, self.k),
        )).reshape(2, self.positions, self.k)
        # Coordinates are y = base + dy clamped to [-2, H] (x alike): a point at or beyond
        # the bounds samples 0 and has no derivative. The reference computes y in float64.
        # float32 offsets (also float16/bfloat16 ones, exactly converted) give the same
        # floors, border tests and zero fractions without float64: floor(base + dy) =
        # base + floor(dy) exactly, dy is clamped to [-2 - base, H - base] exactly, and
        # the fractions dy - floor(dy), floor(dy) + 1 - dy are rounded once (0 exactly
        # when they are 0). float64 offsets are added to base first, as the reference does.
        self.points_dtype = f64 if self.dtype == f64 else torch.float32
        limits = torch.tensor((h, w), device=device, dtype=f64).view(2, 1, 1)
        self.shift_base = self.dtype != f64
        self.base = base.to(self.points_dtype)
        zero = torch.zeros_like(base)
        offset_base = base if self.shift_base else zero
        self.lower = (-2.0 - offset_base).to(self.points_dtype)
        self.upper = (limits - offset_base).to(self.points_dtype)
        #: [oh*ow, K] row of a point's top-left corner in its plane, less the floors'
        #: contribution (border included)
        cell_base = (offset_base[0] + BORDER) * self.width + offset_base[1] + BORDER
        self.cell_base = cell_base.to(torch.int64)
        self.cell_tables = {}
        self.floor_base = self.base if self.shift_base else torch.zeros((), device=device,
                                                                      dtype=self.points_dtype)
        self.shifts = torch.tensor(self.corners, device=device, dtype=torch.int64)
        per_sample = offset_groups * self.positions * self.k
        step = max(1, POINTS_PER_CHUNK // max(per_sample, 1))
        self.chunks = [(n0, min(n0 + step, n)) for n0 in range(0, n, step)]
        #: Index dtype of the forward's gather: int32 (half the bytes) when a chunk's rows fit.
        self.index_dtype = torch.int32 if step * offset_groups * self.plane_rows < 2**31 else torch.int64
        #: Positions per block of the forward: the block's columns fit in a core's cache.
        self.block = max(1, COLUMN_FLOATS // (step * self.k * c))
        self.local = threading.local()

    def buffer(self, name, shape, dtype):
        """A buffer of this thread reused by its chunks (contents undefined)."""
        key = (name, shape, dtype)
        buffers = getattr(self.local, "buffers", None)
        if buffers is None:
            buffers = self.local.buffers = {}
        if key not in buffers:
            buffers[key] = torch.empty(shape, dtype=dtype, device=self.device)
        return buffers[key]

    def rows(self, input, n0, n1):
        """Samples ``n0:n1`` as rows ``[n*Go*(H+4)*(W+4), C/Go]`` with a zero border (a
        buffer of this thread: its border is zeroed once)."""
        n, c, h, w = input[n0:n1].shape
        go = self.offset_groups
        shape = (n, go, h + 2 * BORDER, self.width, c // go)
        buffers = getattr(self.local, "rows", None)
        if buffers is None:
            buffers = self.local.rows = {}
        rows = buffers.get(shape)
        if rows is None:
            rows = buffers[shape] = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.interior(rows).copy_(input[n0:n1].view(n, go, c // go, h, w).permute(0, 1, 3, 4, 2))
        return rows.view(-1, c // go)

    def interior(self, rows):
        """``[n, Go, H, W, C/Go]`` view of the image cells of ``rows [n, Go, H+4, W+4, C/Go]``."""
        h, w = self.size
        return rows[:, :, BORDER : BORDER + h, BORDER : BORDER + w]

    def cell_table(self, planes):
        """``[planes, P, K]`` int64: the part of each point's top-left corner row that
        does not depend on its offset (plane, border, and ``base`` when shifted)."""
        table = self.cell_tables.get(planes)
        if table is None:
            first = torch.arange(planes, device=self.device, dtype=torch.int64) * self.plane_rows
            table = self.cell_tables[planes] = self.cell_base + first[:, None, None]
        return table

    def points(self, offset, n0, n1, p0=0, p1=None, finite=None, index_dtype=torch.int64) -> _Points:
        """Sample points of samples ``n0:n1``, positions ``p0:p1``: floors and border
        tests exactly as the reference's (see ``__init__``). ``finite``: whether the
        offsets are known to be finite (None: find out); ``index_dtype``: of the corner rows."""
        p1 = self.positions if p1 is None else p1
        n, go, k, p = n1 - n0, self.offset_groups, self.k, p1 - p0
        q = n * go * p * k
        dtype = self.points_dtype
        z = self.buffer("z", (2, n, go, p, k), dtype)
        z.copy_(offset[n0:n1].view(n, go, k, 2, self.positions)[..., p0:p1].permute(3, 0, 1, 4, 2))
        grid = z.view(2, n * go, p * k)  # rows of contiguous (position, tap) runs
        lower = self.lower[:, p0:p1].reshape(2, 1, p * k)
        upper = self.upper[:, p0:p1].reshape(2, 1, p * k)
        if not self.shift_base:
            grid.add_(self.base[:, p0:p1].reshape(2, 1, p * k))
        z = z.view(2, q)
        not_a_point = None
        if not (_finite(z) if finite is None else finite):
            nan = torch.isnan(grid)
            not_a_point = nan.any(0).view(q)
            grid.copy_(torch.where(nan, lower, grid))  # a NaN point reads the zero border
        torch.clamp(grid, min=lower, max=upper, out=grid)
        floors = torch.floor(z, out=self.buffer("floors", (2, q), dtype))
        fractions = self.buffer("fractions", (2, 2, q), dtype)
        torch.sub(z, floors, out=fractions[1])
        if self.shift_base:  # floor + 1 - z: 0 only where it is 0
            torch.sub(floors, z, out=fractions[0]).add_(1)
        else:  # as the reference
            torch.sub(1, fractions[1], out=fractions[0])
        # Top-left corner row in the chunk's rows: plane (n, g), border included.
        cell = torch.add(floors[1], floors[0], alpha=self.width).to(index_dtype).view(n * go, p, k)
        cell.add_(self.cell_table(n * go)[:, p0:p1])
        corners = torch.add(cell.view(q, 1), self.shifts.to(index_dtype),
                            out=self.buffer("corners", (q, 4), index_dtype))
        base = self.floor_base[:, None, p0:p1] if self.shift_base else self.floor_base
        return _Points(corners, floors, base, fractions, not_a_point)

    def modulation(self, mask, n0, n1, p0=0, p1=None):
        """``[n, Go, P, K]`` view of the mask values in point order, or None."""
        if mask is None:
            return None
        p1 = self.positions if p1 is None else p1
        n, go, k = n1 - n0, self.offset_groups, self.k
        return mask[n0:n1].view(n, go, k, self.positions)[..., p0:p1].transpose(2, 3)

    def columns(self, values, n):
        """``[n*Go*P*K, C/Go]`` (point order) -> ``[n, P, K*C]`` (torchvision's columns)."""
        go, k, cg = self.offset_groups, self.k, values.shape[-1]
        p = values.shape[0] // (n * go * k)
        if go == 1:
            return values.view(n, p, k * cg)
        return values.view(n, go, p, k, cg).permute(0, 2, 3, 1, 4).reshape(n, p, k * go * cg).contiguous()

    def point_rows(self, cols):
        """Inverse of :meth:`columns`."""
        n, p, kc = cols.shape
        go, k = self.offset_groups, self.k
        if go == 1:
            return cols.view(n * p * k, kc // k)
        cg = kc // (k * go)
        return cols.view(n, p, k, go, cg).permute(0, 3, 1, 2, 4).reshape(n * go * p * k, cg).contiguous()


def _finite(t):
    """Whether ``t`` (or None) is finite; a sum that overflows only costs an exact detour."""
    return t is None or bool(torch.isfinite(t.sum()))


# ----------------------------------------------------------------------------- data work


def _corner_weights(points, modulation, exact_mask, dtype):
    """``(weights [4, Q], per_point [Q, 4], mask [Q] or None)``: the corner weights
    (bilinear times the mask unless ``exact_mask``, which leaves the mask to be applied to
    the samples; NaN for NaN points), the same point-major in ``dtype`` for the gather,
    and the mask in point order. ``modulation``: ``[n, Go, P, K]`` view or None."""
    weights = points.weights()
    by_point = None
    if modulation is not None:
        by_point = torch.empty(weights.shape[1], dtype=weights.dtype, device=weights.device)
        by_point.view(modulation.shape).copy_(modulation)
        if not exact_mask:
            weights.mul_(by_point)
    per_point = torch.empty((weights.shape[1], 4), dtype=dtype, device=weights.device)
    return weights, per_point.copy_(weights.t()), by_point


def _gather(rows, corners, per_point, outside, by_point):
    """``[Q, C/Go]``: each point's corner rows weighted and summed (one embedding bag per
    point); points ``outside`` (or None) give 0 whatever their corners hold, ``by_point``
    (or None) multiplies the samples."""
    values = F.embedding_bag(corners, rows, mode="sum", per_sample_weights=per_point)
    if outside is not None:  # a non-finite border cell must not leak into points outside
        values.masked_fill_(outside[:, None], 0.0)
    if by_point is not None:
        values.mul_(by_point[:, None].to(rows.dtype))
    return values


def _sampled(rows, points, modulation, size):
    """The samples times the mask, ``[Q, C/Go]`` in point order, and the corner weights
    ``[4, Q]`` (bilinear times the mask; NaN for NaN points). ``modulation``: ``[n, Go,
    P, K]`` view or None."""
    exact_mask = not _finite(modulation)
    weights, per_point, by_point = _corner_weights(points, modulation, exact_mask, rows.dtype)
    outside = points.outside(size) if not _finite(rows) else None
    values = _gather(rows, points.corners, per_point, outside, by_point if exact_mask else None)
    if exact_mask:
        weights.mul_(by_point)
    return values, weights


def forward(input, offset, weight, mask, geometry, groups, offset_groups):
    """``[N, C, H, W]``, ``[N, 2*Go*K, oh, ow]``, ``[O, C/G, kh, kw]``, mask ``[N, Go*K,
    oh, ow]`` or None -> ``[N, O, oh, ow]`` in the input dtype.

    A chunk's sample points are computed at once; its positions are then gathered and
    multiplied in blocks (:data:`COLUMN_FLOATS`), which bounds the columns' memory."""
    plan = _Plan(input, offset, weight, geometry, groups, offset_groups)
    n, o = input.shape[0], weight.shape[0]
    out = torch.empty((n, o, plan.positions), dtype=plan.dtype, device=input.device)

    def chunk(n0, n1):
        rows = plan.rows(input, n0, n1)
        modulation = plan.modulation(mask, n0, n1)
        exact_mask = not _finite(modulation)
        points = plan.points(offset, n0, n1, index_dtype=plan.index_dtype)
        _, per_point, by_point = _corner_weights(points, modulation, exact_mask, rows.dtype)
        outside = points.outside(plan.size) if not _finite(rows) else None
        planes, p_all, k = (n1 - n0) * plan.offset_groups, plan.positions, plan.k
        for p0 in range(0, p_all, plan.block):
            p1 = min(p0 + plan.block, p_all)

            def block(t):  # the block's points of a point-major tensor
                if p1 - p0 == p_all:
                    return t
                return t.view(planes, p_all, k, *t.shape[1:])[:, p0:p1].reshape(-1, *t.shape[1:])

            values = _gather(rows, block(points.corners), block(per_point),
                             None if outside is None else block(outside),
                             block(by_point) if exact_mask else None)
            plan.kernel.apply(plan.columns(values, n1 - n0), out[n0:n1, :, p0:p1])

    workers.run(chunk, plan.chunks, input.device)
    return out.view(n, o, *plan.out_size).to(input.dtype)


def _scatter_sorted(grads, points, weights, rows_in_chunk, width):
    """Input-gradient rows ``[rows_in_chunk, C/Go]``: ``sum weights[corner, q] *
    grads[q]`` onto each point's corner rows, as gathers over points sorted by cell: one
    per corner, each summing per cell, shifted onto the corner's row."""
    q = grads.shape[0]
    key = points.cell.to(torch.int32)
    if q < RADIX_KEYS:  # padding keys past every cell sort last
        key = torch.cat((key, key.new_full((RADIX_KEYS - q,), rows_in_chunk)))
    order = torch.sort(key, stable=True).indices[:q]
    counts = torch.bincount(key[:q], minlength=rows_in_chunk)
    starts = counts.cumsum(0).sub_(counts)
    sorted_weights = weights.index_select(1, order).to(grads.dtype)  # [4, Q]
    result = None
    for corner, shift in enumerate((0, 1, width, width + 1)):
        plane = F.embedding_bag(order, grads, starts, mode="sum",
                                per_sample_weights=sorted_weights[corner])
        if result is None:
            result = plane
        else:
            result[shift:].add_(plane[: rows_in_chunk - shift])
    return result


def _scatter_exact(grads, points, weights, rows_in_chunk, size):
    """:func:`_scatter_sorted` for column gradients or a mask that may be non-finite: only
    corners whose two weight factors are > 0 receive anything (the others go to a border
    row that is dropped), so a zero weight never turns an infinity into NaN."""
    result = grads.new_zeros((rows_in_chunk, grads.shape[1]))
    border = torch.zeros_like(points.cell)  # row (-2, -2) of the first plane
    contributes = points.contributes(size)
    for corner in range(4):
        target = torch.where(contributes[corner], points.corners[:, corner], border)
        result.index_add_(0, target, grads * weights[corner, :, None].to(grads.dtype))
    return result


def backward(grad_out, input, offset, weight, mask, geometry, groups, offset_groups):
    """Gradients of :func:`forward`: ``(grad_input, grad_offset, grad_weight, grad_mask)``,
    ``grad_mask`` None without a mask."""
    plan = _Plan(input, offset, weight, geometry, groups, offset_groups)
    o = weight.shape[0]
    grad_input = torch.empty_like(input, memory_format=torch.contiguous_format)
    grad_offset = torch.empty_like(offset, memory_format=torch.contiguous_format)
    grad_mask = None if mask is None else torch.empty_like(mask, memory_format=torch.contiguous_format)
    limit = torch.finfo(plan.dtype).max / (4 * o)

    def chunk(n0, n1):
        rows = plan.rows(input, n0, n1)
        points = plan.points(offset, n0, n1)
        modulation = plan.modulation(mask, n0, n1)
        values, weights = _sampled(rows, points, modulation, plan.size)
        grad = grad_out[n0:n1].to(plan.dtype).reshape(n1 - n0, o, plan.positions)
        grad_cols, grad_matrix = plan.kernel.backward(grad, plan.columns(values, n1 - n0))
        point_grads = plan.point_rows(grad_cols)  # [Q, C/Go]
        q = point_grads.shape[0]
        # The column gradients are finite when |grad| * |weight| * O cannot overflow.
        bound = grad.abs().amax() * plan.kernel.matrix.abs().amax() if grad.numel() else 0.0
        finite_grads_and_mask = bool(bound < limit) and _finite(modulation)
        chunk_mask = None if mask is None else grad_mask[n0:n1]
        flat_mask = None if modulation is None else modulation.reshape(-1)
        if finite_grads_and_mask:
            # E[corner, q] = grad_cols[q] . corner row (the mask is not in it)
            products = torch.ops.aten._embedding_bag_per_sample_weights_backward(
                point_grads, rows, points.corners.view(-1),
                torch.arange(0, 4 * q, 4, device=rows.device),
                torch.arange(q, device=rows.device).repeat_interleave(4), 0, -1,
            )
            products = torch.empty((4, q), dtype=points.fractions.dtype, device=rows.device).copy_(
                products.view(q, 4).t())
            _offset_and_mask_grads(points, products, flat_mask, not _finite(rows), plan,
                                   grad_offset[n0:n1], chunk_mask)
        else:
            _exact_offset_and_mask_grads(point_grads, rows, points, flat_mask, plan,
                                         grad_offset[n0:n1], chunk_mask)
        if finite_grads_and_mask:
            # NaN points and zero-weight corners only reach the border, which is dropped
            grad_rows = _scatter_sorted(point_grads, points, weights, rows.shape[0], plan.width)
        else:
            grad_rows = _scatter_exact(point_grads, points, weights, rows.shape[0], plan.size)
        c = input.shape[1]
        grad_rows = plan.interior(grad_rows.view(n1 - n0, plan.offset_groups, -1, plan.width,
                                                 c // plan.offset_groups))
        grad_input[n0:n1] = grad_rows.permute(0, 1, 4, 2, 3).reshape(n1 - n0, c, *plan.size)
        return grad_matrix

    partials = workers.run(chunk, plan.chunks, input.device)
    grad_matrix = partials[0] if partials else torch.zeros_like(plan.kernel.matrix)
    for partial in partials[1:]:  # in chunk order: deterministic
        grad_matrix += partial
    return grad_input, grad_offset, plan.kernel.grad(grad_matrix, weight.dtype), grad_mask


def _offset_and_mask_grads(points, corner_products, modulation, exact_input, plan, grad_offset,
                           grad_mask):
    """Offset and mask gradients of a chunk from ``E[corner, q]`` (in the points' dtype),
    written into ``grad_offset [n, 2*Go*K, oh, ow]`` and ``grad_mask [n, Go*K, oh, ow]``."""
    e = corner_products.view(2, 2, -1)  # [corner row, corner column, Q]
    (hy, hx), (ly, lx) = points.fractions
    # d weight / dy of the corners: -hx, -lx, hx, lx; d / dx: -hy, hy, -ly, ly
    d_both = torch.empty((2, e.shape[2]), dtype=e.dtype, device=e.device)  # [2, Q]
    torch.sub(e[1, 0], e[0, 0], out=d_both[0]).mul_(hx).addcmul_(e[1, 1] - e[0, 1], lx)
    torch.sub(e[0, 1], e[0, 0], out=d_both[1]).mul_(hy).addcmul_(e[1, 1] - e[1, 0], ly)
    if modulation is not None:
        d_both.mul_(modulation)
    sample_grad = None
    if grad_mask is not None:
        sample_grad = (points.weights() * corner_products).sum(0)  # sum_c grad_cols * sample
        if exact_input:  # the sample of a point outside is 0, whatever its corners hold
            sample_grad.masked_fill_(points.outside(plan.size), 0.0)
    _write_offset_and_mask_grads(d_both, sample_grad, points, plan, grad_offset, grad_mask)


def _write_offset_and_mask_grads(d_both, sample_grad, points, plan, grad_offset, grad_mask):
    """``d_both [2, Q]`` (d/dy, d/dx) and ``sample_grad [Q]`` (float64, point order) into
    ``grad_offset`` and ``grad_mask``; NaN offset gradients for NaN points."""
    n, go, k, p = grad_offset.shape[0], plan.offset_groups, plan.k, plan.positions
    if points.not_a_point is not None:
        d_both.masked_fill_(points.not_a_point, torch.nan)
    grad_offset.view(n, go, k, 2, p).copy_(d_both.view(2, n, go, p, k).permute(1, 2, 4, 0, 3))
    if grad_mask is not None:
        grad_mask.view(n, go, k, p).copy_(sample_grad.view(n, go, p, k).transpose(2, 3))


#: Points per step of :func:`_exact_offset_and_mask_grads` (its corner values are
#: ``[points, 4, C/Go]`` float64).
EXACT_POINTS = 1 << 12


def _exact_offset_and_mask_grads(point_grads, rows, points, modulation, plan, grad_offset,
                                 grad_mask):
    """:func:`_offset_and_mask_grads` for column gradients or a mask that may be infinite
    or NaN, in the reference's order: per channel the corners' weighted sum first (finite for finite
    data), then its product with the column gradient (times the mask), then the sum over
    channels. The fast form sums the channels per corner first, so an infinite column
    gradient gives differences of infinities (NaN where the reference has inf), its mask
    gradient meets zero corner weights, and an infinite mask multiplies the channels' sum
    rather than each channel's term (inf where the reference has inf - inf)."""
    q = point_grads.shape[0]
    (hy, hx), (ly, lx) = points.fractions
    weights = points.weights()  # [4, Q], NaN for NaN points
    outside = points.outside(plan.size)
    d_both = torch.empty((2, q), dtype=torch.float64, device=rows.device)
    sample_grad = None if grad_mask is None else torch.empty_like(d_both[0])
    for start in range(0, q, EXACT_POINTS):
        s = slice(start, start + EXACT_POINTS)
        v = rows[points.corners[s]].double()  # [q, 4, C/Go]: (y0, x0), (y0, x0+1), (y0+1, ...)
        g = point_grads[s].double()
        scaled = g if modulation is None else g * modulation[s, None].double()
        # d weight / dy of the corners: -hx, -lx, hx, lx; d / dx: -hy, hy, -ly, ly
        d_y = (-hx[s, None] * v[:, 0] - lx[s, None] * v[:, 1] + hx[s, None] * v[:, 2]
               + lx[s, None] * v[:, 3])
        d_x = (-hy[s, None] * v[:, 0] + hy[s, None] * v[:, 1] - ly[s, None] * v[:, 2]
               + ly[s, None] * v[:, 3])
        d_both[0, s] = (scaled * d_y).sum(1)
        d_both[1, s] = (scaled * d_x).sum(1)
        if sample_grad is not None:
            sample = (weights[:, s].t()[:, :, None] * v).sum(1)  # [q, C/Go]
            sample.masked_fill_(outside[s, None], 0.0)  # the border rule: 0 outside
            sample_grad[s] = (g * sample).sum(1)
    _write_offset_and_mask_grads(d_both, sample_grad, points, plan, grad_offset, grad_mask)
