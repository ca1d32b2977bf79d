"""Tan-product convolution in vectorised torch: the ``impl="native"`` contract functions.

``forward(input, weight, geometry) -> out`` and ``backward(grad_out, input, weight,
geometry) -> (grad_input, grad_weight)``, no autograd inside, bias not included (the op
adds it). ``out[n,o,y,x] = prod_{c,i,j} tan(xpad[n, c, y*sh + i*dh, x*sw + j*dw] + w[o,c,i,j])``.

Work is done in blocks of samples and output channels whose factors ``[kh*kw, C, n, o,
oh*ow]`` fit in :data:`BLOCK_FACTORS` elements, so memory stays bounded whatever the
shape; the forward keeps one tap's factors at a time, the backward a whole block's (it
reads every factor three times).

The gradient is division-free: the product of the other factors of factor ``(t, c)`` is
``E[t] * prod_{c' < c} f[t, c'] * prod_{c' > c} f[t, c']``, where ``E[t]`` is the product
of the other taps' products (prefix/suffix over taps, then over channels), so a factor
that is exactly 0 still gets its exact gradient. ``d tan(u) / du = 1 + tan(u)^2``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..common import compute_dtype

#: Factors held at once (16 MB in float32): small enough for the allocator to recycle the
#: buffers between calls, large enough that per-op overhead does not dominate.
BLOCK_FACTORS = 1 << 22


def _padded(input, geometry, dtype):
    (top, left), (bottom, right) = geometry.pad_before, geometry.pad_after
    return F.pad(input.to(dtype), (left, right, top, bottom))


def _tap(xpad, geometry, i, j):
    """``[N, C, oh, ow]`` view: what tap ``(i, j)`` reads at every output position."""
    (sh, sw), (dh, dw), (oh, ow) = geometry.stride, geometry.dilation, geometry.out_size
    return xpad[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                j * dw : j * dw + sw * (ow - 1) + 1 : sw]


def _blocks(batch, out_channels, factors_per_item):
    """``(n0, n1, o0, o1)`` blocks with at most :data:`BLOCK_FACTORS` factors each."""
    per_sample = out_channels * factors_per_item
    if per_sample <= BLOCK_FACTORS:
        step = max(1, BLOCK_FACTORS // max(per_sample, 1))
        for n0 in range(0, batch, step):
            yield n0, min(n0 + step, batch), 0, out_channels
        return
    step = max(1, BLOCK_FACTORS // factors_per_item)
    for n0 in range(batch):
        for o0 in range(0, out_channels, step):
            yield n0, n0 + 1, o0, min(o0 + step, out_channels)


def _factors(xpad, weight, geometry, i, j, n0, n1, o0, o1, out):
    """``out[c, n, o, p] = tan(x_tap[n0 + n, c, p] + w[o0 + o, c, i, j])``."""
    x_tap = _tap(xpad[n0:n1], geometry, i, j).transpose(0, 1)  # [C, n, oh, ow]
    w_tap = weight[o0:o1, :, i, j].t()  # [C, o]
    c, n, o = x_tap.shape[0], n1 - n0, o1 - o0
    view = out.view(c, n, o, *geometry.out_size)
    torch.add(x_tap[:, :, None], w_tap[:, None, :, None, None], out=view)
    return out


def forward(input, weight, geometry):
    """``[N, C, H, W]``, ``[O, C, kh, kw]`` -> ``[N, O, oh, ow]`` in the input dtype."""
    dtype = compute_dtype(input.dtype)
    xpad, w = _padded(input, geometry, dtype), weight.to(dtype)
    (n_all, c), o_all = input.shape[:2], weight.shape[0]
    positions = geometry.out_size[0] * geometry.out_size[1]
    out = torch.empty((n_all, o_all, *geometry.out_size), dtype=dtype, device=input.device)
    buffer = None
    for n0, n1, o0, o1 in _blocks(n_all, o_all, c * positions):
        size = c * (n1 - n0) * (o1 - o0) * positions
        if buffer is None or buffer.numel() < size:
            buffer = torch.empty(size, dtype=dtype, device=input.device)
        block = out[n0:n1, o0:o1]
        block.fill_(1)
        for i, j in geometry.taps():
            factors = _factors(xpad, w, geometry, i, j, n0, n1, o0, o1, buffer[:size])
            factors.tan_()
            block.mul_(factors.view(c, *block.shape).prod(0))
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


def _exclusive_over_channels(factors, initial, out):
    """``out[t, c] = initial[t] * prod_{c' != c} factors[t, c']`` for ``[K, C, M]``."""
    acc = initial
    for c in range(factors.shape[1]):
        out[:, c].copy_(acc)
        acc.mul_(factors[:, c])
    acc.fill_(1)
    for c in reversed(range(factors.shape[1])):
        out[:, c].mul_(acc)
        acc.mul_(factors[:, c])
    return out


def backward(grad_out, input, weight, geometry):
    """Gradients of :func:`forward` w.r.t. input and weight, in the input dtype."""
    dtype = compute_dtype(input.dtype)
    xpad, w = _padded(input, geometry, dtype), weight.to(dtype)
    grad = grad_out.to(dtype)
    (n_all, c), o_all = input.shape[:2], weight.shape[0]
    taps = list(geometry.taps())
    k = len(taps)
    oh, ow = geometry.out_size
    grad_xpad = torch.zeros_like(xpad)
    grad_w = torch.zeros_like(w)
    one = torch.ones((), dtype=dtype, device=input.device)
    for n0, n1, o0, o1 in _blocks(n_all, o_all, k * c * oh * ow):
        n, o = n1 - n0, o1 - o0
        m = n * o * oh * ow
        factors = torch.empty((k, c, m), dtype=dtype, device=input.device)
        for t, (i, j) in enumerate(taps):
            _factors(xpad, w, geometry, i, j, n0, n1, o0, o1, factors[t])
        factors.tan_()
        others = _exclusive_over_taps(factors.prod(1), grad[n0:n1, o0:o1].reshape(m))
        grad_u = _exclusive_over_channels(factors, others, torch.empty_like(factors))
        torch.addcmul(one, factors, factors, out=factors)  # sec^2 = 1 + tan^2
        grad_u.mul_(factors)
        grad_u = grad_u.view(k, c, n, o, oh, ow)
        grad_cols = grad_u.sum(3)  # [K, C, n, oh, ow]
        grad_w[o0:o1] += grad_u.sum((2, 4, 5)).permute(2, 1, 0).reshape(o, c, *geometry.kernel)
        for t, (i, j) in enumerate(taps):
            _tap(grad_xpad[n0:n1], geometry, i, j).add_(grad_cols[t].transpose(0, 1))
    (top, left), (h, w_) = geometry.pad_before, geometry.in_size
    grad_input = grad_xpad[:, :, top : top + h, left : left + w_]
    return grad_input.to(input.dtype).contiguous(), grad_w.to(weight.dtype)
