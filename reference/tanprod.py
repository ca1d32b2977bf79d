"""Tan-product convolution: Torch7's ``nn.CustomConv`` kernel for channels and batches (docs/tanprod.md).

::

    out[n, o, y, x] = bias[o] + prod_{c, i, j} tan(xpad[n, c, y*sh + i*dh, x*sw + j*dw] + w[o, c, i, j])

Zero padding means a padded tap contributes the factor ``tan(w[o, c, i, j])``.

Gradient: with ``u = x + w`` at one factor, ``d out / d u = (product of the other factors)
* sec^2(u)``. The product of the other factors is formed from prefix and suffix products
(:func:`exclusive_products`), never as ``out / tan(u)``: that division is 0/0 exactly where
a factor vanishes (``x + w = 0``), which is where the gradient matters most. The
leave-one-out product is split in two levels, the other taps times the other channels of
this tap, so the only arrays held are ``kh*kw`` output-sized tap products and one tap's
``[N, O, C, oh, ow]`` factors.
"""

from __future__ import annotations

import numpy as np

from .common import (
    ConvSignature,
    check_arrays,
    check_bias,
    check_grad_output,
    conv_operands,
    conv_window,
    shape_of,
    to_float64,
)

# ----------------------------------------------------------------------------- checks


def tanprod_conv2d_signature(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """Check a call of ``tanprod_conv2d`` (``input [N,C,H,W]``, ``weight [O,C,kh,kw]``)."""
    op = "tanprod_conv2d"
    x, w = conv_operands(op, input, weight, "[O, C, kh, kw]")
    if x[1] != w[1]:
        raise ValueError(f"{op}: input has {x[1]} channels but weight {w} expects {w[1]}")
    check_bias(bias, w[0], op)
    geometry = conv_window(op, x, w[2:], w[0], stride, padding, dilation)
    return ConvSignature(geometry, (x[0], w[0], *geometry.out_size))


def exclusive_products(factors: np.ndarray, axis: int) -> np.ndarray:
    """``out[k] = prod_{m != k} factors[m]`` along ``axis``, without division."""
    f = np.moveaxis(factors, axis, 0)
    ones = np.ones_like(f[:1])
    before = np.cumprod(np.concatenate([ones, f[:-1]]), axis=0)  # prod_{m < k}
    after = np.cumprod(np.concatenate([ones, f[:0:-1]]), axis=0)[::-1]  # prod_{m > k}
    return np.moveaxis(before * after, 0, axis)


def _tanprod_args(input, weight, bias, stride, padding, dilation):
    x, w, b = check_arrays("tanprod_conv2d", input=input, weight=weight, bias=bias)
    sig = tanprod_conv2d_signature(x.shape, w.shape, shape_of(b), stride, padding, dilation)
    return (*to_float64(x, w, b), sig.geometry)


def _tap_factors(geometry, xpad, w, i, j):
    """``tan(x + w)`` for one tap: ``[N, O, C, oh, ow]``."""
    cols = geometry.tap(xpad, i, j)
    return np.tan(cols[:, None] + w[None, :, :, i, j, None, None])


def tanprod_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """Product of ``tan(input + weight)`` over each window, in float64.

    Args:
        input: ``[N, C, H, W]``.
        weight: ``[O, C, kh, kw]``.
        bias: ``[O]`` or None, added after the product.
        stride, padding, dilation: int or ``(h, w)``; padding is zero padding.

    Returns:
        ``[N, O, oh, ow]`` float64. With N = C = O = 1, no bias, stride 1 and padding 0
        this is Torch7's ``nn.CustomConv(k)`` on a 2-D map.
    """
    x, w, b, geometry = _tanprod_args(input, weight, bias, stride, padding, dilation)
    xpad = geometry.pad(x)
    out = np.ones((x.shape[0], w.shape[0], *geometry.out_size))
    for i, j in geometry.taps():
        out *= _tap_factors(geometry, xpad, w, i, j).prod(axis=2)
    if b is not None:
        out += b[None, :, None, None]
    return out


def tanprod_conv2d_vjp(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1):
    """Gradients of :func:`tanprod_conv2d`: ``{"input", "weight"}`` plus ``"bias"``.

    Exact where a factor is zero: ``d out / d x`` at tap ``(c, i, j)`` is
    ``grad * prod_{other factors} * sec^2(x + w)``; the weight's gradient is the same
    quantity summed over ``n, y, x``.
    """
    x, w, b, geometry = _tanprod_args(input, weight, bias, stride, padding, dilation)
    grad = check_grad_output(
        grad_output, (x.shape[0], w.shape[0], *geometry.out_size), "tanprod_conv2d"
    )
    xpad = geometry.pad(x)
    taps = list(geometry.taps())
    tap_products = np.stack([_tap_factors(geometry, xpad, w, i, j).prod(axis=2) for i, j in taps])
    other_taps = exclusive_products(tap_products, axis=0)

    grad_xpad = np.zeros_like(xpad)
    grad_w = np.zeros_like(w)
    for t, (i, j) in enumerate(taps):
        factors = _tap_factors(geometry, xpad, w, i, j)
        others = other_taps[t][:, :, None] * exclusive_products(factors, axis=2)
        grad_u = grad[:, :, None] * others * (1.0 + factors**2)  # sec^2 = 1 + tan^2
        geometry.add_to_tap(grad_xpad, i, j, grad_u.sum(axis=1))
        grad_w[:, :, i, j] = grad_u.sum(axis=(0, 3, 4))
    grads = {"input": geometry.unpad(grad_xpad).copy(), "weight": grad_w}
    if b is not None:
        grads["bias"] = grad.sum(axis=(0, 2, 3))
    return grads
