"""Standard 2-D convolution (torch semantics) and per-sample correlation (SiamFC, SiamRPN++).

conv2d::

    out[n, o, y, x] = bias[o] + sum_{c in group(o), i, j} w[o, c, i, j] * xpad[n, c, y*sh + i*dh, x*sw + j*dw]

xcorr2d / xcorr2d_depthwise (no padding, stride 1, one template per sample)::

    depthwise[n, c, y, x] = sum_{i, j} search[n, c, y + i, x + j] * template[n, c, i, j]
    xcorr2d[n, 0, y, x]   = sum_c depthwise[n, c, y, x]

The correlations are computed with the FFT (exact up to rounding): unfolding a 127x127
template over 129x129 positions would take hours and tens of GB on the seeds' tracking
shapes. Inputs with a NaN or an infinity take the direct sum instead, so non-finite values
land exactly where the definition puts them rather than smearing over the whole map.
"""

from __future__ import annotations

import numpy as np

from .common import (
    as_float_array,
    check_bias,
    check_grad_output,
    check_ndim,
    conv_geometry,
    conv_operands,
    grouped_tap_product,
    grouped_tap_product_vjp,
)


def _conv2d_args(input, weight, bias, stride, padding, dilation, groups):
    op = "conv2d"
    x, w, b = conv_operands(op, input, weight, bias, "[O, C/groups, kh, kw]")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"{op}: groups must be an int, got groups={groups!r}")
    if groups < 1:
        raise ValueError(f"{op}: groups must be positive, got groups={groups}")
    if x.shape[1] != groups * w.shape[1]:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels but weight {tuple(w.shape)} with "
            f"groups={groups} expects {groups * w.shape[1]}"
        )
    if w.shape[0] % groups:
        raise ValueError(
            f"{op}: groups={groups} must divide the weight's {w.shape[0]} output channels"
        )
    check_bias(b, w.shape[0], op)
    geometry = conv_geometry(
        op, x.shape, w.shape[2:], stride, padding, dilation,
        allow_string_padding=True, kernel_name="weight's kernel size",
    )
    return x, w, b, int(groups), geometry


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
    s = as_float_array(search, "search", op)
    t = as_float_array(template, "template", op)
    check_ndim(s, "search", 4, "[N, C, H, W]", op)
    check_ndim(t, "template", 4, "[N, C, h, w]", op)
    if s.shape[:2] != t.shape[:2]:
        raise ValueError(
            f"{op}: search and template must agree on batch and channels, got search "
            f"{tuple(s.shape)} and template {tuple(t.shape)}"
        )
    if t.shape[2] > s.shape[2] or t.shape[3] > s.shape[3] or min(t.shape[2:]) < 1:
        raise ValueError(
            f"{op}: template's spatial size must be between 1x1 and the search's, got "
            f"template {tuple(t.shape)} for search {tuple(s.shape)}"
        )
    return s, t


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
    s, t = _xcorr_args(search, template, "xcorr2d")
    return _correlate_valid(s, t, sum_channels=True)


def xcorr2d_vjp(grad_output, search, template):
    """Gradients of :func:`xcorr2d`: ``{"search", "template"}``."""
    s, t = _xcorr_args(search, template, "xcorr2d")
    out_shape = (s.shape[0], 1, s.shape[2] - t.shape[2] + 1, s.shape[3] - t.shape[3] + 1)
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
    s, t = _xcorr_args(search, template, "xcorr2d_depthwise")
    return _correlate_valid(s, t, sum_channels=False)


def xcorr2d_depthwise_vjp(grad_output, search, template):
    """Gradients of :func:`xcorr2d_depthwise`: ``{"search", "template"}``."""
    s, t = _xcorr_args(search, template, "xcorr2d_depthwise")
    out_shape = (*s.shape[:2], s.shape[2] - t.shape[2] + 1, s.shape[3] - t.shape[3] + 1)
    grad = check_grad_output(grad_output, out_shape, "xcorr2d_depthwise")
    return {
        "search": _convolve_full(grad, t, s.shape[2:]),
        "template": _correlate_valid(s, grad, sum_channels=False),
    }
