"""Tan-product convolution in vectorised torch: the ``impl="native"`` contract functions.

``forward(input, weight, geometry) -> out`` and ``backward(grad_out, input, weight,
geometry) -> (grad_input, grad_weight)``, no autograd inside, bias not included (the op
adds it). ``out[n,o,y,x] = prod_{c,i,j} tan(xpad[n, c, y*sh + i*dh, x*sw + j*dw] + w[o,c,i,j])``.

The factors are formed in blocks of samples and output channels, ``[C, K, M]`` (channel,
tap, then the block's ``n*o*oh*ow`` outputs), at most :data:`BLOCK_FACTORS` at a time in
buffers reused from block to block, so memory stays bounded whatever the shape and each
channel's slice is contiguous for the sweeps below. The forward takes one tap at a time
(``[C, M]``, small enough to stay in a core's cache through fill, tangent and product).
Blocks run on single-threaded workers (:mod:`.workers`): each writes its own outputs or
returns its gradient partials, added in block order (deterministic).

The gradient is division-free: the product of the factors other than ``(c, t)`` is
``prefix[c, t] * suffix[c, t]``, where the prefix runs over the channels of tap t and the
suffix over the remaining channels times the products of the other taps (prefix/suffix
products over taps), so a factor that is exactly 0 still gets its exact gradient.
``d tan(u)/du = 1 + tan(u)^2`` enters as ``others * (1 + f^2) = others + all * f``.
"""

from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F

from ..common import compute_dtype
from . import workers

#: Factors per block (16 MB per buffer in float32): large enough that per-op overhead stays
#: small, small enough that a channel slice of a block stays in cache for the sweeps.
BLOCK_FACTORS = 1 << 22


def _padded(input, geometry, dtype):
    (top, left), (bottom, right) = geometry.pad_before, geometry.pad_after
    return F.pad(input.to(dtype), (left, right, top, bottom))


def _tap(xpad, geometry, i, j):
    """``[N, C, oh, ow]`` view: what tap ``(i, j)`` reads at every output position."""
    (sh, sw), (dh, dw), (oh, ow) = geometry.stride, geometry.dilation, geometry.out_size
    return xpad[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                j * dw : j * dw + sw * (ow - 1) + 1 : sw]


