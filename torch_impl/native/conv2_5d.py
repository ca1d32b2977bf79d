"""2.5D convolution in vectorised torch: the ``impl="native"`` contract functions.

``forward(input, depth, weight, geometry, focal, pixel_size) -> out`` and
``backward(grad_out, input, depth, weight, geometry, focal, pixel_size) -> (grad_input,
grad_weight)``; no autograd inside, bias not included (the op adds it).

The depth bins of docs/conv2_5d.md are disjoint, so for one kernel tap every output position
reads its input pixel through at most one bin's kernel. Per tap, the positions are
grouped by bin (:class:`DepthBins`), the input rows of each group are gathered from a
channels-last copy of the padded input, multiplied by that bin's ``[C, O]`` kernel
slice, and added back at their positions. That is one tap of an ordinary convolution in
FLOPs (not ``B`` times as many), with ``[positions, C]``-sized work buffers: nothing is
unfolded, and the masks are never stored as floats.

The bins are computed in float64 from the depth values exactly as the reference writes
them, edges ``d + (k - B/2) * s``, so every backend puts a tap on an edge into the same bin.

Samples are independent: chunks of about :data:`POSITIONS_PER_CHUNK` output positions
run on single-threaded workers (:mod:`.workers`) when there are enough of them, so the
op's many moderate steps never wait at a barrier for a thread that other processes have
pushed off a core; weight-gradient partials are added in chunk order (deterministic).

The dense path multiplies each tap by every bin's 0/1 mask as docs/conv2_5d.md writes it and does
one matmul over bins x channels. It runs when that product is narrow (``B*C <=``
:data:`DENSE_WIDTH`, e.g. an RGB input layer, where grouping costs more ops than it saves
FLOPs) and whenever input, weight or gradient hold a NaN/Inf: there an Inf in a closed bin
gives ``Inf * 0 = NaN`` exactly as in the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..common import compute_dtype
from . import workers

#: Widest bins x channels product that takes the dense path.
DENSE_WIDTH = 64

#: Output positions per chunk of samples (one sample of 56x56 outputs; small problems
#: form one chunk).
POSITIONS_PER_CHUNK = 4096


class DepthBins:
    """Which bin each tap of each window falls in, from ``depth [N, 1, H, W]``."""

    def __init__(self, depth, geometry, bins, focal, pixel_size):
        (top, left), (bottom, right) = geometry.pad_before, geometry.pad_after
        padded = F.pad(depth[:, 0].to(torch.float64), (left, right, top, bottom))
        (sh, sw), (dh, dw), (oh, ow) = geometry.stride, geometry.dilation, geometry.out_size
        self.taps = torch.stack([
            padded[:, i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                   j * dw : j * dw + sw * (ow - 1) + 1 : sw].reshape(-1)
            for i, j in geometry.taps()
        ])  # [K, P]: the depth each tap reads at every output position
        self.bins = bins
        kh, kw = geometry.kernel
        centre = self.taps[(kh // 2) * kw + kw // 2][:, None]  # [P, 1]
        s = centre * pixel_size / focal
        coefficients = torch.arange(bins + 1, dtype=torch.float64, device=depth.device) - bins / 2
        edges = centre + coefficients * s  # [P, B+1]
        self.lower, self.upper = edges[:, :-1], edges[:, 1:]

    def masks(self, t=None):
        """``[P, B]`` bool for tap t (``[K, P, B]`` for every tap): is the tap's depth in
        bin l (half-open)?"""
        taps = (self.taps if t is None else self.taps[t])[..., None]
        return (self.lower <= taps) & (self.upper > taps)

    def groups(self):
        """Every tap's output positions grouped by bin: ``(taps, positions, counts)`` with
        ``taps[m], positions[m]`` ordered by tap, then bin, and ``counts[t][b]``."""
        members = torch.nonzero(self.masks().transpose(1, 2))  # (tap, bin, position)
        k = self.taps.shape[0]
        cells = members[:, 0] * self.bins + members[:, 1]
        counts = torch.bincount(cells, minlength=k * self.bins).view(k, self.bins).tolist()
        return members[:, 0], members[:, 2], counts


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

    def tap_rows(self, i, j):
        """The row tap ``(i, j)`` reads, for every output position."""
        dh, dw = self.geometry.dilation
        return self.first + (i * dh * self.padded_size[1] + j * dw)

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
    """No NaN or Inf in ``tensors`` (a sum that overflows also says no: the dense path is
    exact either way, only slower)."""
    return all(bool(torch.isfinite(t.sum())) for t in tensors)


def _channels_last(t):
    """``[N, O, oh, ow]`` -> ``[N*oh*ow, O]``."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def _from_channels_last(rows, shape):
    n, o, oh, ow = shape
    return rows.view(n, oh, ow, o).permute(0, 3, 1, 2).contiguous()


