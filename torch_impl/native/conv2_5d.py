"""2.5D convolution in vectorised torch: the ``impl="native"`` contract functions.

``forward(input, depth, weight, geometry, focal, pixel_size) -> out`` and
``backward(grad_out, input, depth, weight, geometry, focal, pixel_size) -> (grad_input,
grad_weight)``; no autograd inside, bias not included (the op adds it).

The depth bins of SPEC.md are disjoint, so for one kernel tap every output position
reads its input pixel through at most one bin's kernel. Per tap, the positions are
grouped by bin (:class:`DepthBins`), the input rows of each group are gathered from a
channels-last copy of the padded input, multiplied by that bin's ``[C, O]`` kernel
slice, and added back at their positions. That is one tap of an ordinary convolution in
FLOPs (not ``B`` times as many), with ``[positions, C]``-sized work buffers: nothing is
unfolded, and the masks are never stored as floats.

The bins are computed in float64 from the depth values exactly as the reference writes
them, edges ``d + (k - B/2) * s``, so every backend puts a tap on an edge into the same bin.

The dense path multiplies each tap by every bin's 0/1 mask as SPEC.md writes it and does
one matmul over bins x channels. It runs when that product is narrow (``B*C <=``
:data:`DENSE_WIDTH`, e.g. an RGB input layer, where grouping costs more ops than it saves
FLOPs) and whenever input, weight or gradient hold a NaN/Inf: there an Inf in a closed bin
gives ``Inf * 0 = NaN`` exactly as in the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..common import compute_dtype

#: Widest bins x channels product that takes the dense path.
DENSE_WIDTH = 64


class DepthBins:
    """Which bin each tap of each window falls in, from ``depth [N, 1, H, W]``."""

    def __init__(self, depth, geometry, bins, focal, pixel_size):
        (top, left), (bottom, right) = geometry.pad_before, geometry.pad_after
        self.depth = F.pad(depth[:, 0].to(torch.float64), (left, right, top, bottom))
        self.geometry = geometry
        self.bins = bins
        kh, kw = geometry.kernel
        centre = self._tap(kh // 2, kw // 2)[:, None]  # [P, 1]
        s = centre * pixel_size / focal
        coefficients = torch.arange(bins + 1, dtype=torch.float64, device=depth.device) - bins / 2
        edges = centre + coefficients * s  # [P, B+1]
        self.lower, self.upper = edges[:, :-1], edges[:, 1:]

    def _tap(self, i, j):
        """Depth read by tap ``(i, j)`` at every output position, ``[N*oh*ow]``."""
        (sh, sw), (dh, dw), (oh, ow) = (self.geometry.stride, self.geometry.dilation,
                                        self.geometry.out_size)
        tap = self.depth[:, i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                         j * dw : j * dw + sw * (ow - 1) + 1 : sw]
        return tap.reshape(tap.numel())

    def masks(self, i, j):
        """``[N*oh*ow, B]`` bool: is tap ``(i, j)``'s depth in bin l (half-open)?"""
        tap = self._tap(i, j)[:, None]
        return (self.lower <= tap) & (self.upper > tap)

    def groups(self, i, j):
        """Positions (flat ``n*oh*ow + y*ow + x``) grouped by bin, and each bin's count."""
        members = torch.nonzero(self.masks(i, j).t())  # (bin, position), bin-major
        counts = torch.bincount(members[:, 0], minlength=self.bins)
        return members[:, 1], counts.tolist()


class _Layout:
    """The padded input as channels-last rows ``[N*Hp*Wp, C]``, and for each output
    position the row its window's tap (0, 0) reads."""

    def __init__(self, input, geometry, dtype):
        (top, left), (bottom, right) = geometry.pad_before, geometry.pad_after
        n, c, h, w = input.shape
        self.padded_size = (h + top + bottom, w + left + right)
        hp, wp = self.padded_size
        self.rows = torch.zeros((n, hp, wp, c), dtype=dtype, device=input.device)
        self.rows[:, top : top + h, left : left + w] = input.permute(0, 2, 3, 1)
        self.rows = self.rows.view(n * hp * wp, c)
        (sh, sw), (oh, ow) = geometry.stride, geometry.out_size
        ys = torch.arange(oh, device=input.device) * (sh * wp)
        xs = torch.arange(ow, device=input.device) * sw
        samples = torch.arange(n, device=input.device) * (hp * wp)
        self.first = (samples[:, None, None] + ys[None, :, None] + xs[None, None, :]).reshape(-1)
        self.geometry = geometry

    def tap_rows(self, i, j, positions=None):
        dh, dw = self.geometry.dilation
        first = self.first if positions is None else self.first[positions]
        return first + (i * dh * self.padded_size[1] + j * dw)

    def unpad(self, rows):
        """``[N*Hp*Wp, C]`` rows back to an ``[N, C, H, W]`` tensor."""
        geometry = self.geometry
        (top, left), (h, w) = geometry.pad_before, geometry.in_size
        n = rows.shape[0] // (self.padded_size[0] * self.padded_size[1])
        grid = rows.view(n, *self.padded_size, rows.shape[1])
        return grid[:, top : top + h, left : left + w].permute(0, 3, 1, 2).contiguous()


