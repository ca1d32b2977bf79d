"""Deformable convolution in vectorised torch: the ``impl="native"`` contract functions.

``forward(input, offset, weight, mask, geometry, groups, offset_groups) -> out`` and
``backward(grad_out, input, offset, weight, mask, geometry, groups, offset_groups) ->
(grad_input, grad_offset, grad_weight, grad_mask or None)``; no autograd inside, bias
not included (the op adds it). Semantics and gradient conventions are torchvision's, as
``docs/deform.md`` and ``reference/deform.py`` state them.

How it runs, per chunk of samples (:func:`_chunks`):

- The chunk's input is stored channels-last with a zero border of two cells
  (:meth:`_Plan.rows`): row ``(plane, r, c)`` holds the ``C/Go`` channels of one cell of
  one offset group's plane. Sample coordinates are clamped to ``[-2, H] x [-2, W]``
  (which keeps every point on the same side of the border rule), so the four bilinear
  corners of every point are the rows ``cell, cell + 1, cell + W+4, cell + W+5`` of its
  own plane, and a corner off the image reads the border: no bounds test on the data.
- Gather: ``F.embedding_bag`` with one bag of four corners per (sample, position, tap)
  and the bilinear weights times the mask as per-sample weights writes torchvision's
  "columns" ``[n, oh*ow, K*C]``; the output is one matrix product per sample with the
  weight as ``[O, K*C]``, so the multiply-adds run in the BLAS as in a convolution.
- Backward: the column gradient ``grad_out^T @ W`` and the weight gradient
  ``grad_out @ columns`` are matrix products (the columns are gathered again);
  ``E[q, corner] = grad_cols[q] . corner row`` (aten's gradient of an embedding bag
  w.r.t. its per-sample weights) gives the offset and mask gradients with the float64
  bilinear weights and their derivatives; the input gradient, the transpose of the
  gather, is a gather too: points sorted by their top-left cell (a stable sort, so each
  sum has a fixed order and the result is deterministic), one ``embedding_bag`` sums per
  cell each corner's weighted column gradients (four planes), and the planes, shifted by
  the corner offsets, add up to the gradient rows.

Chunks run on single-threaded worker threads (:mod:`.workers`) when there are enough of
them: no torch parallel region, so nothing stalls at a barrier when other processes
compete for the cores; the chunk order fixes every sum, so results do not depend on the
schedule.

Coordinates, bilinear weights and their derivatives are computed in float64 from the
offsets, so floors and border tests agree with the reference whatever the input dtype;
bulk work runs in the input dtype (float32 for float16/bfloat16). Non-finite data takes
exact detours, chosen per chunk from cheap sums: a NaN or infinite input cell could
leak through a zero weight into a point the border rule zeroes (those points are zeroed
after the gather), a non-finite mask is applied after sampling instead of folded into
the weights, and column gradients that may be non-finite go only to the corners whose
two weight factors are > 0 (``index_add_``, as the reference). Memory per chunk in
flight: the padded input, the ``[n, oh*ow, K*C]`` columns and their gradient, and the
float64 geometry of the chunk's points.
"""

from __future__ import annotations

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


# ----------------------------------------------------------------------------- geometry


