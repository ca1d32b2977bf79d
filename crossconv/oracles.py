"""Naive loop-by-loop oracles for the crossconv operations (see SPEC.md).

Every function here is a literal transcription of a formula in SPEC.md: plain Python
``for`` loops over every index, scalar ``math`` functions, and NumPy used only to
allocate and hold arrays. They are deliberately slow and deliberately independent of any
vectorised implementation, so that the vectorised NumPy reference (and through it every
backend) can be tested against them to ~1e-12 on tiny shapes. Inputs are assumed to be
valid (no argument checking); everything is computed in float64 and returned as float64
(pooling indices as int64).

Each operation ``op`` has ``oracle_op``; most also have ``oracle_op_vjp(grad_output,
<the op's own arguments>)`` returning a dict from differentiable argument name to its
gradient (optional arguments that are ``None`` are absent). ``seed_customconv_2d``
transcribes the structure of the Torch7 ``nn.CustomConv`` module from the seeds.
"""

import math

import numpy as np

__all__ = [
    "oracle_conv2d",
    "oracle_conv2d_vjp",
    "oracle_xcorr2d",
    "oracle_xcorr2d_vjp",
    "oracle_xcorr2d_depthwise",
    "oracle_xcorr2d_depthwise_vjp",
    "oracle_tanprod_conv2d",
    "oracle_tanprod_conv2d_vjp",
    "oracle_conv2_5d",
    "oracle_conv2_5d_vjp",
    "oracle_deform_conv2d",
    "oracle_deform_conv2d_vjp",
    "oracle_max_pool2d",
    "oracle_max_pool2d_vjp",
    "oracle_avg_pool2d",
    "oracle_avg_pool2d_vjp",
    "seed_customconv_2d",
]


# --------------------------------------------------------------------------- helpers


def _f64(a):
    """The array ``a`` as a float64 NumPy array (a copy only if needed)."""
    return np.asarray(a, dtype=np.float64)


def _pair(v):
    """An int or a sequence of one or two ints as a tuple of two Python ints."""
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[-1])
    return int(v), int(v)


def _tan(v):
    """``tan(v)``, NaN for a non-finite ``v`` (IEEE, like np.tan; math.tan raises)."""
    return math.tan(v) if math.isfinite(v) else math.nan


def _cos(v):
    """``cos(v)``, NaN for a non-finite ``v``."""
    return math.cos(v) if math.isfinite(v) else math.nan


def _padded_get(x, n, c, y, xx):
    """``x[n, c, y, xx]`` as a float, or 0.0 when (y, xx) lies outside the H x W plane.

    (y, xx) are coordinates of the *unpadded* input, so this reads the zero-padded
    input ``xpad`` at padded coordinates (y + pad_top, xx + pad_left).
    """
    H = x.shape[2]
    W = x.shape[3]
    if 0 <= y < H and 0 <= xx < W:
        return float(x[n, c, y, xx])
    return 0.0


def _inside(x, y, xx):
    """True when (y, xx) is a cell of the H x W plane of the 4-D array ``x``."""
    return 0 <= y < x.shape[2] and 0 <= xx < x.shape[3]


def _conv_out_size(size, pad_lo, pad_hi, k, stride, dilation):
    """``floor((size + pad_lo + pad_hi - dilation*(k-1) - 1) / stride) + 1``."""
    return (size + pad_lo + pad_hi - dilation * (k - 1) - 1) // stride + 1


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
    ph, pw = _pair(padding)
    return ph, ph, pw, pw


# --------------------------------------------------------------------------- conv2d


