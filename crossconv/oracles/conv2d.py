"""Loop oracles of ``conv2d``, ``xcorr2d`` and ``xcorr2d_depthwise`` (docs/conv2d.md)."""

import numpy as np

from .common import conv_out_size, f64, inside, padded_get, pair


def _conv2d_padding(padding, kh, kw, dh, dw):
    """conv2d padding as (top, bottom, left, right) from an int, a pair, "valid", "same".

    "same" pads ``dilation*(k-1)`` in total per axis, ``total // 2`` on the top/left and
    the remainder (one more when odd) on the bottom/right, as torch does.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        # "same"
        total_h = dh * (kh - 1)
        total_w = dw * (kw - 1)
        top = total_h // 2
        left = total_w // 2
        return top, total_h - top, left, total_w - left
    ph, pw = pair(padding)
    return ph, ph, pw, pw


def oracle_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Naive grouped cross-correlation with torch semantics.

    input ``[N, C, H, W]``, weight ``[O, C/groups, kh, kw]``, bias ``[O]`` or None;
    stride/dilation an int or pair, padding an int, a pair, "valid" or "same". Returns
    ``[N, O, oh, ow]`` with ``out[n,o,y,x] = bias[o] + sum_{c in group(o), i, j}
    w[o,c,i,j] * xpad[n, c, y*sh + i*dh, x*sw + j*dw]``, where output channel o belongs to
    group ``o // (O/groups)`` and reads input channels ``g*C/groups .. (g+1)*C/groups-1``;
    padded cells read 0.
    """
    x = f64(input)
    w = f64(weight)
    b = None if bias is None else f64(bias)
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    pt, pb, pl, pr = _conv2d_padding(padding, kh, kw, dh, dw)
    oh = conv_out_size(H, pt, pb, kh, sh, dh)
    ow = conv_out_size(W, pl, pr, kw, sw, dw)
    Og = O // groups
    out = np.zeros((N, O, oh, ow), dtype=np.float64)
    for n in range(N):
        for o in range(O):
            g = o // Og
            for y in range(oh):
                for xo in range(ow):
                    acc = 0.0
                    for cl in range(Cg):
                        c = g * Cg + cl
                        for i in range(kh):
                            for j in range(kw):
                                v = padded_get(x, n, c, y * sh + i * dh - pt, xo * sw + j * dw - pl)
                                acc += w[o, cl, i, j] * v
                    if b is not None:
                        acc = b[o] + acc
                    out[n, o, y, xo] = acc
    return out


