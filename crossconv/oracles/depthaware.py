"""Loop oracles of ``depthaware_conv2d`` and ``depthaware_avg_pool2d`` (docs/depthaware.md).

Both weigh a tap by ``F = exp(-alpha * |depth[centre] - depth[tap]|)``; ``sign(0) = 0`` in
the depth gradient, ``alpha = 0`` means ``F = 1`` whatever the depth.
"""

import math

import numpy as np

from .common import conv_out_size, f64, inside, padded_get, pair


def _similarity(alpha, centre, tap):
    """``exp(-alpha * |centre - tap|)``; exactly 1 when alpha is 0 (even for NaN depths)."""
    if alpha == 0:
        return 1.0
    return math.exp(-alpha * abs(centre - tap))


def _sign(v):
    """sign with ``sign(0) = 0`` and ``sign(NaN) = NaN``."""
    if v > 0:
        return 1.0
    if v < 0:
        return -1.0
    if v == 0:
        return 0.0
    return math.nan


def _slope(alpha, f, centre, tap):
    """``dF/d depth[tap] = alpha * F * sign(centre - tap)`` (minus this for the centre)."""
    return alpha * f * _sign(centre - tap)


def _conv_setup(x, weight, stride, padding, dilation):
    O, C, kh, kw = weight.shape
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    dh, dw = pair(dilation)
    oh = conv_out_size(x.shape[2], ph, ph, kh, sh, dh)
    ow = conv_out_size(x.shape[3], pw, pw, kw, sw, dw)
    return O, C, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow


def _conv_centre(dep, n, h0, w0, kh, kw, dh, dw):
    """``(inside, depth)`` of the centre pixel ``(h0 + (dh*(kh-1))//2, w0 + (dw*(kw-1))//2)``."""
    ch = h0 + (dh * (kh - 1)) // 2
    cw = w0 + (dw * (kw - 1)) // 2
    if inside(dep, ch, cw):
        return True, (ch, cw), float(dep[n, 0, ch, cw])
    return False, (ch, cw), 0.0


def oracle_depthaware_conv2d(input, depth, weight, bias=None, stride=1, padding=0, dilation=1,
                             alpha=1.0):
    """Naive depth-aware convolution.

    input ``[N, C, H, W]``, depth ``[N, 1, H, W]``, weight ``[O, C, kh, kw]``, bias ``[O]``
    or None. ``out[n,o,y,x] = bias[o] + sum_{c,i,j} w[o,c,i,j] * (xpad[tap] * F[tap])``
    where tap (i, j) reads ``(y*sh - ph + i*dh, x*sw - pw + j*dw)``, the centre is
    ``(y*sh - ph + (dh*(kh-1))//2, x*sw - pw + (dw*(kw-1))//2)``, and F is formed from
    depth only when both the tap and the centre lie in the image (else F = 1; a tap
    outside reads the zero padding).
    """
    x = f64(input)
    dep = f64(depth)
    w = f64(weight)
    b = None if bias is None else f64(bias)
    N = x.shape[0]
    O, C, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = _conv_setup(x, w, stride, padding, dilation)
    out = np.zeros((N, O, oh, ow), dtype=np.float64)
    for n in range(N):
        for o in range(O):
            for y in range(oh):
                for xo in range(ow):
                    h0 = y * sh - ph
                    w0 = xo * sw - pw
                    centre_in, _, dc = _conv_centre(dep, n, h0, w0, kh, kw, dh, dw)
                    acc = 0.0
                    for c in range(C):
                        for i in range(kh):
                            for j in range(kw):
                                hh = h0 + i * dh
                                ww = w0 + j * dw
                                v = padded_get(x, n, c, hh, ww)
                                f = 1.0
                                if centre_in and inside(x, hh, ww):
                                    f = _similarity(alpha, dc, float(dep[n, 0, hh, ww]))
                                acc += w[o, c, i, j] * (v * f)
                    if b is not None:
                        acc = b[o] + acc
                    out[n, o, y, xo] = acc
    return out