@dataclass
class _Points:
    """The sample points of a chunk, ``Q = n * Go * oh*ow * K`` of them in that order.

    Geometry is kept row-wise (``[2, Q]``: y then x; ``[2, 2, Q]``: ``1 - frac`` then
    ``frac`` of y then x), so every elementwise step runs over contiguous rows."""

    corners: torch.Tensor  # [Q, 4] int64 rows of the chunk's rows read by each point
    coords: torch.Tensor  # [2, Q] float64 clamped coordinates
    floors: torch.Tensor  # [2, Q] float64 their floors
    fractions: torch.Tensor  # [2, 2, Q] float64 (1 - frac, frac) x (y, x)
    not_a_point: torch.Tensor | None  # [Q] bool, a NaN coordinate (None: offsets finite)

    @property
    def cell(self):
        """``[Q]`` top-left corner rows."""
        return self.corners[:, 0]

    def weights(self):
        """``[4, Q]`` float64 bilinear weights of the corners (NaN for NaN points)."""
        f = self.fractions
        weights = (f[:, 0, None] * f[None, :, 1]).view(4, -1)  # (hy, ly) x (hx, lx)
        if self.not_a_point is not None:
            weights.masked_fill_(self.not_a_point, torch.nan)
        return weights

    def outside(self, size):
        """``[Q]`` bool: the sample is 0 by the border rule (NaN points excluded)."""
        (y, x), (h, w) = self.coords, size
        out = (y <= -1) | (y >= h) | (x <= -1) | (x >= w)
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
        self.transposed = self.matrix[0].t().contiguous() if groups == 1 else None

    def _grouped(self, cols):
        """``[n, P, K*C]`` -> ``[G, n*P, K*C/G]``."""
        n, p, kc = cols.shape
        g, k = self.groups, self.k
        return cols.reshape(n * p, k, g, kc // (k * g)).permute(2, 0, 1, 3).reshape(g, n * p, kc // g)

    def apply(self, cols, out):
        """``out [n, O, P] = W @ cols[n]^T`` for ``cols [n, P, K*C]``."""
        if self.groups == 1:
            # cols @ W^T with both operands row-major, then transposed into place: the
            # BLAS runs this form ~10% faster than W @ cols^T at the benchmark's shape
            for s in range(cols.shape[0]):
                out[s].copy_(torch.mm(cols[s], self.transposed).t())
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
        #: [2, 1, 1, oh*ow, K]: unshifted y and x of every (position, tap)
        self.base = torch.stack((
            (out_y[:, None, None] + taps_i * geometry.dilation[0]).expand(oh, ow, self.k),
            (out_x[None, :, None] + taps_j * geometry.dilation[1]).expand(oh, ow, self.k),
        )).reshape(2, 1, 1, self.positions, self.k)
        #: Clamping bounds: a point at or beyond them samples 0 and has no derivative.
        self.lower = torch.full((1, 1), -2.0, device=device, dtype=f64)
        self.upper = torch.tensor((h, w), device=device, dtype=f64).view(2, 1)
        self.shifts = torch.tensor(self.corners, device=device, dtype=f64).view(4, 1)
        per_sample = offset_groups * self.positions * self.k
        step = max(1, POINTS_PER_CHUNK // max(per_sample, 1))
        self.chunks = [(n0, min(n0 + step, n)) for n0 in range(0, n, step)]

    def rows(self, input, n0, n1):
        """Samples ``n0:n1`` as rows ``[n*Go*(H+4)*(W+4), C/Go]`` with a zero border."""
        n, c, h, w = input[n0:n1].shape
        go = self.offset_groups
        rows = torch.zeros((n, go, h + 2 * BORDER, self.width, c // go), dtype=self.dtype,
                           device=self.device)
        self.interior(rows).copy_(input[n0:n1].view(n, go, c // go, h, w).permute(0, 1, 3, 4, 2))
        return rows.view(-1, c // go)

    def interior(self, rows):
        """``[n, Go, H, W, C/Go]`` view of the image cells of ``rows [n, Go, H+4, W+4, C/Go]``."""
        h, w = self.size
        return rows[:, :, BORDER : BORDER + h, BORDER : BORDER + w]

    def points(self, offset, n0, n1) -> _Points:
        """Sample points of samples ``n0:n1``, computed in float64."""
        n, go, k, p = n1 - n0, self.offset_groups, self.k, self.positions
        coords = torch.empty((2, n, go, p, k), dtype=torch.float64, device=offset.device)
        coords.copy_(offset[n0:n1].view(n, go, k, 2, p).permute(3, 0, 1, 4, 2)).add_(self.base)
        coords = coords.view(2, -1)
        not_a_point = None
        if not _finite(coords):
            not_a_point = torch.isnan(coords).any(0)
            coords = torch.nan_to_num(coords, nan=-2.0)  # a NaN point reads the zero border
        coords = torch.clamp(coords, min=self.lower, max=self.upper)
        floors = torch.floor(coords)
        fractions = torch.empty((2, *coords.shape), dtype=torch.float64, device=coords.device)
        torch.sub(coords, floors, out=fractions[1])
        torch.sub(1, fractions[1], out=fractions[0])
        # Top-left corner row in the chunk's rows: plane (n, g), border included.
        planes = torch.arange(n * go, device=coords.device, dtype=torch.float64)
        first_cell = planes * self.plane_rows + BORDER * self.width + BORDER
        cell = torch.add(floors[1], floors[0], alpha=self.width)
        cell = cell.view(n * go, -1).add_(first_cell[:, None]).view(-1)
        corners = torch.empty((cell.shape[0], 4), dtype=torch.int64, device=cell.device)
        corners.copy_((cell + self.shifts).t())
        return _Points(corners, coords, floors, fractions, not_a_point)

    def modulation(self, mask, n0, n1):
        """``[Q]`` mask values in point order, or None."""
        if mask is None:
            return None
        n, go, k, p = n1 - n0, self.offset_groups, self.k, self.positions
        return mask[n0:n1].view(n, go, k, p).transpose(2, 3).reshape(-1)

    def columns(self, values, n):
        """``[n*Go*P*K, C/Go]`` (point order) -> ``[n, P, K*C]`` (torchvision's columns)."""
        go, p, k, cg = self.offset_groups, self.positions, self.k, values.shape[-1]
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


def _sampled(rows, points, modulation, size):
    """The chunk's samples times the mask, ``[Q, C/Go]`` in point order, and the corner
    weights ``[4, Q]`` in float64 (bilinear times the mask; NaN for NaN points)."""
    exact_mask = not _finite(modulation)
    weights = points.weights()
    if modulation is not None and not exact_mask:
        weights.mul_(modulation)
    per_point = torch.empty((weights.shape[1], 4), dtype=rows.dtype, device=rows.device)
    values = F.embedding_bag(points.corners, rows, mode="sum",
                             per_sample_weights=per_point.copy_(weights.t()))
    if not _finite(rows):  # a non-finite border cell must not leak into points outside
        values.masked_fill_(points.outside(size)[:, None], 0.0)
    if exact_mask:
        values.mul_(modulation[:, None].to(rows.dtype))
        weights.mul_(modulation)
    return values, weights


def forward(input, offset, weight, mask, geometry, groups, offset_groups):
    """``[N, C, H, W]``, ``[N, 2*Go*K, oh, ow]``, ``[O, C/G, kh, kw]``, mask ``[N, Go*K,
    oh, ow]`` or None -> ``[N, O, oh, ow]`` in the input dtype."""
    plan = _Plan(input, offset, weight, geometry, groups, offset_groups)
    n, o = input.shape[0], weight.shape[0]
    out = torch.empty((n, o, plan.positions), dtype=plan.dtype, device=input.device)

    def chunk(n0, n1):
        points = plan.points(offset, n0, n1)
        values, _ = _sampled(plan.rows(input, n0, n1), points, plan.modulation(mask, n0, n1),
                             plan.size)
        plan.kernel.apply(plan.columns(values, n1 - n0), out[n0:n1])

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
        if finite_grads_and_mask:
            # E[corner, q] = grad_cols[q] . corner row (the mask is not in it)
            products = torch.ops.aten._embedding_bag_per_sample_weights_backward(
                point_grads, rows, points.corners.view(-1),
                torch.arange(0, 4 * q, 4, device=rows.device),
                torch.arange(q, device=rows.device).repeat_interleave(4), 0, -1,
            )
            products = torch.empty((4, q), dtype=torch.float64, device=rows.device).copy_(
                products.view(q, 4).t())
            _offset_and_mask_grads(points, products, modulation, not _finite(rows), plan,
                                   grad_offset[n0:n1], chunk_mask)
        else:
            _exact_offset_and_mask_grads(point_grads, rows, points, modulation, plan,
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
    """Offset and mask gradients of a chunk from ``E[corner, q]`` (float64), written into
    ``grad_offset [n, 2*Go*K, oh, ow]`` and ``grad_mask [n, Go*K, oh, ow]``."""
    e = corner_products.view(2, 2, -1)  # [corner row, corner column, Q]
    (hy, hx), (ly, lx) = points.fractions
    # d weight / dy of the corners: -hx, -lx, hx, lx; d / dx: -hy, hy, -ly, ly
    d_both = torch.empty((2, e.shape[2]), dtype=torch.float64, device=e.device)  # [2, Q]
    torch.mul(e[1, 0] - e[0, 0], hx, out=d_both[0]).addcmul_(e[1, 1] - e[0, 1], lx)
    torch.mul(e[0, 1] - e[0, 0], hy, out=d_both[1]).addcmul_(e[1, 1] - e[1, 0], ly)
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
