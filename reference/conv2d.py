"""2-D convolution (torch semantics) and per-sample correlation (SiamFC, SiamRPN++): docs/conv2d.md.

conv2d::

    out[n, o, y, x] = bias[o] + sum_{c in group(o), i, j} w[o, c, i, j] * xpad[n, c, y*sh + i*dh, x*sw + j*dw]

xcorr2d / xcorr2d_depthwise (no padding, stride 1, one template per sample)::

    depthwise[n, c, y, x] = sum_{i, j} search[n, c, y + i, x + j] * template[n, c, i, j]
    xcorr2d[n, 0, y, x]   = sum_c depthwise[n, c, y, x]

The correlations are computed with the FFT (exact up to rounding): unfolding a 127x127
template over 129x129 positions would take hours and tens of GB on SiamFC's tracking
shapes. Inputs with a NaN or an infinity take the direct sum instead, so non-finite values
land exactly where the definition puts them rather than smearing over the whole map.
"""

from __future__ import annotations

import numpy as np

from .common import (
    ConvSignature,
    check_arrays,
    check_bias,
    check_grad_output,
    check_ndim,
    conv_operands,
    conv_window,
    grouped_tap_product,
    grouped_tap_product_vjp,
    positive_int,
    shape_of,
    sizes_differ,
    to_float64,
)

# ----------------------------------------------------------------------------- checks