class _Groups:
    """Per tap, the bin groups' positions and input rows (sorted by tap, then bin)."""

    def __init__(self, bins, layout):
        taps, self.positions, self.counts = bins.groups()
        dh, dw = layout.geometry.dilation
        kw = layout.geometry.kernel[1]
        tap_shift = (taps // kw) * (dh * layout.padded_size[1]) + (taps % kw) * dw
        self.rows = layout.first[self.positions] + tap_shift
        self.starts = [0]
        for counts in self.counts:
            self.starts.append(self.starts[-1] + sum(counts))
        self.largest = max((b - a for a, b in zip(self.starts, self.starts[1:])), default=0)

    def tap(self, t):
        """``(positions, rows, bin slices)`` of tap t, the slices relative to the tap's."""
        part = slice(self.starts[t], self.starts[t + 1])
        slices, start = [], 0
        for count in self.counts[t]:
            slices.append(slice(start, start + count))
            start += count
        return self.positions[part], self.rows[part], slices


def _dense(bins_count, channels, *tensors):
    return bins_count * channels <= DENSE_WIDTH or not _all_finite(*tensors)


def _chunks(batch, geometry):
    step = max(1, POSITIONS_PER_CHUNK // (geometry.out_size[0] * geometry.out_size[1]))
    return [(n0, min(n0 + step, batch)) for n0 in range(0, batch, step)]


def forward(input, depth, weight, geometry, focal, pixel_size):
    """``[N, C, H, W]``, ``[N, 1, H, W]``, ``[B, O, C, kh, kw]`` -> ``[N, O, oh, ow]``."""
    out = torch.empty((input.shape[0], weight.shape[1], *geometry.out_size), dtype=input.dtype,
                      device=input.device)

    def chunk(n0, n1):
        out[n0:n1] = _forward(input[n0:n1], depth[n0:n1], weight, geometry, focal, pixel_size)

    workers.run(chunk, _chunks(input.shape[0], geometry), input.device)
    return out


def backward(grad_out, input, depth, weight, geometry, focal, pixel_size):
    """Gradients of :func:`forward` w.r.t. input and weight (depth has none)."""
    grad_input = torch.empty_like(input, memory_format=torch.contiguous_format)
    grad_weight = torch.zeros_like(weight, memory_format=torch.contiguous_format)

    def chunk(n0, n1):
        grad_input[n0:n1], part = _backward(grad_out[n0:n1], input[n0:n1], depth[n0:n1], weight,
                                            geometry, focal, pixel_size)
        return part

    for part in workers.results(chunk, _chunks(input.shape[0], geometry), input.device):
        grad_weight += part  # in chunk order: deterministic
    return grad_input, grad_weight


def _forward(input, depth, weight, geometry, focal, pixel_size):
    """:func:`forward` of one chunk of samples."""
    dtype = compute_dtype(input.dtype)
    x, kernels = input.to(dtype), _tap_kernels(weight.to(dtype))
    layout = _Layout(x, geometry, dtype)
    bins = DepthBins(depth, geometry, weight.shape[0], focal, pixel_size)
    (n, c), o = input.shape[:2], weight.shape[1]
    out = torch.zeros((n * geometry.out_size[0] * geometry.out_size[1], o), dtype=dtype,
                      device=input.device)
    taps = list(geometry.taps())
    if _dense(weight.shape[0], c, x, kernels):
        for t, (i, j) in enumerate(taps):
            cols = layout.rows.index_select(0, layout.tap_rows(i, j))
            masked = cols[:, None, :] * bins.masks(t).to(dtype)[:, :, None]  # x * m first
            out.addmm_(masked.flatten(1), kernels[i, j].flatten(0, 1))
        return _from_channels_last(out, (n, o, *geometry.out_size)).to(input.dtype)
    groups = _Groups(bins, layout)
    cols_buffer = torch.empty((groups.largest, c), dtype=dtype, device=input.device)
    products_buffer = torch.empty((groups.largest, o), dtype=dtype, device=input.device)
    for t, (i, j) in enumerate(taps):
        positions, rows, slices = groups.tap(t)
        cols = torch.index_select(layout.rows, 0, rows, out=cols_buffer[: len(rows)])
        products = products_buffer[: len(rows)]
        for b, part in enumerate(slices):
            torch.mm(cols[part], kernels[i, j, b], out=products[part])
        out.index_add_(0, positions, products)
    return _from_channels_last(out, (n, o, *geometry.out_size)).to(input.dtype)


def _backward(grad_out, input, depth, weight, geometry, focal, pixel_size):
    """:func:`backward` of one chunk of samples."""
    dtype = compute_dtype(input.dtype)
    x, kernels = input.to(dtype), _tap_kernels(weight.to(dtype))
    grad = _channels_last(grad_out.to(dtype))
    layout = _Layout(x, geometry, dtype)
    bins = DepthBins(depth, geometry, weight.shape[0], focal, pixel_size)
    grad_rows = torch.zeros_like(layout.rows)
    grad_kernels = torch.zeros_like(kernels)
    (bins_count, o), c = weight.shape[:2], input.shape[1]
    taps = list(geometry.taps())
    if _dense(bins_count, c, x, kernels, grad):
        for t, (i, j) in enumerate(taps):
            masks = bins.masks(t).to(dtype)[:, :, None]  # [P, B, 1]
            rows = layout.tap_rows(i, j)
            masked = layout.rows.index_select(0, rows)[:, None, :] * masks  # [P, B, C]
            grad_kernels[i, j] = (masked.flatten(1).t() @ grad).view(bins_count, c, o)
            grad_masked = (grad @ kernels[i, j].flatten(0, 1).t()).view(-1, bins_count, c)
            grad_rows.index_add_(0, rows, (grad_masked * masks).sum(1))
        return layout.unpad(grad_rows).to(input.dtype), _weight_layout(grad_kernels, weight)
    groups = _Groups(bins, layout)
    cols_buffer = torch.empty((groups.largest, c), dtype=dtype, device=input.device)
    grads_buffer = torch.empty((groups.largest, o), dtype=dtype, device=input.device)
    grad_cols_buffer = torch.empty((groups.largest, c), dtype=dtype, device=input.device)
    for t, (i, j) in enumerate(taps):
        positions, rows, slices = groups.tap(t)
        cols = torch.index_select(layout.rows, 0, rows, out=cols_buffer[: len(rows)])
        grads = torch.index_select(grad, 0, positions, out=grads_buffer[: len(rows)])
        grad_cols = grad_cols_buffer[: len(rows)]
        for b, part in enumerate(slices):
            torch.mm(cols[part].t(), grads[part], out=grad_kernels[i, j, b])
            torch.mm(grads[part], kernels[i, j, b].t(), out=grad_cols[part])
        grad_rows.index_add_(0, rows, grad_cols)
    return layout.unpad(grad_rows).to(input.dtype), _weight_layout(grad_kernels, weight)


def _weight_layout(grad_kernels, weight):
    """``[kh, kw, B, C, O]`` -> the weight's ``[B, O, C, kh, kw]``."""
    return grad_kernels.permute(2, 4, 3, 0, 1).contiguous().to(weight.dtype)
