"""Deformable convolution in vectorised torch: the ``impl="native"`` contract functions.

``forward(input, offset, weight, mask, geometry, groups, offset_groups) -> out`` and
``backward(grad_out, input, offset, weight, mask, geometry, groups, offset_groups) ->
(grad_input, grad_offset, grad_weight, grad_mask or None)``; no autograd inside, bias
not included (the op adds it). Semantics and gradient conventions are torchvision's, as
docs/deform.md and ``reference/deform.py`` state them.

How it runs, per kernel tap:

- The input is stored once channels-last with a zero border of one cell
  (:class:`PaddedRows`): row ``(plane, r, c)`` holds the ``C/Go`` channels of one cell of
  one offset group's plane. A sample point's four bilinear corners are the rows ``cell``,
  ``cell + 1``, ``cell + W + 2`` and ``cell + W + 3``: four row gathers per tap fetch them
  for every point; corners off the image read the border. Points with no corner on the
  image use a block of zero rows after the image.
- The sample is the four corners weighted (mask folded into the weights), and the output
  gets ``sample @ weight[:, :, i, j].T``: a matmul over channels, as in a convolution.
- Backward gathers the corners again; ``E[p, corner] = sum_c grad_cols[p, c] *
  value[corner, p, c]`` (a batched matmul) gives the offset and mask gradients, and the
  input gradient is scattered back onto the corner rows.

Sample coordinates, bilinear weights and their derivatives are computed in float64 from
the offsets (``[K, N, Go, oh*ow]``, small), so floors and border tests agree with the
reference whatever the input dtype. Bulk work runs in the input dtype (float32 for
float16/bfloat16). Memory: the padded input and ``[4, N*Go*oh*ow, C/Go]`` buffers for one
tap; no tensor grows with the number of taps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..common import compute_dtype


class PaddedRows:
    """The input as rows ``[N*Go*(H+2)*(W+2) + W+4, C/Go]``: channels-last planes with a
    zero border, then zero rows (all four corners of a point with none on the image)."""

    def __init__(self, input, offset_groups, dtype):
        n, c, h, w = input.shape
        self.shape = (n * offset_groups, h, w, c // offset_groups)
        planes, h, w, cg = self.shape
        self.zero_row = planes * (h + 2) * (w + 2)
        #: Row offsets of a cell's corners (y0, x0), (y0, x0+1), (y0+1, x0), (y0+1, x0+1).
        self.corners = (0, 1, w + 2, w + 3)
        self.rows = torch.zeros((self.zero_row + w + 4, cg), dtype=dtype, device=input.device)
        grid = self.grid(self.rows)
        grid[:, 1 : h + 1, 1 : w + 1] = (
            input.view(n, offset_groups, cg, h, w).permute(0, 1, 3, 4, 2).reshape(planes, h, w, cg)
        )

    def grid(self, rows):
        """``[planes, H+2, W+2, C/Go]`` view of ``rows``' image part."""
        planes, h, w, cg = self.shape
        return rows[: self.zero_row].view(planes, h + 2, w + 2, cg)

    def gather(self, cells, out):
        """``out[corner, p] = rows[cells[p] + corner offset]``; ``out`` is ``[4, P, C/Go]``."""
        for corner, shift in enumerate(self.corners):
            torch.index_select(self.rows, 0, cells + shift, out=out[corner])
        return out

    def unpad(self, rows):
        """``[planes, H, W, C/Go]`` image part of ``rows`` without the border."""
        planes, h, w, cg = self.shape
        return self.grid(rows)[:, 1 : h + 1, 1 : w + 1]