def conv2d_signature(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Check a call of ``conv2d`` (shapes ``input [N,C,H,W]``, ``weight [O,C/groups,kh,kw]``)."""
    op = "conv2d"
    x, w = conv_operands(op, input, weight, "[O, C/groups, kh, kw]")
    groups = positive_int(groups, "groups", op)
    if x[1] != groups * w[1]:
        raise ValueError(
            f"{op}: input has {x[1]} channels but weight {w} with groups={groups} expects "
            f"{groups * w[1]}"
        )
    if w[0] % groups:
        raise ValueError(f"{op}: groups={groups} must divide the weight's {w[0]} output channels")
    check_bias(bias, w[0], op)
    geometry = conv_window(op, x, w[2:], w[0], stride, padding, dilation, allow_string_padding=True)
    return ConvSignature(geometry, (x[0], w[0], *geometry.out_size), groups=groups)


def xcorr_signature(search, template, op="xcorr2d"):
    """Check a call of ``xcorr2d`` / ``xcorr2d_depthwise``; returns the output shape
    (no larger than ``search``: nothing to check against memory)."""
    s = check_ndim(search, "search", 4, "[N, C, H, W]", op)
    t = check_ndim(template, "template", 4, "[N, C, h, w]", op)
    if any(map(sizes_differ, s[:2], t[:2])):
        raise ValueError(
            f"{op}: search and template must agree on batch and channels, got search {s} and "
            f"template {t}"
        )
    if t[2] > s[2] or t[3] > s[3]:
        raise ValueError(
            f"{op}: template's spatial size must be between 1x1 and the search's, got "
            f"template {t} for search {s}"
        )
    channels = 1 if op == "xcorr2d" else s[1]
    return (s[0], channels, s[2] - t[2] + 1, s[3] - t[3] + 1)


def xcorr2d_signature(search, template):
    """Check a call of ``xcorr2d``; returns the output shape ``[N, 1, oh, ow]``."""
    return xcorr_signature(search, template, "xcorr2d")


def xcorr2d_depthwise_signature(search, template):
    """Check a call of ``xcorr2d_depthwise``; returns the output shape ``[N, C, oh, ow]``."""
    return xcorr_signature(search, template, "xcorr2d_depthwise")


def _conv2d_args(input, weight, bias, stride, padding, dilation, groups):
    x, w, b = check_arrays("conv2d", input=input, weight=weight, bias=bias)
    sig = conv2d_signature(x.shape, w.shape, shape_of(b), stride, padding, dilation, groups)
    return (*to_float64(x, w, b), sig.groups, sig.geometry)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation, ``torch.nn.functional.conv2d`` semantics, in float64.

    Args:
        input: ``[N, C, H, W]``.
        weight: ``[O, C/groups, kh, kw]``.
        bias: ``[O]`` or None.
        stride, dilation: int or ``(h, w)``, positive.
        padding: int or ``(h, w)`` zero padding, or ``"valid"`` / ``"same"`` (stride 1
            only; an odd total puts the extra row/column at the bottom/right).
        groups: input and output channels are split into this many groups.

    Returns:
        ``[N, O, oh, ow]`` float64, ``oh = floor((H + 2*ph - dh*(kh-1) - 1)/sh) + 1``.
    """
    x, w, b, groups, geometry = _conv2d_args(input, weight, bias, stride, padding, dilation, groups)
    xpad = geometry.pad(x)
    out = np.zeros((x.shape[0], w.shape[0], *geometry.out_size))
    for i, j in geometry.taps():
        out += grouped_tap_product(geometry.tap(xpad, i, j), w[:, :, i, j], groups)
    if b is not None:
        out += b[None, :, None, None]
    return out


def conv2d_vjp(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of :func:`conv2d`: ``{"input", "weight"}`` plus ``"bias"`` when given.

    ``grad_output`` has the forward output's shape ``[N, O, oh, ow]``.
    """
    x, w, b, groups, geometry = _conv2d_args(input, weight, bias, stride, padding, dilation, groups)
    grad = check_grad_output(grad_output, (x.shape[0], w.shape[0], *geometry.out_size), "conv2d")
    xpad = geometry.pad(x)
    grad_xpad = np.zeros_like(xpad)
    grad_w = np.zeros_like(w)
    for i, j in geometry.taps():
        grad_cols, grad_w[:, :, i, j] = grouped_tap_product_vjp(
            grad, geometry.tap(xpad, i, j), w[:, :, i, j], groups
        )
        geometry.add_to_tap(grad_xpad, i, j, grad_cols)
    grads = {"input": geometry.unpad(grad_xpad).copy(), "weight": grad_w}
    if b is not None:
        grads["bias"] = grad.sum(axis=(0, 2, 3))
    return grads


# ----------------------------------------------------------------------------- xcorr


def _xcorr_args(search, template, op):
    s, t = check_arrays(op, search=search, template=template)
    out_shape = xcorr_signature(s.shape, t.shape, op)
    return (*to_float64(s, t), out_shape)


def _all_finite(*arrays) -> bool:
    return all(np.isfinite(a).all() for a in arrays)


def _correlate_valid(big, small, sum_channels):
    """``out[..., y, x] = sum_{i,j} big[..., y+i, x+j] * small[..., i, j]``, valid part.

    Leading axes broadcast; ``sum_channels`` also sums axis 1 (kept, size 1).
    """
    (H, W), (h, w) = big.shape[-2:], small.shape[-2:]
    oh, ow = H - h + 1, W - w + 1
    if _all_finite(big, small):
        # Circular correlation does not wrap for y <= H - h: the valid part is exact.
        spectrum = np.fft.rfft2(big) * np.conj(np.fft.rfft2(small, s=(H, W)))
        if sum_channels:
            spectrum = spectrum.sum(axis=1, keepdims=True)
        return np.fft.irfft2(spectrum, s=(H, W))[..., :oh, :ow]
    shape = np.broadcast_shapes(big.shape[:-2], small.shape[:-2]) + (oh, ow)
    out = np.zeros(shape)
    for i in range(h):
        for j in range(w):
            out += big[..., i : i + oh, j : j + ow] * small[..., i, j, None, None]
    return out.sum(axis=1, keepdims=True) if sum_channels else out


def _convolve_full(grad, small, size):
    """Adjoint of :func:`_correlate_valid` in ``big``:
    ``out[..., p] = sum_y grad[..., y] * small[..., p - y]``, full size ``size``."""
    (H, W), (h, w) = size, small.shape[-2:]
    oh, ow = grad.shape[-2:]
    if _all_finite(grad, small):
        # The linear convolution has exactly H x W entries, so the circular one equals it.
        spectrum = np.fft.rfft2(grad, s=(H, W)) * np.fft.rfft2(small, s=(H, W))
        return np.fft.irfft2(spectrum, s=(H, W))
    shape = np.broadcast_shapes(grad.shape[:-2], small.shape[:-2]) + (H, W)
    out = np.zeros(shape)
    for i in range(h):
        for j in range(w):
            out[..., i : i + oh, j : j + ow] += grad * small[..., i, j, None, None]
    return out


def xcorr2d(search, template):
    """Per-sample cross-correlation summed over channels (SiamFC).

    Args:
        search: ``[N, C, H, W]``.
        template: ``[N, C, h, w]``, correlated with its own sample of ``search``.

    Returns:
        ``[N, 1, H-h+1, W-w+1]`` float64.
    """
    s, t, _ = _xcorr_args(search, template, "xcorr2d")
    return _correlate_valid(s, t, sum_channels=True)


def xcorr2d_vjp(grad_output, search, template):
    """Gradients of :func:`xcorr2d`: ``{"search", "template"}``."""
    s, t, out_shape = _xcorr_args(search, template, "xcorr2d")
    grad = check_grad_output(grad_output, out_shape, "xcorr2d")
    return {
        "search": _convolve_full(grad, t, s.shape[2:]),
        "template": _correlate_valid(s, grad, sum_channels=False),
    }


def xcorr2d_depthwise(search, template):
    """Per-sample, per-channel cross-correlation (SiamRPN++ depth-wise xcorr).

    Args:
        search: ``[N, C, H, W]``.
        template: ``[N, C, h, w]``.

    Returns:
        ``[N, C, H-h+1, W-w+1]`` float64: channel c of sample n correlated with its own
        template channel.
    """
    s, t, _ = _xcorr_args(search, template, "xcorr2d_depthwise")
    return _correlate_valid(s, t, sum_channels=False)


def xcorr2d_depthwise_vjp(grad_output, search, template):
    """Gradients of :func:`xcorr2d_depthwise`: ``{"search", "template"}``."""
    s, t, out_shape = _xcorr_args(search, template, "xcorr2d_depthwise")
    grad = check_grad_output(grad_output, out_shape, "xcorr2d_depthwise")
    return {
        "search": _convolve_full(grad, t, s.shape[2:]),
        "template": _correlate_valid(s, grad, sum_channels=False),
    }