def oracle_conv2d_vjp(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Naive vector-Jacobian product of ``oracle_conv2d``.

    grad_output ``[N, O, oh, ow]``; the other arguments as for ``oracle_conv2d``. Returns
    ``{"input": [N, C, H, W], "weight": [O, C/groups, kh, kw], "bias": [O]}`` (no "bias"
    when bias is None): for every output cell and every tap that lands inside the input,
    ``d input += g * w`` and ``d weight += g * x``; padded taps add 0 to the weight
    gradient and nothing to the input gradient; ``d bias[o] = sum_{n,y,x} g``.
    """
    go = f64(grad_output)
    x = f64(input)
    w = f64(weight)
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    pt, pb, pl, pr = _conv2d_padding(padding, kh, kw, dh, dw)
    oh, ow = go.shape[2], go.shape[3]
    Og = O // groups
    gi = np.zeros((N, C, H, W), dtype=np.float64)
    gw = np.zeros((O, Cg, kh, kw), dtype=np.float64)
    gb = np.zeros((O,), dtype=np.float64)
    for n in range(N):
        for o in range(O):
            g = o // Og
            for y in range(oh):
                for xo in range(ow):
                    gval = go[n, o, y, xo]
                    gb[o] += gval
                    for cl in range(Cg):
                        c = g * Cg + cl
                        for i in range(kh):
                            for j in range(kw):
                                yy = y * sh + i * dh - pt
                                xx = xo * sw + j * dw - pl
                                gw[o, cl, i, j] += gval * padded_get(x, n, c, yy, xx)
                                if inside(x, yy, xx):
                                    gi[n, c, yy, xx] += gval * w[o, cl, i, j]
    result = {"input": gi, "weight": gw}
    if bias is not None:
        result["bias"] = gb
    return result


# --------------------------------------------------------------------------- xcorr2d


def oracle_xcorr2d(search, template):
    """Naive per-sample cross-correlation summed over channels (SiamFC).

    search ``[N, C, H, W]``, template ``[N, C, h, w]`` (sample n's template correlates only
    with sample n's search), no padding, stride 1. Returns ``[N, 1, H-h+1, W-w+1]`` with
    ``out[n,0,y,x] = sum_{c,i,j} search[n,c,y+i,x+j] * template[n,c,i,j]``.
    """
    s = f64(search)
    t = f64(template)
    N, C, H, W = s.shape
    h, w = t.shape[2], t.shape[3]
    oh, ow = H - h + 1, W - w + 1
    out = np.zeros((N, 1, oh, ow), dtype=np.float64)
    for n in range(N):
        for y in range(oh):
            for x in range(ow):
                acc = 0.0
                for c in range(C):
                    for i in range(h):
                        for j in range(w):
                            acc += s[n, c, y + i, x + j] * t[n, c, i, j]
                out[n, 0, y, x] = acc
    return out


def oracle_xcorr2d_vjp(grad_output, search, template):
    """Naive vector-Jacobian product of ``oracle_xcorr2d``.

    grad_output ``[N, 1, H-h+1, W-w+1]``, search ``[N, C, H, W]``, template
    ``[N, C, h, w]``. Returns ``{"search": [N, C, H, W], "template": [N, C, h, w]}`` with
    ``d search[n,c,y+i,x+j] += g[n,0,y,x] * template[n,c,i,j]`` and
    ``d template[n,c,i,j] += g[n,0,y,x] * search[n,c,y+i,x+j]``.
    """
    go = f64(grad_output)
    s = f64(search)
    t = f64(template)
    N, C, H, W = s.shape
    h, w = t.shape[2], t.shape[3]
    oh, ow = H - h + 1, W - w + 1
    gs = np.zeros((N, C, H, W), dtype=np.float64)
    gt = np.zeros((N, C, h, w), dtype=np.float64)
    for n in range(N):
        for y in range(oh):
            for x in range(ow):
                gval = go[n, 0, y, x]
                for c in range(C):
                    for i in range(h):
                        for j in range(w):
                            gs[n, c, y + i, x + j] += gval * t[n, c, i, j]
                            gt[n, c, i, j] += gval * s[n, c, y + i, x + j]
    return {"search": gs, "template": gt}


def oracle_xcorr2d_depthwise(search, template):
    """Naive per-sample, per-channel cross-correlation (SiamRPN++ depthwise xcorr).

    search ``[N, C, H, W]``, template ``[N, C, h, w]``, no padding, stride 1. Returns
    ``[N, C, H-h+1, W-w+1]`` with
    ``out[n,c,y,x] = sum_{i,j} search[n,c,y+i,x+j] * template[n,c,i,j]``.
    """
    s = f64(search)
    t = f64(template)
    N, C, H, W = s.shape
    h, w = t.shape[2], t.shape[3]
    oh, ow = H - h + 1, W - w + 1
    out = np.zeros((N, C, oh, ow), dtype=np.float64)
    for n in range(N):
        for c in range(C):
            for y in range(oh):
                for x in range(ow):
                    acc = 0.0
                    for i in range(h):
                        for j in range(w):
                            acc += s[n, c, y + i, x + j] * t[n, c, i, j]
                    out[n, c, y, x] = acc
    return out


def oracle_xcorr2d_depthwise_vjp(grad_output, search, template):
    """Naive vector-Jacobian product of ``oracle_xcorr2d_depthwise``.

    grad_output ``[N, C, H-h+1, W-w+1]``, search ``[N, C, H, W]``, template
    ``[N, C, h, w]``. Returns ``{"search": [N, C, H, W], "template": [N, C, h, w]}`` with
    ``d search[n,c,y+i,x+j] += g[n,c,y,x] * template[n,c,i,j]`` and
    ``d template[n,c,i,j] += g[n,c,y,x] * search[n,c,y+i,x+j]``.
    """
    go = f64(grad_output)
    s = f64(search)
    t = f64(template)
    N, C, H, W = s.shape
    h, w = t.shape[2], t.shape[3]
    oh, ow = H - h + 1, W - w + 1
    gs = np.zeros((N, C, H, W), dtype=np.float64)
    gt = np.zeros((N, C, h, w), dtype=np.float64)
    for n in range(N):
        for c in range(C):
            for y in range(oh):
                for x in range(ow):
                    gval = go[n, c, y, x]
                    for i in range(h):
                        for j in range(w):
                            gs[n, c, y + i, x + j] += gval * t[n, c, i, j]
                            gt[n, c, i, j] += gval * s[n, c, y + i, x + j]
    return {"search": gs, "template": gt}