@dataclass
class Points:
    """Every tap's sample points: ``[K, N*Go*P]`` per field, points in ``(n, g, p)`` order."""

    rows: torch.Tensor  # top-left corner row of each point whose cell touches the image, else zero row
    sample_rows: torch.Tensor  # the same, but the zero row for points outside (sample 0)
    ly: torch.Tensor  # float64 fractional parts of the (clamped) coordinates
    lx: torch.Tensor
    outside: torch.Tensor  # bool, sample is 0 by the border rule (never a NaN point)
    not_a_point: torch.Tensor  # bool, a NaN coordinate

    def weights(self, scale=None, nan_points=torch.nan):
        """``[K, 4, NGP]`` float64 bilinear weights of corners ``(y0, x0), (y0, x0+1),
        (y0+1, x0), (y0+1, x0+1)``, times ``scale`` (the mask); 0 for points outside,
        ``nan_points`` for NaN points."""
        factor = torch.where(self.not_a_point, nan_points, (~self.outside).to(self.ly.dtype))
        if scale is not None:
            factor = factor * scale
        return _corner_products(1 - self.ly, self.ly, 1 - self.lx, self.lx, factor)

    def derivatives(self):
        """``d weight / d y`` and ``d weight / d x`` of each corner, ``[K, 4, NGP]``."""
        hy, hx = 1 - self.ly, 1 - self.lx
        d_dy = torch.stack([-hx, -self.lx, hx, self.lx], dim=1)
        d_dx = torch.stack([-hy, hy, -self.ly, self.ly], dim=1)
        return d_dy, d_dx


def _corner_products(hy, ly, hx, lx, factor):
    out = torch.empty((hy.shape[0], 4, hy.shape[1]), dtype=hy.dtype, device=hy.device)
    top, bottom = hy * factor, ly * factor
    torch.mul(top, hx, out=out[:, 0])
    torch.mul(top, lx, out=out[:, 1])
    torch.mul(bottom, hx, out=out[:, 2])
    torch.mul(bottom, lx, out=out[:, 3])
    return out


def sample_points(offset, geometry, in_size, offset_groups, image) -> Points:
    """Where every tap of every output samples ``image`` (a :class:`PaddedRows`), from
    ``offset [N, 2*Go*K, oh, ow]``, in float64."""
    n = offset.shape[0]
    (kh, kw), (oh, ow) = geometry.kernel, geometry.out_size
    h, w = in_size
    k = kh * kw
    # [2, K, N, Go, oh, ow], contiguous so that everything derived is laid out tap-major
    off = offset.view(n, offset_groups, k, 2, oh, ow).permute(3, 2, 0, 1, 4, 5)
    off = off.to(torch.float64, memory_format=torch.contiguous_format)
    device = offset.device
    taps_i = torch.arange(kh, device=device).repeat_interleave(kw)
    taps_j = torch.arange(kw, device=device).repeat(kh)
    base_y = (torch.arange(oh, device=device)[None] * geometry.stride[0] - geometry.pad_before[0]
              + taps_i[:, None] * geometry.dilation[0])  # [K, oh]
    base_x = (torch.arange(ow, device=device)[None] * geometry.stride[1] - geometry.pad_before[1]
              + taps_j[:, None] * geometry.dilation[1])  # [K, ow]
    y = off[0] + base_y[:, None, None, :, None]  # [K, N, Go, oh, ow]
    x = off[1] + base_x[:, None, None, None, :]
    not_a_point = torch.isnan(y) | torch.isnan(x)
    # Clamping keeps far points off the image (every corner outside) and castable to int.
    y = torch.where(not_a_point, -2.0, y).clamp_(-2.0, h + 1.0)
    x = torch.where(not_a_point, -2.0, x).clamp_(-2.0, w + 1.0)
    outside = ((y <= -1) | (y >= h) | (x <= -1) | (x >= w)) & ~not_a_point
    y0, x0 = torch.floor(y), torch.floor(x)
    touches = (y0 >= -1) & (y0 <= h - 1) & (x0 >= -1) & (x0 <= w - 1)
    planes = torch.arange(n * offset_groups, device=device).view(1, n, offset_groups, 1, 1)
    cell = (planes * (h + 2) + (y0.long() + 1)) * (w + 2) + (x0.long() + 1)
    rows = torch.where(touches, cell, image.zero_row)
    sample_rows = torch.where(outside, image.zero_row, rows)  # NaN points: zero row already
    points = n * offset_groups * oh * ow
    fields = (rows, sample_rows, y - y0, x - x0, outside, not_a_point)
    return Points(*(field.reshape(k, points) for field in fields))


