"""Loop oracle of ``tanprod_conv2d`` and the structure of the Torch7 question's ``nn.CustomConv``."""

import math

import numpy as np

from .common import conv_out_size, f64, inside, padded_get, pair


def _tan(v):
    """``tan(v)``, NaN for a non-finite ``v`` (IEEE, like np.tan; math.tan raises)."""
    return math.tan(v) if math.isfinite(v) else math.nan


def _cos(v):
    """``cos(v)``, NaN for a non-finite ``v``."""
    return math.cos(v) if math.isfinite(v) else math.nan


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
                a = padded_get(x, n, c, yy, xx) + w[o, c, i, j]
                records.append((a, c, i, j, yy, xx))
    return records


def oracle_tanprod_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """Naive tangent-product convolution (Torch7 ``nn.CustomConv``, generalised).

    input ``[N, C, H, W]``, weight ``[O, C, kh, kw]``, bias ``[O]`` or None. Returns
    ``[N, O, oh, ow]`` with ``out[n,o,y,x] = bias[o] + prod_{c,i,j} tan(xpad[n, c, y*sh +
    i*dh, x*sw + j*dw] + w[o,c,i,j])``; the input is zero padded, so a padded tap
    contributes the factor ``tan(w[o,c,i,j])``.
    """
    x = f64(input)
    w = f64(weight)
    b = None if bias is None else f64(bias)
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    dh, dw = pair(dilation)
    oh = conv_out_size(H, ph, ph, kh, sh, dh)
    ow = conv_out_size(W, pw, pw, kw, sw, dw)
    out = np.zeros((N, O, oh, ow), dtype=np.float64)
    for n in range(N):
        for o in range(O):
            for y in range(oh):
                for xo in range(ow):
                    prod = 1.0
                    for c in range(C):
                        for i in range(kh):
                            for j in range(kw):
                                v = padded_get(x, n, c, y * sh + i * dh - ph, xo * sw + j * dw - pw)
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
    go = f64(grad_output)
    x = f64(input)
    w = f64(weight)
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    dh, dw = pair(dilation)
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
                        if inside(x, yy, xx):
                            gi[n, c, yy, xx] += d
    result = {"input": gi, "weight": gw}
    if bias is not None:
        result["bias"] = gb
    return result


def seed_customconv_2d(input2d, weight2d, kernel="tan"):
    """The structure of the Torch7 ``nn.CustomConv`` forward (docs/tanprod.md) on one 2-D map.

    input2d ``[H, W]``, weight2d ``[kh, kw]``; no padding, stride 1. Returns
    ``[H-kh+1, W-kw+1]``. As in the original, for each kernel tap (i, j) the receptive-field
    view ``input2d[i : i+out_h, j : j+out_w]`` (the Lua ``input[{{i, i-k-1}, {j, j-k-1}}]``
    in 0-based form) is combined in place, element by element, into the output:
    kernel="tan" starts from ones and multiplies by ``tan(view + w[i, j])``;
    kernel="linear" starts from zeros and adds ``view * w[i, j]`` (the question's variant
    equal to SpatialConvolutionMM with zero bias).
    """
    inp = f64(input2d)
    w = f64(weight2d)
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
