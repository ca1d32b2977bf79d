"""Deformable convolution in vectorised torch: the ``impl="native"`` contract functions.

``forward(input, offset, weight, mask, geometry, groups, offset_groups) -> out`` and
``backward(grad_out, input, offset, weight, mask, geometry, groups, offset_groups) ->
(grad_input, grad_offset, grad_weight, grad_mask or None)``; no autograd inside, bias
not included (the op adds it). Semantics and gradient conventions are torchvision's, as
SPEC.md and ``reference/deform.py`` state them.

How it runs, per kernel tap:

- The input, zero padded by one cell, is stored once as "quads" (:class:`Quads`): row
  ``(plane, r, c)`` holds the four cells ``(r, c), (r, c+1), (r+1, c), (r+1, c+1)`` of
  every channel of an offset group, contiguous. One row gather per sample point then
  fetches all four bilinear corners of all its channels; corners off the image read
  the zero border. A last all-zero row serves points with no corner on the image.
- The sample is the four corners weighted (mask folded into the weights), and the output
  gets ``sample @ weight[:, :, i, j].T``: a matmul over channels, as in a convolution.
- Backward gathers the same rows again; ``E[p, corner] = sum_c grad_cols[p, c] *
  value[p, corner, c]`` (a batched matmul) gives the offset and mask gradients, and the
  input gradient is scattered as one quad row per point, then folded back onto the image.

Sample coordinates, bilinear weights and their derivatives are computed in float64 from
the offsets (``[K, N, Go, oh*ow]``, small), so floors and border tests agree with the
reference whatever the input dtype. Bulk work runs in the input dtype (float32 for
float16/bfloat16). Memory: the quads (4x the input) and ``[N*Go*oh*ow, 4*C/Go]`` buffers
for one tap; no tensor grows with the number of taps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..common import compute_dtype


class Quads:
    """Rows ``[N*Go*(H+1)*(W+1) + 1, 4*C/Go]`` of 2x2 neighbourhoods of the padded input."""

    def __init__(self, input, offset_groups, dtype):
        n, c, h, w = input.shape
        self.shape = (n * offset_groups, h, w, c // offset_groups)
        planes, h, w, cg = self.shape
        padded = torch.zeros((planes, h + 2, w + 2, cg), dtype=dtype, device=input.device)
        padded[:, 1 : h + 1, 1 : w + 1] = (
            input.view(n, offset_groups, cg, h, w).permute(0, 1, 3, 4, 2).reshape(planes, h, w, cg)
        )
        self.rows = torch.empty((planes * (h + 1) * (w + 1) + 1, 4 * cg), dtype=dtype,
                                device=input.device)
        self.rows[-1] = 0
        for corner, view in enumerate(self.corner_views(self.rows)):
            view.copy_(padded[:, corner // 2 : corner // 2 + h + 1, corner % 2 : corner % 2 + w + 1])

    @property
    def zero_row(self) -> int:
        return self.rows.shape[0] - 1

    def corner_views(self, rows):
        """The four ``[planes, H+1, W+1, C/Go]`` corner slices of quad ``rows``."""
        planes, h, w, cg = self.shape
        grid = rows[:-1].view(planes, h + 1, w + 1, 4, cg)
        return [grid[:, :, :, corner] for corner in range(4)]

    def fold(self, rows):
        """Adjoint of the construction: quad-row gradients -> ``[N, C, H, W]`` input gradient."""
        planes, h, w, cg = self.shape
        padded = torch.zeros((planes, h + 2, w + 2, cg), dtype=rows.dtype, device=rows.device)
        for corner, view in enumerate(self.corner_views(rows)):
            padded[:, corner // 2 : corner // 2 + h + 1, corner % 2 : corner % 2 + w + 1] += view
        return padded[:, 1 : h + 1, 1 : w + 1]


@dataclass
class Points:
    """Every tap's sample points: ``[K, N*Go*P]`` per field, points in ``(n, g, p)`` order."""

    rows: torch.Tensor  # quad row of each point whose 2x2 cell touches the image, else zero row
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