def _tap_kernels(weight):
    """``[B, O, C, kh, kw]`` -> ``[kh, kw, B, C, O]``: per tap and bin a ``[C, O]`` matrix."""
    return weight.permute(3, 4, 0, 2, 1).contiguous()


def _all_finite(*tensors):
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _channels_last(t):
    """``[N, O, oh, ow]`` -> ``[N*oh*ow, O]``."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def _from_channels_last(rows, shape):
    n, o, oh, ow = shape
    return rows.view(n, oh, ow, o).permute(0, 3, 1, 2).contiguous()


def forward(input, depth, weight, geometry, focal, pixel_size):
    """``[N, C, H, W]``, ``[N, 1, H, W]``, ``[B, O, C, kh, kw]`` -> ``[N, O, oh, ow]``."""
    dtype = compute_dtype(input.dtype)
    x, kernels = input.to(dtype), _tap_kernels(weight.to(dtype))
    layout = _Layout(x, geometry, dtype)
    bins = DepthBins(depth, geometry, weight.shape[0], focal, pixel_size)
    n, o = input.shape[0], weight.shape[1]
    out = torch.zeros((n * geometry.out_size[0] * geometry.out_size[1], o), dtype=dtype,
                      device=input.device)
    dense = weight.shape[0] * input.shape[1] <= DENSE_WIDTH or not _all_finite(x, kernels)
    for i, j in geometry.taps():
        if dense:
            masks = bins.masks(i, j).to(dtype)
            cols = layout.rows.index_select(0, layout.tap_rows(i, j))
            masked = cols[:, None, :] * masks[:, :, None]  # [P, B, C]: x * m first
            out.addmm_(masked.flatten(1), kernels[i, j].flatten(0, 1))
            continue
        positions, counts = bins.groups(i, j)
        cols = layout.rows.index_select(0, layout.tap_rows(i, j, positions))
        products = torch.empty((len(positions), o), dtype=dtype, device=input.device)
        start = 0
        for b, count in enumerate(counts):
            torch.mm(cols[start : start + count], kernels[i, j, b],
                     out=products[start : start + count])
            start += count
        out.index_add_(0, positions, products)
    return _from_channels_last(out, (n, o, *geometry.out_size)).to(input.dtype)


def backward(grad_out, input, depth, weight, geometry, focal, pixel_size):
    """Gradients of :func:`forward` w.r.t. input and weight (depth has none)."""
    dtype = compute_dtype(input.dtype)
    x, kernels = input.to(dtype), _tap_kernels(weight.to(dtype))
    grad = _channels_last(grad_out.to(dtype))
    layout = _Layout(x, geometry, dtype)
    bins = DepthBins(depth, geometry, weight.shape[0], focal, pixel_size)
    grad_rows = torch.zeros_like(layout.rows)
    grad_kernels = torch.zeros_like(kernels)
    bins_count, c = weight.shape[0], input.shape[1]
    dense = weight.shape[0] * input.shape[1] <= DENSE_WIDTH or not _all_finite(x, kernels, grad)
    for i, j in geometry.taps():
        if dense:
            masks = bins.masks(i, j).to(dtype)[:, :, None]  # [P, B, 1]
            rows = layout.tap_rows(i, j)
            masked = layout.rows.index_select(0, rows)[:, None, :] * masks  # [P, B, C]
            grad_kernels[i, j] = (masked.flatten(1).t() @ grad).view(bins_count, c, grad.shape[1])
            grad_masked = (grad @ kernels[i, j].flatten(0, 1).t()).view(-1, bins_count, c)
            grad_rows.index_add_(0, rows, (grad_masked * masks).sum(1))
            continue
        positions, counts = bins.groups(i, j)
        rows = layout.tap_rows(i, j, positions)
        cols = layout.rows.index_select(0, rows)
        grads = grad.index_select(0, positions)
        grad_cols = torch.empty_like(cols)
        start = 0
        for b, count in enumerate(counts):
            part = slice(start, start + count)
            torch.mm(cols[part].t(), grads[part], out=grad_kernels[i, j, b])
            torch.mm(grads[part], kernels[i, j, b].t(), out=grad_cols[part])
            start += count
        grad_rows.index_add_(0, rows, grad_cols)
    grad_input = layout.unpad(grad_rows).to(input.dtype)
    return grad_input, grad_kernels.permute(2, 4, 3, 0, 1).contiguous().to(weight.dtype)