def oracle_depthaware_conv2d_vjp(grad_output, input, depth, weight, bias=None, stride=1,
                                 padding=0, dilation=1, alpha=1.0):
    """Naive vector-Jacobian product of ``oracle_depthaware_conv2d``.

    Returns ``{"input", "depth", "weight"}`` plus ``"bias"`` when given. For every output
    cell, input channel and tap: ``d weight += g * xpad * F``; for taps in the image
    ``d input += g * w * F``, and where F is formed (and alpha > 0) the depth gradient of
    :func:`_conv_depth_gradient`.
    """
    go = f64(grad_output)
    x = f64(input)
    dep = f64(depth)
    w = f64(weight)
    N, _, H, W = x.shape
    O, C, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = _conv_setup(x, w, stride, padding, dilation)
    gi = np.zeros(x.shape, dtype=np.float64)
    gd = np.zeros(dep.shape, dtype=np.float64)
    gw = np.zeros(w.shape, dtype=np.float64)
    gb = np.zeros((O,), dtype=np.float64)
    for n in range(N):
        for o in range(O):
            for y in range(oh):
                for xo in range(ow):
                    g = go[n, o, y, xo]
                    gb[o] += g
                    h0 = y * sh - ph
                    w0 = xo * sw - pw
                    centre_in, (ch, cw), dc = _conv_centre(dep, n, h0, w0, kh, kw, dh, dw)
                    for c in range(C):
                        for i in range(kh):
                            for j in range(kw):
                                hh = h0 + i * dh
                                ww = w0 + j * dw
                                v = padded_get(x, n, c, hh, ww)
                                formed = centre_in and inside(x, hh, ww)
                                f = 1.0
                                if formed:
                                    dt = float(dep[n, 0, hh, ww])
                                    f = _similarity(alpha, dc, dt)
                                gw[o, c, i, j] += g * (v * f)
                                if not inside(x, hh, ww):
                                    continue
                                gi[n, c, hh, ww] += g * w[o, c, i, j] * f
    if alpha != 0:
        _conv_depth_gradient(gd, go, x, dep, w, stride, padding, dilation, alpha)
    result = {"input": gi, "depth": gd, "weight": gw}
    if bias is not None:
        result["bias"] = gb
    return result


def _conv_depth_gradient(gd, go, x, dep, w, stride, padding, dilation, alpha):
    """``gd += `` the depth gradient: for every window and every tap where F is formed,
    ``dL/dF = sum_c (sum_o g[o] * w[o, c, tap]) * x[c, tap]`` (the order of the
    definition: with an infinite input cell, the order decides between an infinity and
    inf - inf), then ``t = dL/dF * alpha * F * sign(depth[centre] - depth[tap])`` goes to
    the tap's depth and ``-t`` to the centre's."""
    N = x.shape[0]
    O, C, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = _conv_setup(x, w, stride, padding, dilation)
    for n in range(N):
        for y in range(oh):
            for xo in range(ow):
                h0 = y * sh - ph
                w0 = xo * sw - pw
                centre_in, (ch, cw), dc = _conv_centre(dep, n, h0, w0, kh, kw, dh, dw)
                for i in range(kh):
                    for j in range(kw):
                        hh = h0 + i * dh
                        ww = w0 + j * dw
                        if not (centre_in and inside(x, hh, ww)):
                            continue
                        dt = float(dep[n, 0, hh, ww])
                        grad_f = 0.0
                        for c in range(C):
                            grad_col = 0.0
                            for o in range(O):
                                grad_col += go[n, o, y, xo] * w[o, c, i, j]
                            grad_f += grad_col * float(x[n, c, hh, ww])
                        t = grad_f * _slope(alpha, _similarity(alpha, dc, dt), dc, dt)
                        gd[n, 0, hh, ww] += t
                        gd[n, 0, ch, cw] -= t


def _pool_setup(x, kernel_size, stride, padding):
    kh, kw = pair(kernel_size)
    sh, sw = pair(kernel_size if stride is None or stride == () else stride)
    ph, pw = pair(padding)
    oh = (x.shape[2] + 2 * ph - kh) // sh + 1
    ow = (x.shape[3] + 2 * pw - kw) // sw + 1
    return kh, kw, sh, sw, ph, pw, oh, ow


def _pool_axis(o, k, s, p, size):
    """``(first, end, padded)`` along one axis: the window ``[o*s - p, min(o*s - p + k,
    size + p))`` has ``padded`` cells; ``[first, end)`` is its part inside the image."""
    start = o * s - p
    stop = min(start + k, size + p)
    return max(start, 0), min(stop, size), stop - start