def _blocks(batch, out_channels, factors_per_output):
    """``(n0, n1, o0, o1)`` blocks of at most :data:`BLOCK_FACTORS` factors (one output
    plane at least), output channels split evenly."""
    per_sample = out_channels * factors_per_output
    if per_sample <= BLOCK_FACTORS:
        step = max(1, BLOCK_FACTORS // max(per_sample, 1))
        return [(n0, min(n0 + step, batch), 0, out_channels) for n0 in range(0, batch, step)]
    parts = math.ceil(per_sample / BLOCK_FACTORS)
    bounds = [round(out_channels * p / parts) for p in range(parts + 1)]
    return [(n0, n0 + 1, o0, o1) for n0 in range(batch) for o0, o1 in zip(bounds, bounds[1:])
            if o1 > o0]


class _Factors:
    """``tan(x + w)`` per block of samples and output channels, in a buffer reused by the
    blocks one thread runs."""

    def __init__(self, input, weight, geometry, dtype):
        self.xpad, self.w = _padded(input, geometry, dtype), weight.to(dtype)
        self.geometry = geometry
        self.taps = list(geometry.taps())
        self.local = threading.local()

    def _empty(self, size, name="factors"):
        buffer = getattr(self.local, name, None)
        if buffer is None or buffer.numel() < size:
            buffer = torch.empty(size, dtype=self.w.dtype, device=self.w.device)
            setattr(self.local, name, buffer)
        return buffer[:size]

    def _fill(self, out, t, n0, n1, o0, o1):
        """``out[c, n, o, p] = x_tap[n0 + n, c, p] + w[o0 + o, c, tap t]``."""
        c, (oh, ow) = self.w.shape[1], self.geometry.out_size
        i, j = self.taps[t]
        x_tap = _tap(self.xpad[n0:n1], self.geometry, i, j)  # [n, C, oh, ow]
        x_tap = x_tap.transpose(0, 1).reshape(c, n1 - n0, 1, oh * ow)
        torch.add(x_tap, self.w[o0:o1, :, i, j].t()[:, None, :, None], out=out)

    def tap(self, t, n0, n1, o0, o1):
        """Tap t's factors ``[C, n*o*oh*ow]``."""
        c, (oh, ow) = self.w.shape[1], self.geometry.out_size
        out = self._empty(c * (n1 - n0) * (o1 - o0) * oh * ow)
        self._fill(out.view(c, n1 - n0, o1 - o0, oh * ow), t, n0, n1, o0, o1)
        return out.view(c, -1).tan_()

    def block(self, n0, n1, o0, o1):
        """Every tap's factors ``[C, K, n*o*oh*ow]``."""
        c, k, (oh, ow) = self.w.shape[1], len(self.taps), self.geometry.out_size
        n, o = n1 - n0, o1 - o0
        factors = self._empty(c * k * n * o * oh * ow).view(c, k, n, o, oh * ow)
        for t in range(k):
            self._fill(factors[:, t], t, n0, n1, o0, o1)
        return factors.view(c, k, n * o * oh * ow).tan_()


def forward(input, weight, geometry):
    """``[N, C, H, W]``, ``[O, C, kh, kw]`` -> ``[N, O, oh, ow]`` in the input dtype.

    One tap's factors at a time: their product over the channels multiplies the output."""
    dtype = compute_dtype(input.dtype)
    (n_all, c), o_all = input.shape[:2], weight.shape[0]
    out = torch.empty((n_all, o_all, *geometry.out_size), dtype=dtype, device=input.device)
    factors = _Factors(input, weight, geometry, dtype)
    positions = geometry.out_size[0] * geometry.out_size[1]

    def block(n0, n1, o0, o1):
        result = out[n0:n1, o0:o1]
        result.fill_(1)
        for t in range(len(factors.taps)):
            result.mul_(factors.tap(t, n0, n1, o0, o1).prod(0).view(result.shape))

    k = len(factors.taps)  # blocks as in the backward: enough of them to share
    workers.run(block, _blocks(n_all, o_all, c * k * positions), input.device)
    return out.to(input.dtype)


def _exclusive_over_taps(tap_products, grad):
    """``grad * prod_{s != t} tap_products[s]`` for every tap t, ``[K, M]``."""
    result = torch.empty_like(tap_products)
    acc = grad.clone()
    for t in range(tap_products.shape[0]):
        result[t].copy_(acc)
        acc.mul_(tap_products[t])
    acc.fill_(1)
    for t in reversed(range(tap_products.shape[0])):
        result[t].mul_(acc)
        acc.mul_(tap_products[t])
    return result


def _factor_gradients(factors, grad, out):
    """``out[c, t] = grad * d out / d u`` for every factor ``f = tan(u)`` of ``[C, K, M]``."""
    c = factors.shape[0]
    out[0] = 1
    for channel in range(1, c):  # out[c] = prod_{c' < c} f[c'] (per tap)
        torch.mul(out[channel - 1], factors[channel - 1], out=out[channel])
    tap_products = out[c - 1] * factors[c - 1]  # [K, M]
    acc = _exclusive_over_taps(tap_products, grad)  # grad * products of the other taps
    grad_all = acc[0] * tap_products[0]  # grad * prod_{all}
    for channel in reversed(range(c)):
        out[channel].mul_(acc)
        out[channel].addcmul_(factors[channel], grad_all)
        if channel:
            acc.mul_(factors[channel])
    return out


def backward(grad_out, input, weight, geometry):
    """Gradients of :func:`forward` w.r.t. input and weight, in the input dtype."""
    dtype = compute_dtype(input.dtype)
    grad = grad_out.to(dtype)
    (n_all, c), o_all = input.shape[:2], weight.shape[0]
    taps = list(geometry.taps())
    k = len(taps)
    oh, ow = geometry.out_size
    factors = _Factors(input, weight, geometry, dtype)

    def block(n0, n1, o0, o1):
        """The block's column gradient ``[C, K, n, oh, ow]`` (summed over its output
        channels) and its weight-gradient part ``[o, C, kh, kw]``."""
        n, o = n1 - n0, o1 - o0
        block = factors.block(n0, n1, o0, o1)
        grad_u = _factor_gradients(block, grad[n0:n1, o0:o1].reshape(-1),
                                   factors._empty(block.numel(), "gradients").view(block.shape))
        grad_u = grad_u.view(c, k, n, o, oh, ow)
        grad_w = grad_u.sum((2, 4, 5)).permute(2, 0, 1).reshape(o, c, *geometry.kernel)
        return grad_u.sum(3), grad_w

    grad_xpad = torch.zeros_like(factors.xpad)
    grad_w = torch.zeros_like(factors.w)
    blocks = _blocks(n_all, o_all, c * k * oh * ow)
    for (n0, n1, o0, o1), (grad_cols, part) in zip(blocks, workers.results(block, blocks, input.device)):
        grad_w[o0:o1] += part  # in block order: deterministic
        for t, (i, j) in enumerate(taps):
            _tap(grad_xpad[n0:n1], geometry, i, j).add_(grad_cols[:, t].transpose(0, 1))
    (top, left), (h, w) = geometry.pad_before, geometry.in_size
    grad_input = grad_xpad[:, :, top : top + h, left : left + w]
    return grad_input.to(input.dtype).contiguous(), grad_w.to(weight.dtype)
