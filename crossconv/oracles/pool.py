"""Loop oracles of ``max_pool2d`` and ``avg_pool2d`` (torch semantics)."""

import math

import numpy as np

from .common import f64, inside, pair


def _pool_out_size(size, k, s, p, d, ceil_mode):
    """torch's pooling output size along one axis.

    ``out = floor((size + 2p - d(k-1) - 1 + (s-1 if ceil_mode else 0)) / s) + 1``; then,
    with ceil_mode, drop the last window when it starts at or beyond ``size + p``
    (i.e. ``(out-1)*s >= size + p``).
    """
    num = size + 2 * p - d * (k - 1) - 1 + ((s - 1) if ceil_mode else 0)
    out = num // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def oracle_max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                      return_indices=False):
    """Naive 2-D max pooling with torch (CPU) semantics.

    input ``[N, C, H, W]``; kernel_size/stride/padding/dilation an int or pair, stride
    None -> kernel_size. Returns ``[N, C, oh, ow]`` (and, with return_indices, also int64
    indices of the same shape, flat ``h*W + w`` within the plane). Each window's taps are
    walked in row-major order, skipping taps outside the input (padding is -inf);
    starting from ``best = -inf`` and index = the first in-input tap, a tap replaces the
    best when ``v > best or v is NaN`` (ties keep the first; among NaNs the last wins).
    """
    x = f64(input)
    N, C, H, W = x.shape
    kh, kw = pair(kernel_size)
    sh, sw = pair(kernel_size if stride is None or stride == () else stride)
    ph, pw = pair(padding)
    dh, dw = pair(dilation)
    oh = _pool_out_size(H, kh, sh, ph, dh, ceil_mode)
    ow = _pool_out_size(W, kw, sw, pw, dw, ceil_mode)
    out = np.zeros((N, C, oh, ow), dtype=np.float64)
    idx = np.zeros((N, C, oh, ow), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for y in range(oh):
                for xo in range(ow):
                    best = -math.inf
                    best_index = None
                    for i in range(kh):
                        for j in range(kw):
                            yy = y * sh - ph + i * dh
                            xx = xo * sw - pw + j * dw
                            if not inside(x, yy, xx):
                                continue
                            v = float(x[n, c, yy, xx])
                            if best_index is None:
                                best_index = yy * W + xx
                            if v > best or math.isnan(v):
                                best = v
                                best_index = yy * W + xx
                    out[n, c, y, xo] = best
                    idx[n, c, y, xo] = best_index
    if return_indices:
        return out, idx
    return out


def oracle_max_pool2d_vjp(grad_output, input, kernel_size, stride=None, padding=0, dilation=1,
                          ceil_mode=False, return_indices=False):
    """Naive vector-Jacobian product of ``oracle_max_pool2d``.

    grad_output ``[N, C, oh, ow]`` (the gradient of the pooled values); the other
    arguments as for ``oracle_max_pool2d`` (return_indices is ignored). Returns
    ``{"input": [N, C, H, W]}`` where each output cell's gradient is added to the single
    input cell at its chosen index.
    """
    go = f64(grad_output)
    x = f64(input)
    N, C, H, W = x.shape
    _, idx = oracle_max_pool2d(x, kernel_size, stride=stride, padding=padding, dilation=dilation,
                               ceil_mode=ceil_mode, return_indices=True)
    gi = np.zeros((N, C, H, W), dtype=np.float64)
    for n in range(N):
        for c in range(C):
            for y in range(idx.shape[2]):
                for xo in range(idx.shape[3]):
                    flat = int(idx[n, c, y, xo])
                    gi[n, c, flat // W, flat % W] += go[n, c, y, xo]
    return {"input": gi}


def _avg_window(o, k, s, p, size):
    """One axis of an avg_pool2d window: (first, end, padded_count) of output index o.

    The window is ``[o*s - p, o*s - p + k)``; the padded count clips it to ``[-p, size+p)``
    and ``[first, end)`` clips it to the input ``[0, size)``.
    """
    start = o * s - p
    stop = start + k
    padded_count = min(stop, size + p) - max(start, -p)
    first = max(start, 0)
    end = min(stop, size)
    return first, end, padded_count


def _avg_divisor(yw, xw, count_include_pad, divisor_override):
    """The divisor of one avg_pool2d window from its two per-axis ``_avg_window`` triples."""
    if divisor_override is not None:
        return divisor_override
    if count_include_pad:
        return yw[2] * xw[2]
    return (yw[1] - yw[0]) * (xw[1] - xw[0])


def oracle_avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                      divisor_override=None):
    """Naive 2-D average pooling with torch semantics.

    input ``[N, C, H, W]``; kernel_size/stride/padding an int or pair, stride None ->
    kernel_size. Returns ``[N, C, oh, ow]``: the sum over the window's in-input cells
    divided by ``divisor_override`` if given, else by the window size clipped to the
    padded border ``[-p, in+p)`` (count_include_pad) or clipped to the input. A window
    with no in-input cell gives 0 (as torch; it cannot happen with valid arguments).
    """
    x = f64(input)
    N, C, H, W = x.shape
    kh, kw = pair(kernel_size)
    sh, sw = pair(kernel_size if stride is None or stride == () else stride)
    ph, pw = pair(padding)
    oh = _pool_out_size(H, kh, sh, ph, 1, ceil_mode)
    ow = _pool_out_size(W, kw, sw, pw, 1, ceil_mode)
    out = np.zeros((N, C, oh, ow), dtype=np.float64)
    for n in range(N):
        for c in range(C):
            for y in range(oh):
                for xo in range(ow):
                    yw = _avg_window(y, kh, sh, ph, H)
                    xw = _avg_window(xo, kw, sw, pw, W)
                    if yw[0] >= yw[1] or xw[0] >= xw[1]:
                        out[n, c, y, xo] = 0.0
                        continue
                    total = 0.0
                    for yy in range(yw[0], yw[1]):
                        for xx in range(xw[0], xw[1]):
                            total += x[n, c, yy, xx]
                    out[n, c, y, xo] = total / _avg_divisor(yw, xw, count_include_pad, divisor_override)
    return out


def oracle_avg_pool2d_vjp(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                          count_include_pad=True, divisor_override=None):
    """Naive vector-Jacobian product of ``oracle_avg_pool2d``.

    grad_output ``[N, C, oh, ow]``; the other arguments as for ``oracle_avg_pool2d``.
    Returns ``{"input": [N, C, H, W]}``: every in-input cell of a window receives that
    window's ``grad / divisor``.
    """
    go = f64(grad_output)
    x = f64(input)
    N, C, H, W = x.shape
    kh, kw = pair(kernel_size)
    sh, sw = pair(kernel_size if stride is None or stride == () else stride)
    ph, pw = pair(padding)
    oh, ow = go.shape[2], go.shape[3]
    gi = np.zeros((N, C, H, W), dtype=np.float64)
    for n in range(N):
        for c in range(C):
            for y in range(oh):
                for xo in range(ow):
                    yw = _avg_window(y, kh, sh, ph, H)
                    xw = _avg_window(xo, kw, sw, pw, W)
                    if yw[0] >= yw[1] or xw[0] >= xw[1]:
                        continue
                    share = go[n, c, y, xo] / _avg_divisor(yw, xw, count_include_pad, divisor_override)
                    for yy in range(yw[0], yw[1]):
                        for xx in range(xw[0], xw[1]):
                            gi[n, c, yy, xx] += share
    return {"input": gi}