def sample_points(offset, geometry, in_size, offset_groups, quads) -> Points:
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
    cell = (planes * (h + 1) + (y0.long() + 1)) * (w + 1) + (x0.long() + 1)
    rows = torch.where(touches, cell, quads.zero_row)
    sample_rows = torch.where(outside, quads.zero_row, rows)  # NaN points: zero row already
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
    """``out[p] = sum_corner weights[corner, p] * values[p, corner]``; values ``[P, 4, C]``."""
    torch.mul(values[:, 0], weights[0, :, None], out=out)
    for corner in range(1, 4):
        out.addcmul_(values[:, corner], weights[corner, :, None])
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
    quads = Quads(input.to(dtype), offset_groups, dtype)
    points = sample_points(offset, geometry, (h, w), offset_groups, quads)
    weights = points.weights(_tap_mask(mask, offset_groups, k)).to(dtype)
    kernel = weight.to(dtype)
    cg = c // offset_groups
    values = torch.empty((n * offset_groups * positions, 4 * cg), dtype=dtype, device=input.device)
    sample = torch.empty((n * offset_groups * positions, cg), dtype=dtype, device=input.device)
    out = torch.zeros((n * positions, o), dtype=dtype, device=input.device)
    slices = _group_slices(o, c, groups)
    for t, (i, j) in enumerate(geometry.taps()):
        torch.index_select(quads.rows, 0, points.sample_rows[t], out=values)
        _weigh_corners(values.view(-1, 4, cg), weights[t], sample)
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
    quads = Quads(x, offset_groups, dtype)
    points = sample_points(offset, geometry, (h, w), offset_groups, quads)
    tap_mask = _tap_mask(mask, offset_groups, k)
    sample_weights = points.weights(tap_mask).to(dtype)
    scatter_weights = points.weights(tap_mask, nan_points=0.0).to(dtype)  # NaN points add nothing
    input_finite = bool(torch.isfinite(x).all())
    grad = _channels_last(grad_out.to(dtype))
    kernel = weight.to(dtype)
    cg = c // offset_groups
    count = n * offset_groups * positions
    values = torch.empty((count, 4 * cg), dtype=dtype, device=input.device)
    sample = torch.empty((count, cg), dtype=dtype, device=input.device)
    spread = torch.empty((count, 4, cg), dtype=dtype, device=input.device)
    grad_cols = torch.empty((n * positions, c), dtype=dtype, device=input.device)
    # corner_grads[t, p, corner] = sum_c grad_cols[p, c] * value[p, corner, c]
    corner_grads = torch.empty((k, count, 4), dtype=dtype, device=input.device)
    grad_rows = torch.zeros_like(quads.rows)
    grad_w = torch.zeros_like(kernel)
    slices = _group_slices(o, c, groups)
    for t, (i, j) in enumerate(geometry.taps()):
        torch.index_select(quads.rows, 0, points.rows[t], out=values)
        corner_values = values.view(count, 4, cg)
        if groups == 1:
            torch.mm(grad, kernel[:, :, i, j], out=grad_cols)
        else:
            for out_part, in_part in slices:
                grad_cols[:, in_part] = grad[:, out_part] @ kernel[out_part, :, i, j]
        point_grads = _to_point_rows(grad_cols, n, offset_groups, positions)
        torch.bmm(corner_values, point_grads.view(count, cg, 1), out=corner_grads[t, :, :, None])
        _weigh_corners(corner_values, sample_weights[t], sample)
        if not input_finite:  # a NaN border cell must not leak into points outside
            sample.masked_fill_(points.outside[t][:, None], 0.0)
        cols = _to_channel_rows(sample, n, offset_groups, positions)
        for out_part, in_part in slices:
            grad_w[out_part, :, i, j] = grad[:, out_part].t() @ cols[:, in_part]
        torch.mul(scatter_weights[t].t()[:, :, None], point_grads[:, None, :], out=spread)
        grad_rows.index_add_(0, points.rows[t], spread.view(count, 4 * cg))
    grad_input = quads.fold(grad_rows).view(n, offset_groups, h, w, cg)
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
