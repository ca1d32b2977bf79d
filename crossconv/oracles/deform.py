"""Loop oracle of ``deform_conv2d`` (torchvision semantics)."""

import math

import numpy as np

from .common import conv_out_size, f64, inside, padded_get, pair


def _corner(x, n, c, yy, xx):
    """Input value at integer corner (yy, xx) of plane (n, c), 0.0 outside the image."""
    return padded_get(x, n, c, yy, xx)


def _outside(y, xc, H, W):
    """The border rule: a sample at (y, xc) is 0 when ``y <= -1 or y >= H or xc <= -1 or
    xc >= W``."""
    return y <= -1 or y >= H or xc <= -1 or xc >= W


def _bilinear(x, n, c, y, xc):
    """Bilinear sample of plane (n, c) at real (y, xc) with zero outside (torchvision).

    NaN if a coordinate is NaN; 0 if ``y <= -1 or y >= H or xc <= -1 or xc >= W``;
    otherwise the four corners ``floor(y), floor(y)+1`` x ``floor(xc), floor(xc)+1`` (each
    0 when outside) weighted ``(1-ly)(1-lx), (1-ly)lx, ly(1-lx), ly*lx``.
    """
    H, W = x.shape[2], x.shape[3]
    if math.isnan(y) or math.isnan(xc):
        return math.nan
    if _outside(y, xc, H, W):
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
    if _outside(y, xc, H, W):
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
            if inside(x, yy, xx) and fy > 0 and fx > 0]


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
    x = f64(input)
    off = f64(offset)
    w = f64(weight)
    b = None if bias is None else f64(bias)
    msk = None if mask is None else f64(mask)
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    G, Cg, Og, Go, K, Cpo = _deform_geometry(x.shape, off.shape, w.shape)
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    dh, dw = pair(dilation)
    oh = conv_out_size(H, ph, ph, kh, sh, dh)
    ow = conv_out_size(W, pw, pw, kw, sw, dw)
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
    go = f64(grad_output)
    x = f64(input)
    off = f64(offset)
    w = f64(weight)
    msk = None if mask is None else f64(mask)
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    G, Cg, Og, Go, K, Cpo = _deform_geometry(x.shape, off.shape, w.shape)
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    dh, dw = pair(dilation)
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