def _pool_window(x, dep, n, y, xo, kh, kw, sh, sw, ph, pw, alpha, count_include_pad):
    """One window: its in-image cells with their F, the centre, and the divisor."""
    H, W = x.shape[2], x.shape[3]
    hs, he, pool_h = _pool_axis(y, kh, sh, ph, H)
    ws, we, pool_w = _pool_axis(xo, kw, sw, pw, W)
    ch = (hs + he) // 2
    cw = (ws + we) // 2
    dc = float(dep[n, 0, ch, cw])
    cells = []
    divisor = float(pool_h * pool_w) if count_include_pad else 0.0
    for hh in range(hs, he):
        for ww in range(ws, we):
            f = _similarity(alpha, dc, float(dep[n, 0, hh, ww]))
            cells.append((hh, ww, f))
            if count_include_pad:
                divisor -= 1.0 - f
            else:
                divisor += f
    return cells, (ch, cw), dc, divisor


def oracle_depthaware_avg_pool2d(input, depth, kernel_size, stride=None, padding=0, alpha=1.0,
                                 count_include_pad=True):
    """Naive depth-aware average pooling.

    input ``[N, C, H, W]``, depth ``[N, 1, H, W]``. For each window: ``pool`` cells of the
    padded window ``[y*sh - ph, min(y*sh - ph + kh, H + ph))`` (x the same), the centre at
    the middle (floor) of the window clipped to the image, F per in-image cell, and
    ``out = sum F*x / divisor`` with ``divisor = pool - sum(1 - F)`` (count_include_pad)
    or ``sum F``.
    """
    x = f64(input)
    dep = f64(depth)
    N, C = x.shape[:2]
    kh, kw, sh, sw, ph, pw, oh, ow = _pool_setup(x, kernel_size, stride, padding)
    out = np.zeros((N, C, oh, ow), dtype=np.float64)
    for n in range(N):
        for c in range(C):
            for y in range(oh):
                for xo in range(ow):
                    cells, _, _, divisor = _pool_window(x, dep, n, y, xo, kh, kw, sh, sw, ph, pw,
                                                        alpha, count_include_pad)
                    num = 0.0
                    for hh, ww, f in cells:
                        num += x[n, c, hh, ww] * f
                    out[n, c, y, xo] = num / divisor
    return out


def oracle_depthaware_avg_pool2d_vjp(grad_output, input, depth, kernel_size, stride=None,
                                     padding=0, alpha=1.0, count_include_pad=True):
    """Naive vector-Jacobian product of ``oracle_depthaware_avg_pool2d``: ``{"input",
    "depth"}``. Per window and channel, with ``out = num / divisor`` (the divisor grows by
    one per unit of F in both modes): ``d input[cell] += g * F / divisor``, and (alpha > 0)
    ``t = g * (x[cell] - out) / divisor * alpha * F * sign(depth[centre] - depth[cell])``
    goes to ``d depth[cell]`` (+t) and ``d depth[centre]`` (-t).
    """
    go = f64(grad_output)
    x = f64(input)
    dep = f64(depth)
    N, C = x.shape[:2]
    kh, kw, sh, sw, ph, pw, oh, ow = _pool_setup(x, kernel_size, stride, padding)
    gi = np.zeros(x.shape, dtype=np.float64)
    gd = np.zeros(dep.shape, dtype=np.float64)
    for n in range(N):
        for c in range(C):
            for y in range(oh):
                for xo in range(ow):
                    cells, (ch, cw), dc, divisor = _pool_window(
                        x, dep, n, y, xo, kh, kw, sh, sw, ph, pw, alpha, count_include_pad)
                    num = 0.0
                    for hh, ww, f in cells:
                        num += x[n, c, hh, ww] * f
                    out = num / divisor
                    g = go[n, c, y, xo]
                    for hh, ww, f in cells:
                        gi[n, c, hh, ww] += g * f / divisor
                        if alpha != 0:
                            dt = float(dep[n, 0, hh, ww])
                            t = g * (x[n, c, hh, ww] - out) / divisor * _slope(alpha, f, dc, dt)
                            gd[n, 0, hh, ww] += t
                            gd[n, 0, ch, cw] -= t
    return {"input": gi, "depth": gd}
