"""2.5D depth-aware convolution (Xing et al., "2.5D Convolution for RGB-D Semantic
Segmentation", ICIP 2019); the contract is docs/conv2_5d.md.

Each output position p looks at the depth ``d_c`` at its window centre (tap
``(kh//2, kw//2)``) and splits the window's taps into ``B`` depth bins::

    s        = d_c * pixel_size / focal                  (grid size)
    e_k      = d_c + (k - B/2) * s                       (bin edges, k = 0..B)
    m_l[tap] = 1  iff  e_l <= depth_pad[tap] < e_{l+1}   (half-open, l = 0..B-1)
    out[n, o, p] = bias[o] + sum_l sum_{c,i,j} weight[l, o, c, i, j] * xpad[n, c, tap] * m_l[tap]

so bin l has its own 2-D kernel ``weight[l]``. Input and depth are zero padded. A centre
depth <= 0 or non-finite gives ``s <= 0`` or NaN: no bin is open and the window adds
nothing (output = bias). The masks are piecewise constant in depth, so depth gets no
gradient.

The edges are computed in exactly the form ``d_c + (k - B/2) * s``. Bin ``l`` is centred
on ``z_l = d_c + (l - (B-1)/2) * s``, but ``z_l - s/2`` rounds differently: with an even B
the centre depth lies exactly on edge ``B/2`` and must fall in bin ``B/2``, while
``(d_c + s/2) - s/2`` lands above ``d_c`` for about 12% of depths and the centre then
falls in no bin at all.
"""

from __future__ import annotations

import numpy as np

from .common import (
    ConvSignature,
    check_arrays,
    check_bias,
    check_grad_output,
    check_ndim,
    check_shape,
    conv_operands,
    conv_window,
    positive_finite_float,
    shape_of,
    to_float64,
)

# ----------------------------------------------------------------------------- checks


def conv2_5d_signature(input, depth, weight, bias=None, stride=1, padding=0, dilation=1,
                       focal=1.0, pixel_size=1.0):
    """Check a call of ``conv2_5d`` (``depth [N,1,H,W]``, ``weight [B,O,C,kh,kw]``, kh, kw odd)."""
    op = "conv2_5d"
    x, w = conv_operands(op, input, weight, "[B, O, C, kh, kw]", weight_ndim=5)
    z = check_ndim(depth, "depth", 4, "[N, 1, H, W]", op)
    check_shape(z, "depth", (x[0], 1, *x[2:]), op, "one depth map per sample")
    if x[1] != w[2]:
        raise ValueError(f"{op}: input has {x[1]} channels but weight {w} expects {w[2]}")
    if w[3] % 2 == 0 or w[4] % 2 == 0:
        raise ValueError(
            f"{op}: the kernel needs a centre tap, so kh and kw must be odd; got weight shape {w}"
        )
    check_bias(bias, w[1], op)
    focal = positive_finite_float(focal, "focal", op)
    pixel_size = positive_finite_float(pixel_size, "pixel_size", op)
    geometry = conv_window(op, x, w[3:], w[1], stride, padding, dilation)
    return ConvSignature(geometry, (x[0], w[1], *geometry.out_size), focal=focal,
                         pixel_size=pixel_size)


def _conv2_5d_args(input, depth, weight, bias, stride, padding, dilation, focal, pixel_size):
    x, z, w, b = check_arrays("conv2_5d", input=input, depth=depth, weight=weight, bias=bias)
    sig = conv2_5d_signature(x.shape, z.shape, w.shape, shape_of(b), stride, padding, dilation,
                             focal, pixel_size)
    return (*to_float64(x, z, w, b), sig.geometry, sig.focal, sig.pixel_size)