def oracle_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Naive grouped cross-correlation with torch semantics.

    input ``[N, C, H, W]``, weight ``[O, C/groups, kh, kw]``, bias ``[O]`` or None;
    stride/dilation an int or pair, padding an int, a pair, "valid" or "same". Returns
    ``[N, O, oh, ow]`` with ``out[n,o,y,x] = bias[o] + sum_{c in group(o), i, j}
    w[o,c,i,j] * xpad[n, c, y*sh + i*dh, x*sw + j*dw]``, where output channel o belongs to
    group ``o // (O/groups)`` and reads input channels ``g*C/groups .. (g+1)*C/groups-1``;
    padded cells read 0.
    """
    x = _f64(input)
    w = _f64(weight)
    b = None if bias is None else _f64(bias)
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    pt, pb, pl, pr = _conv2d_padding(padding, kh, kw, dh, dw)
    oh = _conv_out_size(H, pt, pb, kh, sh, dh)
    ow = _conv_out_size(W, pl, pr, kw, sw, dw)
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
                                v = _padded_get(x, n, c, y * sh + i * dh - pt, xo * sw + j * dw - pl)
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
    go = _f64(grad_output)
    x = _f64(input)
    w = _f64(weight)
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
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
                                gw[o, cl, i, j] += gval * _padded_get(x, n, c, yy, xx)
                                if _inside(x, yy, xx):
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
    s = _f64(search)
    t = _f64(template)
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
    go = _f64(grad_output)
    s = _f64(search)
    t = _f64(template)
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
    s = _f64(search)
    t = _f64(template)
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
    go = _f64(grad_output)
    s = _f64(search)
    t = _f64(template)
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


# --------------------------------------------------------------------------- tanprod_conv2d


def _tanprod_factors(x, w, n, o, y, xo, sh, sw, ph, pw, dh, dw):
    """The window of output (n, o, y, xo) as a list of factor records.

    Each record is ``(a, c, i, j, yy, xx)`` with ``a = xpad[n,c,tap] + w[o,c,i,j]`` (the
    argument of tan) and (yy, xx) the tap's input coordinates (possibly outside), in
    (c, i, j) row-major order.
    """
    C = x.shape[1]
    kh, kw = w.shape[2], w.shape[3]
    records = []
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                yy = y * sh + i * dh - ph
                xx = xo * sw + j * dw - pw
                a = _padded_get(x, n, c, yy, xx) + w[o, c, i, j]
                records.append((a, c, i, j, yy, xx))
    return records


def oracle_tanprod_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """Naive tangent-product convolution (Torch7 ``nn.CustomConv``, generalised).

    input ``[N, C, H, W]``, weight ``[O, C, kh, kw]``, bias ``[O]`` or None. Returns
    ``[N, O, oh, ow]`` with ``out[n,o,y,x] = bias[o] + prod_{c,i,j} tan(xpad[n, c, y*sh +
    i*dh, x*sw + j*dw] + w[o,c,i,j])``; the input is zero padded, so a padded tap
    contributes the factor ``tan(w[o,c,i,j])``.
    """
    x = _f64(input)
    w = _f64(weight)
    b = None if bias is None else _f64(bias)
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    oh = _conv_out_size(H, ph, ph, kh, sh, dh)
    ow = _conv_out_size(W, pw, pw, kw, sw, dw)
    out = np.zeros((N, O, oh, ow), dtype=np.float64)
    for n in range(N):
        for o in range(O):
            for y in range(oh):
                for xo in range(ow):
                    prod = 1.0
                    for c in range(C):
                        for i in range(kh):
                            for j in range(kw):
                                v = _padded_get(x, n, c, y * sh + i * dh - ph, xo * sw + j * dw - pw)
                                prod *= _tan(v + w[o, c, i, j])
                    if b is not None:
                        prod = b[o] + prod
                    out[n, o, y, xo] = prod
    return out


def oracle_tanprod_conv2d_vjp(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1):
    """Naive vector-Jacobian product of ``oracle_tanprod_conv2d`` (exact at zero factors).

    grad_output ``[N, O, oh, ow]``; the other arguments as for ``oracle_tanprod_conv2d``.
    Returns ``{"input": [N, C, H, W], "weight": [O, C, kh, kw], "bias": [O]}`` (no "bias"
    when bias is None). For each output cell and each factor f (tap (c, i, j), argument
    ``a_f = xpad + w``) the derivative is ``g * (product of all OTHER factors' tan) *
    sec^2(a_f)``, the leave-one-out product being formed by looping over all factors and
    skipping f (never by dividing). It is added to ``d weight[o,c,i,j]`` for every tap and
    to ``d input`` only for taps inside the input; ``d bias[o] = sum g``.
    """
    go = _f64(grad_output)
    x = _f64(input)
    w = _f64(weight)
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    oh, ow = go.shape[2], go.shape[3]
    gi = np.zeros((N, C, H, W), dtype=np.float64)
    gw = np.zeros((O, C, kh, kw), dtype=np.float64)
    gb = np.zeros((O,), dtype=np.float64)
    for n in range(N):
        for o in range(O):
            for y in range(oh):
                for xo in range(ow):
                    gval = go[n, o, y, xo]
                    gb[o] += gval
                    records = _tanprod_factors(x, w, n, o, y, xo, sh, sw, ph, pw, dh, dw)
                    tans = [_tan(r[0]) for r in records]
                    for f in range(len(records)):
                        a, c, i, j, yy, xx = records[f]
                        others = 1.0
                        for f2 in range(len(records)):
                            if f2 != f:
                                others *= tans[f2]
                        sec2 = 1.0 / (_cos(a) ** 2)
                        d = gval * others * sec2
                        gw[o, c, i, j] += d
                        if _inside(x, yy, xx):
                            gi[n, c, yy, xx] += d
    result = {"input": gi, "weight": gw}
    if bias is not None:
        result["bias"] = gb
    return result


# --------------------------------------------------------------------------- conv2_5d


def _conv2_5d_masks(depth, n, y, xo, B, kh, kw, sh, sw, ph, pw, dh, dw, focal, pixel_size):
    """Depth-bin masks ``m[l][i][j]`` (0.0 or 1.0) of output position (y, xo) of sample n.

    ``d_c = depth_pad`` at the centre tap (kh//2, kw//2), ``s = d_c * pixel_size / focal``,
    edges ``e_k = d_c + (k - B/2) * s`` (k = 0..B, computed in exactly this form) and
    ``m[l][i][j] = 1`` iff ``e_l <= depth_pad[tap (i,j)] < e_{l+1}`` (half-open).
    NaN/0/negative s opens no bin because every comparison is then False.
    """
    ci = kh // 2
    cj = kw // 2
    d_c = _padded_get(depth, n, 0, y * sh + ci * dh - ph, xo * sw + cj * dw - pw)
    s = d_c * pixel_size / focal
    masks = []
    for l in range(B):
        lo = d_c + (l - B / 2) * s
        hi = d_c + (l + 1 - B / 2) * s
        rows = []
        for i in range(kh):
            row = []
            for j in range(kw):
                d_t = _padded_get(depth, n, 0, y * sh + i * dh - ph, xo * sw + j * dw - pw)
                row.append(1.0 if (lo <= d_t and d_t < hi) else 0.0)
            rows.append(row)
        masks.append(rows)
    return masks


def oracle_conv2_5d(input, depth, weight, bias=None, stride=1, padding=0, dilation=1, focal=1.0,
                    pixel_size=1.0):
    """Naive 2.5D convolution (Xing et al., ICIP 2019) exactly as SPEC.md defines it.

    input ``[N, C, H, W]``, depth ``[N, 1, H, W]``, weight ``[B, O, C, kh, kw]`` (B depth
    bins, kh and kw odd), bias ``[O]`` or None. Returns ``[N, O, oh, ow]`` with
    ``out[n,o,p] = bias[o] + sum_l sum_{c,i,j} weight[l,o,c,i,j] * xpad[n,c,tap] *
    m_l[p,tap]`` where the masks come from the zero-padded depth (see
    ``_conv2_5d_masks``). The product ``x * m`` is formed even when m is 0, so a
    non-finite input value gives NaN even in a closed bin.
    """
    x = _f64(input)
    dep = _f64(depth)
    w = _f64(weight)
    b = None if bias is None else _f64(bias)
    N, C, H, W = x.shape
    B, O, _, kh, kw = w.shape
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    oh = _conv_out_size(H, ph, ph, kh, sh, dh)
    ow = _conv_out_size(W, pw, pw, kw, sw, dw)
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
                                    v = _padded_get(x, n, c, y * sh + i * dh - ph, xo * sw + j * dw - pw)
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
    go = _f64(grad_output)
    x = _f64(input)
    dep = _f64(depth)
    w = _f64(weight)
    N, C, H, W = x.shape
    B, O, _, kh, kw = w.shape
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
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
                                    gw[l, o, c, i, j] += gval * _padded_get(x, n, c, yy, xx) * m[l][i][j]
                                    if _inside(x, yy, xx):
                                        gi[n, c, yy, xx] += gval * w[l, o, c, i, j] * m[l][i][j]
    result = {"input": gi, "weight": gw}
    if bias is not None:
        result["bias"] = gb
    return result


# --------------------------------------------------------------------------- deform_conv2d


def _corner(x, n, c, yy, xx):
    """Input value at integer corner (yy, xx) of plane (n, c), 0.0 outside the image."""
    return _padded_get(x, n, c, yy, xx)


def _bilinear(x, n, c, y, xc):
    """Bilinear sample of plane (n, c) at real (y, xc) with zero outside (torchvision).

    NaN if a coordinate is NaN; 0 if ``y <= -1 or y >= H or xc <= -1 or xc >= W``;
    otherwise the four corners ``floor(y), floor(y)+1`` x ``floor(xc), floor(xc)+1`` (each
    0 when outside) weighted ``(1-ly)(1-lx), (1-ly)lx, ly(1-lx), ly*lx``.
    """
    H, W = x.shape[2], x.shape[3]
    if math.isnan(y) or math.isnan(xc):
        return math.nan
    if y <= -1 or y >= H or xc <= -1 or xc >= W:
        return 0.0
    y0 = math.floor(y)
    x0 = math.floor(xc)
    y1 = y0 + 1
    x1 = x0 + 1
    ly = y - y0
    lx = xc - x0
    hy = 1.0 - ly
    hx = 1.0 - lx
    v00 = _corner(x, n, c, y0, x0)
    v01 = _corner(x, n, c, y0, x1)
    v10 = _corner(x, n, c, y1, x0)
    v11 = _corner(x, n, c, y1, x1)
    return hy * hx * v00 + hy * lx * v01 + ly * hx * v10 + ly * lx * v11


def _bilinear_corner_weights(x, y, xc):
    """The in-image corners of the bilinear sample at (y, xc) with their weights.

    A list of ``(yy, xx, weight)`` of the corners with both weight factors > 0 (the
    corners torchvision's backward scatters to); empty when the sample is 0 by the
    out-of-image rule (see ``_bilinear``) or when a coordinate is NaN.
    """
    H, W = x.shape[2], x.shape[3]
    if math.isnan(y) or math.isnan(xc):
        return []
    if y <= -1 or y >= H or xc <= -1 or xc >= W:
        return []
    y0 = math.floor(y)
    x0 = math.floor(xc)
    ly = y - y0
    lx = xc - x0
    hy = 1.0 - ly
    hx = 1.0 - lx
    # torchvision's col2im: a corner gets gradient only when |y - row| < 1 and
    # |x - col| < 1, i.e. both of its weight factors are > 0.
    corners = [
        (y0, x0, hy, hx),
        (y0, x0 + 1, hy, lx),
        (y0 + 1, x0, ly, hx),
        (y0 + 1, x0 + 1, ly, lx),
    ]
    return [(yy, xx, fy * fx) for (yy, xx, fy, fx) in corners
            if _inside(x, yy, xx) and fy > 0 and fx > 0]


def _bilinear_coord_grads(x, n, c, y, xc):
    """(d sample/dy, d sample/dx) at (y, xc) with torchvision's conventions.

    Corners ``floor`` and ``floor + 1`` (so right-hand derivatives at integers), no
    whole-sample early-out, out-of-image corners read 0:
    ``d/dy = (1-lx)*(v10 - v00) + lx*(v11 - v01)``,
    ``d/dx = (1-ly)*(v01 - v00) + ly*(v11 - v10)``. NaN coordinate -> (NaN, NaN);
    an infinite coordinate (every corner outside) -> (0.0, 0.0).
    """
    if math.isnan(y) or math.isnan(xc):
        return math.nan, math.nan
    if math.isinf(y) or math.isinf(xc):
        return 0.0, 0.0
    y0 = math.floor(y)
    x0 = math.floor(xc)
    ly = y - y0
    lx = xc - x0
    v00 = _corner(x, n, c, y0, x0)
    v01 = _corner(x, n, c, y0, x0 + 1)
    v10 = _corner(x, n, c, y0 + 1, x0)
    v11 = _corner(x, n, c, y0 + 1, x0 + 1)
    d_dy = (1.0 - lx) * (v10 - v00) + lx * (v11 - v01)
    d_dx = (1.0 - ly) * (v01 - v00) + ly * (v11 - v10)
    return d_dy, d_dx


def _deform_geometry(input_shape, offset_shape, weight_shape):
    """(G, Cg, Og, Go, K, c_per_offset_group) for deform_conv2d's grouping rules."""
    C = input_shape[1]
    O, Cg, kh, kw = weight_shape
    G = C // Cg
    K = kh * kw
    Go = offset_shape[1] // (2 * K)
    return G, Cg, O // G, Go, K, C // Go


def _deform_point(off, msk, n, og, K, i, j, kw, y, xo, sh, sw, ph, pw, dh, dw):
    """(sample y, sample x, mask value) of tap (i, j), offset group og, output (y, xo)."""
    k = i * kw + j
    dy = off[n, og * 2 * K + 2 * k, y, xo]
    dx = off[n, og * 2 * K + 2 * k + 1, y, xo]
    mval = 1.0 if msk is None else float(msk[n, og * K + k, y, xo])
    py = y * sh - ph + i * dh + float(dy)
    px = xo * sw - pw + j * dw + float(dx)
    return py, px, mval


def oracle_deform_conv2d(input, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None):
    """Naive deformable convolution v1/v2 with torchvision semantics.

    input ``[N, C, H, W]``, offset ``[N, 2*Go*kh*kw, oh, ow]``, weight ``[O, C/G, kh, kw]``
    (``G = C // weight.shape[1]`` weight groups; output channel o belongs to group
    ``o // (O/G)``), bias ``[O]`` or None, mask ``[N, Go*kh*kw, oh, ow]`` or None (= 1).
    Input channel c uses offset group ``c // (C/Go)``; tap ``k = i*kw + j`` reads dy from
    offset channel ``g*2K + 2k``, dx from ``g*2K + 2k + 1``, the mask from ``g*K + k``.
    Returns ``[N, O, oh, ow]``: ``out = bias + sum_{c,i,j} w * mask * bilinear(input,
    y*sh - ph + i*dh + dy, x*sw - pw + j*dw + dx)``.
    """
    x = _f64(input)
    off = _f64(offset)
    w = _f64(weight)
    b = None if bias is None else _f64(bias)
    msk = None if mask is None else _f64(mask)
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    G, Cg, Og, Go, K, Cpo = _deform_geometry(x.shape, off.shape, w.shape)
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    oh = _conv_out_size(H, ph, ph, kh, sh, dh)
    ow = _conv_out_size(W, pw, pw, kw, sw, dw)
    out = np.zeros((N, O, oh, ow), dtype=np.float64)
    for n in range(N):
        for o in range(O):
            g = o // Og
            for y in range(oh):
                for xo in range(ow):
                    acc = 0.0
                    for cl in range(Cg):
                        c = g * Cg + cl
                        og = c // Cpo
                        for i in range(kh):
                            for j in range(kw):
                                py, px, mval = _deform_point(off, msk, n, og, K, i, j, kw, y, xo,
                                                             sh, sw, ph, pw, dh, dw)
                                acc += w[o, cl, i, j] * (mval * _bilinear(x, n, c, py, px))
                    if b is not None:
                        acc = b[o] + acc
                    out[n, o, y, xo] = acc
    return out


def oracle_deform_conv2d_vjp(grad_output, input, offset, weight, bias=None, stride=1, padding=0, dilation=1,
                             mask=None):
    """Naive vector-Jacobian product of ``oracle_deform_conv2d`` (torchvision conventions).

    grad_output ``[N, O, oh, ow]``; the other arguments as for ``oracle_deform_conv2d``.
    Returns a dict with "input" ``[N, C, H, W]``, "offset" (offset's shape), "weight"
    ``[O, C/G, kh, kw]``, and "bias" ``[O]`` / "mask" (mask's shape) when given. With
    ``grad_col[n,c,k,y,x] = sum_{o in group(c)} w[o, c - g*C/G, i, j] * g[n,o,y,x]``:
    input gets ``mask * grad_col`` times the bilinear weight at each in-image corner (the
    transpose of the forward sampling; a NaN coordinate contributes nothing); dy/dx get
    ``mask * grad_col * d sample/dy|dx`` (``_bilinear_coord_grads``: floor corners, no
    early-out); mask gets ``grad_col * sample``; weight gets ``g * mask * sample``; bias
    gets ``sum g``. Gradients of all channels of an offset group are summed.
    """
    go = _f64(grad_output)
    x = _f64(input)
    off = _f64(offset)
    w = _f64(weight)
    msk = None if mask is None else _f64(mask)
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    G, Cg, Og, Go, K, Cpo = _deform_geometry(x.shape, off.shape, w.shape)
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    oh, ow = go.shape[2], go.shape[3]
    gi = np.zeros(x.shape, dtype=np.float64)
    goff = np.zeros(off.shape, dtype=np.float64)
    gw = np.zeros(w.shape, dtype=np.float64)
    gb = np.zeros((O,), dtype=np.float64)
    gm = None if msk is None else np.zeros(msk.shape, dtype=np.float64)

    # Weight and bias: out[n,o,y,x] = bias[o] + sum w[o,cl,i,j] * mask * sample.
    for n in range(N):
        for o in range(O):
            g = o // Og
            for y in range(oh):
                for xo in range(ow):
                    gval = go[n, o, y, xo]
                    gb[o] += gval
                    for cl in range(Cg):
                        c = g * Cg + cl
                        og = c // Cpo
                        for i in range(kh):
                            for j in range(kw):
                                py, px, mval = _deform_point(off, msk, n, og, K, i, j, kw, y, xo,
                                                             sh, sw, ph, pw, dh, dw)
                                gw[o, cl, i, j] += gval * mval * _bilinear(x, n, c, py, px)

    # Input, offset, mask: through the column gradient grad_col = sum_o w * grad_out.
    for n in range(N):
        for c in range(C):
            g = c // Cg
            cl = c - g * Cg
            og = c // Cpo
            for i in range(kh):
                for j in range(kw):
                    k = i * kw + j
                    for y in range(oh):
                        for xo in range(ow):
                            gcol = 0.0
                            for o in range(g * Og, (g + 1) * Og):
                                gcol += w[o, cl, i, j] * go[n, o, y, xo]
                            py, px, mval = _deform_point(off, msk, n, og, K, i, j, kw, y, xo,
                                                         sh, sw, ph, pw, dh, dw)
                            for (yy, xx, wt) in _bilinear_corner_weights(x, py, px):
                                gi[n, c, yy, xx] += mval * wt * gcol
                            d_dy, d_dx = _bilinear_coord_grads(x, n, c, py, px)
                            goff[n, og * 2 * K + 2 * k, y, xo] += mval * d_dy * gcol
                            goff[n, og * 2 * K + 2 * k + 1, y, xo] += mval * d_dx * gcol
                            if gm is not None:
                                gm[n, og * K + k, y, xo] += gcol * _bilinear(x, n, c, py, px)

    result = {"input": gi, "offset": goff, "weight": gw}
    if bias is not None:
        result["bias"] = gb
    if gm is not None:
        result["mask"] = gm
    return result


# --------------------------------------------------------------------------- pooling


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
    x = _f64(input)
    N, C, H, W = x.shape
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None or stride == () else stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
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
                            if not _inside(x, yy, xx):
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
    go = _f64(grad_output)
    x = _f64(input)
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
    x = _f64(input)
    N, C, H, W = x.shape
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None or stride == () else stride)
    ph, pw = _pair(padding)
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
    go = _f64(grad_output)
    x = _f64(input)
    N, C, H, W = x.shape
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None or stride == () else stride)
    ph, pw = _pair(padding)
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


# --------------------------------------------------------------------------- the seed


def seed_customconv_2d(input2d, weight2d, kernel="tan"):
    """The structure of the Torch7 ``nn.CustomConv`` forward (seed 003) on one 2-D map.

    input2d ``[H, W]``, weight2d ``[kh, kw]``; no padding, stride 1. Returns
    ``[H-kh+1, W-kw+1]``. As in the seed, for each kernel tap (i, j) the receptive-field
    view ``input2d[i : i+out_h, j : j+out_w]`` (the Lua ``input[{{i, i-k-1}, {j, j-k-1}}]``
    in 0-based form) is combined in place, element by element, into the output:
    kernel="tan" starts from ones and multiplies by ``tan(view + w[i, j])``;
    kernel="linear" starts from zeros and adds ``view * w[i, j]`` (the seed's variant
    equal to SpatialConvolutionMM with zero bias).
    """
    inp = _f64(input2d)
    w = _f64(weight2d)
    H, W = inp.shape
    kh, kw = w.shape
    out_h = H - kh + 1
    out_w = W - kw + 1
    if kernel == "tan":
        output = np.ones((out_h, out_w), dtype=np.float64)
    elif kernel == "linear":
        output = np.zeros((out_h, out_w), dtype=np.float64)
    else:
        raise ValueError(f"kernel must be 'tan' or 'linear', got {kernel!r}")
    for i in range(kh):
        for j in range(kw):
            view = inp[i:i + out_h, j:j + out_w]  # the tap's receptive-field view, no copy
            wij = float(w[i, j])
            for r in range(out_h):
                for s in range(out_w):
                    if kernel == "tan":
                        output[r, s] *= _tan(view[r, s] + wij)
                    else:
                        output[r, s] += view[r, s] * wij
    return output