def _tap_mask(mask, offset_groups, k):
    """``[K, N*Go*P]`` float64 modulation, or None."""
    if mask is None:
        return None
    n, positions = mask.shape[0], mask.shape[2] * mask.shape[3]
    modulation = mask.to(torch.float64).view(n, offset_groups, k, positions).permute(2, 0, 1, 3)
    return modulation.reshape(k, n * offset_groups * positions)


def _to_channel_rows(points_major, n, offset_groups, positions):
    """``[N*Go*P, C/Go]`` (point-major per offset group) -> ``[N*P, C]``."""
    if offset_groups == 1:
        return points_major.view(n * positions, points_major.shape[1])
    cg = points_major.shape[1]
    grouped = points_major.view(n, offset_groups, positions, cg).transpose(1, 2)
    return grouped.reshape(n * positions, offset_groups * cg)


def _to_point_rows(channel_rows, n, offset_groups, positions):
    """Inverse of :func:`_to_channel_rows`."""
    if offset_groups == 1:
        return channel_rows
    c = channel_rows.shape[1]
    grouped = channel_rows.view(n, positions, offset_groups, c // offset_groups).transpose(1, 2)
    return grouped.reshape(n * offset_groups * positions, c // offset_groups)


def _weigh_corners(values, weights, out):
    """``out[p] = sum_corner weights[corner, p] * values[corner, p]``; values ``[4, P, C]``."""
    torch.mul(values[0], weights[0, :, None], out=out)
    for corner in range(1, 4):
        out.addcmul_(values[corner], weights[corner, :, None])
    return out


def _group_slices(out_channels, in_channels, groups):
    og, cg = out_channels // groups, in_channels // groups
    return [(slice(g * og, (g + 1) * og), slice(g * cg, (g + 1) * cg)) for g in range(groups)]


def _channels_last(t):
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def forward(input, offset, weight, mask, geometry, groups, offset_groups):
    """``[N, C, H, W]``, ``[N, 2*Go*K, oh, ow]``, ``[O, C/G, kh, kw]``, mask ``[N, Go*K,
    oh, ow]`` or None -> ``[N, O, oh, ow]`` in the input dtype."""
    dtype = compute_dtype(input.dtype)
    n, c, h, w = input.shape
    o, (kh, kw), (oh, ow) = weight.shape[0], geometry.kernel, geometry.out_size
    positions, k = oh * ow, kh * kw
    image = PaddedRows(input.to(dtype), offset_groups, dtype)
    points = sample_points(offset, geometry, (h, w), offset_groups, image)
    weights = points.weights(_tap_mask(mask, offset_groups, k)).to(dtype)
    kernel = weight.to(dtype)
    cg, count = c // offset_groups, n * offset_groups * positions
    values = torch.empty((4, count, cg), dtype=dtype, device=input.device)
    sample = torch.empty((count, cg), dtype=dtype, device=input.device)
    out = torch.zeros((n * positions, o), dtype=dtype, device=input.device)
    slices = _group_slices(o, c, groups)
    for t, (i, j) in enumerate(geometry.taps()):
        _weigh_corners(image.gather(points.sample_rows[t], values), weights[t], sample)
        cols = _to_channel_rows(sample, n, offset_groups, positions)
        for out_part, in_part in slices:
            out[:, out_part].addmm_(cols[:, in_part], kernel[out_part, :, i, j].t())
    out = out.view(n, oh, ow, o).permute(0, 3, 1, 2).contiguous()
    return out.to(input.dtype)


def backward(grad_out, input, offset, weight, mask, geometry, groups, offset_groups):
    """Gradients of :func:`forward`: ``(grad_input, grad_offset, grad_weight, grad_mask)``,
    ``grad_mask`` None without a mask."""
    dtype = compute_dtype(input.dtype)
    n, c, h, w = input.shape
    o, (kh, kw), (oh, ow) = weight.shape[0], geometry.kernel, geometry.out_size
    positions, k = oh * ow, kh * kw
    x = input.to(dtype)
    image = PaddedRows(x, offset_groups, dtype)
    points = sample_points(offset, geometry, (h, w), offset_groups, image)
    tap_mask = _tap_mask(mask, offset_groups, k)
    sample_weights = points.weights(tap_mask).to(dtype)
    scatter_weights = points.weights(tap_mask, nan_points=0.0).to(dtype)  # NaN points add nothing
    input_finite = bool(torch.isfinite(x.sum()))  # an overflowing sum only costs a masked_fill
    grad = _channels_last(grad_out.to(dtype))
    kernel = weight.to(dtype)
    cg, count = c // offset_groups, n * offset_groups * positions
    values = torch.empty((4, count, cg), dtype=dtype, device=input.device)
    sample = torch.empty((count, cg), dtype=dtype, device=input.device)
    spread = torch.empty((count, cg), dtype=dtype, device=input.device)
    grad_cols = torch.empty((n * positions, c), dtype=dtype, device=input.device)
    # corner_grads[t, p, corner] = sum_c grad_cols[p, c] * values[corner, p, c]
    corner_grads = torch.empty((k, count, 4), dtype=dtype, device=input.device)
    grad_rows = torch.zeros_like(image.rows)
    grad_w = torch.zeros_like(kernel)
    slices = _group_slices(o, c, groups)
    for t, (i, j) in enumerate(geometry.taps()):
        cells = points.rows[t]
        image.gather(cells, values)
        if groups == 1:
            torch.mm(grad, kernel[:, :, i, j], out=grad_cols)
        else:
            for out_part, in_part in slices:
                grad_cols[:, in_part] = grad[:, out_part] @ kernel[out_part, :, i, j]
        point_grads = _to_point_rows(grad_cols, n, offset_groups, positions)
        torch.bmm(values.transpose(0, 1), point_grads[:, :, None], out=corner_grads[t, :, :, None])
        _weigh_corners(values, sample_weights[t], sample)
        if not input_finite:  # a NaN border cell must not leak into points outside
            sample.masked_fill_(points.outside[t][:, None], 0.0)
        cols = _to_channel_rows(sample, n, offset_groups, positions)
        for out_part, in_part in slices:
            grad_w[out_part, :, i, j] = grad[:, out_part].t() @ cols[:, in_part]
        for corner, shift in enumerate(image.corners):
            torch.mul(point_grads, scatter_weights[t, corner, :, None], out=spread)
            grad_rows.index_add_(0, cells + shift, spread)
    grad_input = image.unpad(grad_rows).reshape(n, offset_groups, h, w, cg)
    grad_input = grad_input.permute(0, 1, 4, 2, 3).reshape(n, c, h, w).to(input.dtype)
    per_corner = corner_grads.transpose(1, 2).to(torch.float64)  # [K, 4, NGP]
    d_dy, d_dx = points.derivatives()
    modulation = 1.0 if tap_mask is None else tap_mask
    nan = points.not_a_point
    grad_offset = torch.stack([torch.where(nan, torch.nan, modulation * (d * per_corner).sum(1))
                               for d in (d_dy, d_dx)], dim=1)  # [K, 2, NGP]
    grad_offset = grad_offset.view(k, 2, n, offset_groups, positions).permute(2, 3, 0, 1, 4)
    grad_offset = grad_offset.reshape(offset.shape).to(offset.dtype)
    grad_mask = None
    if mask is not None:
        grad_mask = torch.where(points.outside, 0.0, (points.weights() * per_corner).sum(1))
        grad_mask = grad_mask.view(k, n, offset_groups, positions).permute(1, 2, 0, 3)
        grad_mask = grad_mask.reshape(mask.shape).to(mask.dtype)
    return grad_input, grad_offset, grad_w.to(weight.dtype), grad_mask
