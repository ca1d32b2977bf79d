"""Loop oracle of ``conv2_5d`` (docs/conv2_5d.md's half-open depth bins)."""

import numpy as np

from .common import conv_out_size, f64, inside, padded_get, pair


def _conv2_5d_masks(depth, n, y, xo, B, kh, kw, sh, sw, ph, pw, dh, dw, focal, pixel_size):
    """Depth-bin masks ``m[l][i][j]`` (0.0 or 1.0) of output position (y, xo) of sample n.

    ``d_c = depth_pad`` at the centre tap (kh//2, kw//2), ``s = d_c * pixel_size / focal``,
    edges ``e_k = d_c + (k - B/2) * s`` (k = 0..B, computed in exactly this form) and
    ``m[l][i][j] = 1`` iff ``e_l <= depth_pad[tap (i,j)] < e_{l+1}`` (half-open).
    NaN/0/negative s opens no bin because every comparison is then False.
    """
    ci = kh // 2
    cj = kw // 2
    d_c = padded_get(depth, n, 0, y * sh + ci * dh - ph, xo * sw + cj * dw - pw)
    s = d_c * pixel_size / focal
    masks = []
    for l in range(B):
        lo = d_c + (l - B / 2) * s
        hi = d_c + (l + 1 - B / 2) * s
        rows = []
        for i in range(kh):
            row = []
            for j in range(kw):
                d_t = padded_get(depth, n, 0, y * sh + i * dh - ph, xo * sw + j * dw - pw)
                row.append(1.0 if (lo <= d_t and d_t < hi) else 0.0)
            rows.append(row)
        masks.append(rows)
    return masks


def oracle_conv2_5d(input, depth, weight, bias=None, stride=1, padding=0, dilation=1, focal=1.0,
                    pixel_size=1.0):
    """Naive 2.5D convolution (Xing et al., ICIP 2019) exactly as docs/conv2_5d.md defines it.

    input ``[N, C, H, W]``, depth ``[N, 1, H, W]``, weight ``[B, O, C, kh, kw]`` (B depth
    bins, kh and kw odd), bias ``[O]`` or None. Returns ``[N, O, oh, ow]`` with
    ``out[n,o,p] = bias[o] + sum_l sum_{c,i,j} weight[l,o,c,i,j] * xpad[n,c,tap] *
    m_l[p,tap]`` where the masks come from the zero-padded depth (see
    ``_conv2_5d_masks``). The product ``x * m`` is formed even when m is 0, so a
    non-finite input value gives NaN even in a closed bin.
    """
    x = f64(input)
    dep = f64(depth)
    w = f64(weight)
    b = None if bias is None else f64(bias)
    N, C, H, W = x.shape
    B, O, _, kh, kw = w.shape
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    dh, dw = pair(dilation)
    oh = conv_out_size(H, ph, ph, kh, sh, dh)
    ow = conv_out_size(W, pw, pw, kw, sw, dw)
    out = np.zeros((N, O, oh, ow), dtype=np.float64)
    for n in range(N):
        for y in range(oh):
            for xo in range(ow):
                m = _conv2_5d_masks(dep, n, y, xo, B, kh, kw, sh, sw, ph, pw, dh, dw, focal, pixel_size)
                for o in range(O):
                    acc = 0.0
                    for l in range(B):
                        for c in range(C):
                            for i in range(kh):
                                for j in range(kw):
                                    v = padded_get(x, n, c, y * sh + i * dh - ph, xo * sw + j * dw - pw)
                                    acc += w[l, o, c, i, j] * v * m[l][i][j]
                    if b is not None:
                        acc = b[o] + acc
                    out[n, o, y, xo] = acc
    return out


def oracle_conv2_5d_vjp(grad_output, input, depth, weight, bias=None, stride=1, padding=0, dilation=1,
                        focal=1.0, pixel_size=1.0):
    """Naive vector-Jacobian product of ``oracle_conv2_5d`` (depth is not differentiable).

    grad_output ``[N, O, oh, ow]``; the other arguments as for ``oracle_conv2_5d``.
    Returns ``{"input": [N, C, H, W], "weight": [B, O, C, kh, kw], "bias": [O]}`` (no
    "bias" when bias is None; never a "depth" key): ``d input[tap] += g * w[l,o,c,i,j] *
    m_l`` for taps inside the input, ``d weight[l,o,c,i,j] += g * xpad * m_l``,
    ``d bias[o] = sum g``.
    """
    go = f64(grad_output)
    x = f64(input)
    dep = f64(depth)
    w = f64(weight)
    N, C, H, W = x.shape
    B, O, _, kh, kw = w.shape
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    dh, dw = pair(dilation)
    oh, ow = go.shape[2], go.shape[3]
    gi = np.zeros((N, C, H, W), dtype=np.float64)
    gw = np.zeros((B, O, C, kh, kw), dtype=np.float64)
    gb = np.zeros((O,), dtype=np.float64)
    for n in range(N):
        for y in range(oh):
            for xo in range(ow):
                m = _conv2_5d_masks(dep, n, y, xo, B, kh, kw, sh, sw, ph, pw, dh, dw, focal, pixel_size)
                for o in range(O):
                    gval = go[n, o, y, xo]
                    gb[o] += gval
                    for l in range(B):
                        for c in range(C):
                            for i in range(kh):
                                for j in range(kw):
                                    yy = y * sh + i * dh - ph
                                    xx = xo * sw + j * dw - pw
                                    gw[l, o, c, i, j] += gval * padded_get(x, n, c, yy, xx) * m[l][i][j]
                                    if inside(x, yy, xx):
                                        gi[n, c, yy, xx] += gval * w[l, o, c, i, j] * m[l][i][j]
    result = {"input": gi, "weight": gw}
    if bias is not None:
        result["bias"] = gb
    return result
