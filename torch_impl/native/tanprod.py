"""Tan-product convolution in vectorised torch: the ``impl="native"`` contract functions.

``forward(input, weight, geometry) -> out`` and ``backward(grad_out, input, weight,
geometry) -> (grad_input, grad_weight)``, no autograd inside, bias not included (the op
adds it). ``out[n,o,y,x] = prod_{c,i,j} tan(xpad[n, c, y*sh + i*dh, x*sw + j*dw] + w[o,c,i,j])``.

Work is done in blocks of samples and output channels whose factors ``[kh*kw, C, n, o,
oh*ow]`` fit in :data:`BLOCK_BYTES`, so memory stays bounded whatever the
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

#: Bytes of one block's factors: below glibc's largest mmap threshold (32 MB), so the
#: allocator recycles these buffers between calls instead of faulting in fresh pages,
#: and large enough that per-op overhead does not dominate.
BLOCK_BYTES = 6 << 20


def _padded(input, geometry, dtype):
    (top, left), (bottom, right) = geometry.pad_before, geometry.pad_after
    return F.pad(input.to(dtype), (left, right, top, bottom))


def _tap(xpad, geometry, i, j):
    """``[N, C, oh, ow]`` view: what tap ``(i, j)`` reads at every output position."""
    (sh, sw), (dh, dw), (oh, ow) = geometry.stride, geometry.dilation, geometry.out_size
    return xpad[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                j * dw : j * dw + sw * (ow - 1) + 1 : sw]


def _blocks(batch, out_channels, factors_per_item, dtype):
    """``(n0, n1, o0, o1)`` blocks of at most :data:`BLOCK_BYTES` of factors each."""
    limit = max(1, BLOCK_BYTES // dtype.itemsize)
    per_sample = out_channels * factors_per_item
    if per_sample <= limit:
        step = max(1, limit // max(per_sample, 1))
        for n0 in range(0, batch, step):
            yield n0, min(n0 + step, batch), 0, out_channels
        return
    step = max(1, limit // factors_per_item)
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
    for n0, n1, o0, o1 in _blocks(n_all, o_all, c * positions, dtype):
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


def _factor_gradients(factors, grad):
    """``d out / d u`` for every factor ``f = tan(u)`` of ``[K, C, M]``, times ``grad [M]``.

    ``prod_{others} * (1 + f^2) = prod_{others} + prod_{all} * f``. The product of the
    others is ``prefix_c * E_t * suffix_c``: a prefix sweep over channels (ending with the
    tap products), the exclusive product over taps ``E_t``, a suffix sweep over channels
    (ending with ``grad * prod_{all}``). Overwrites nothing in ``factors``.
    """
    k, c, m = factors.shape
    out = torch.empty_like(factors)
    out[:, 0] = 1
    for channel in range(1, c):
        torch.mul(out[:, channel - 1], factors[:, channel - 1], out=out[:, channel])
    acc = _exclusive_over_taps(out[:, c - 1] * factors[:, c - 1], grad)  # of the tap products
    for channel in reversed(range(c)):
        out[:, channel].mul_(acc)
        acc.mul_(factors[:, channel])
    out.addcmul_(factors, acc[0])  # acc[t] == grad * prod_{all} for every t
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
    for n0, n1, o0, o1 in _blocks(n_all, o_all, k * c * oh * ow, dtype):
        n, o = n1 - n0, o1 - o0
        m = n * o * oh * ow
        factors = torch.empty((k, c, m), dtype=dtype, device=input.device)
        for t, (i, j) in enumerate(taps):
            _factors(xpad, w, geometry, i, j, n0, n1, o0, o1, factors[t])
        factors.tan_()
        grad_u = _factor_gradients(factors, grad[n0:n1, o0:o1].reshape(m))
        grad_u = grad_u.view(k, c, n, o, oh, ow)
        grad_cols = grad_u.sum(3)  # [K, C, n, oh, ow]
        grad_w[o0:o1] += grad_u.sum((2, 4, 5)).permute(2, 1, 0).reshape(o, c, *geometry.kernel)
        for t, (i, j) in enumerate(taps):
            _tap(grad_xpad[n0:n1], geometry, i, j).add_(grad_cols[t].transpose(0, 1))
    (top, left), (h, w_) = geometry.pad_before, geometry.in_size
    grad_input = grad_xpad[:, :, top : top + h, left : left + w_]
    return grad_input.to(input.dtype).contiguous(), grad_w.to(weight.dtype)