def depth_bin_masks(geometry, depth_pad, bins, focal, pixel_size):
    """``masks(i, j) -> [B, N, oh, ow]``: is tap ``(i, j)``'s depth in bin l?"""
    kh, kw = geometry.kernel
    centre = geometry.tap(depth_pad, kh // 2, kw // 2)[:, 0]  # [N, oh, ow]
    with np.errstate(invalid="ignore"):  # inf centres give NaN edges: no bin open
        s = centre * pixel_size / focal
        edges = centre + (np.arange(bins + 1) - bins / 2)[:, None, None, None] * s
        lower, upper = edges[:-1], edges[1:]

    def masks(i, j):
        tap_depth = geometry.tap(depth_pad, i, j)[:, 0]
        with np.errstate(invalid="ignore"):
            return ((lower <= tap_depth) & (tap_depth < upper)).astype(np.float64)

    return masks


def _masked(masks, cols):
    """``x * m_l`` per bin, ``[B, N, C, oh, ow]``: the product comes first, as written, so
    an infinite input in a closed bin gives ``inf * 0 = NaN``."""
    return masks[:, :, None] * cols[None]


def conv2_5d(input, depth, weight, bias=None, stride=1, padding=0, dilation=1, focal=1.0,
             pixel_size=1.0):
    """2.5D convolution in float64.

    Args:
        input: ``[N, C, H, W]``.
        depth: ``[N, 1, H, W]``, not differentiable.
        weight: ``[B, O, C, kh, kw]``: one kernel per depth bin, kh and kw odd.
        bias: ``[O]`` or None.
        stride, padding, dilation: int or ``(h, w)``.
        focal: focal length in pixels (> 0).
        pixel_size: size of a feature-map step, i.e. feature stride x dilation (> 0).

    Returns:
        ``[N, O, oh, ow]`` float64. With a constant positive depth only bin ``(B-1)/2``
        (odd B) is open and the result equals ``conv2d(input, weight[(B-1)//2])``.
    """
    x, z, w, b, geometry, focal, pixel_size = _conv2_5d_args(
        input, depth, weight, bias, stride, padding, dilation, focal, pixel_size
    )
    xpad = geometry.pad(x)
    masks = depth_bin_masks(geometry, geometry.pad(z), w.shape[0], focal, pixel_size)
    out = np.zeros((x.shape[0], w.shape[1], *geometry.out_size))
    for i, j in geometry.taps():
        out += np.einsum("lncyx,loc->noyx", _masked(masks(i, j), geometry.tap(xpad, i, j)),
                         w[..., i, j], optimize=True)
    if b is not None:
        out += b[None, :, None, None]
    return out


def conv2_5d_vjp(grad_output, input, depth, weight, bias=None, stride=1, padding=0,
                 dilation=1, focal=1.0, pixel_size=1.0):
    """Gradients of :func:`conv2_5d`: ``{"input", "weight"}`` plus ``"bias"``.

    Depth is not differentiable and has no entry (its gradient is zero).
    """
    x, z, w, b, geometry, focal, pixel_size = _conv2_5d_args(
        input, depth, weight, bias, stride, padding, dilation, focal, pixel_size
    )
    grad = check_grad_output(grad_output, (x.shape[0], w.shape[1], *geometry.out_size), "conv2_5d")
    xpad = geometry.pad(x)
    masks = depth_bin_masks(geometry, geometry.pad(z), w.shape[0], focal, pixel_size)
    grad_xpad = np.zeros_like(xpad)
    grad_w = np.zeros_like(w)
    for i, j in geometry.taps():
        m = masks(i, j)
        grad_cols = np.einsum("noyx,lnyx,loc->ncyx", grad, m, w[..., i, j], optimize=True)
        geometry.add_to_tap(grad_xpad, i, j, grad_cols)
        grad_w[..., i, j] = np.einsum(
            "noyx,lncyx->loc", grad, _masked(m, geometry.tap(xpad, i, j)), optimize=True
        )
    grads = {"input": geometry.unpad(grad_xpad).copy(), "weight": grad_w}
    if b is not None:
        grads["bias"] = grad.sum(axis=(0, 2, 3))
    return grads
