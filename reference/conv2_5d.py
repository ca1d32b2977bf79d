"""2.5D depth-aware convolution (Xing et al., "2.5D Convolution for RGB-D Semantic
Segmentation", ICIP 2019).

Each output position p looks at the depth ``d_c`` at its window centre (tap
``(kh//2, kw//2)``) and splits the window's taps into ``B`` depth bins::

    s        = d_c * pixel_size / focal                       (grid size)
    z_l      = d_c + (l - (B-1)/2) * s                        (bin centres, l = 0..B-1)
    m_l[tap] = 1  iff  z_l - s/2 <= depth_pad[tap] < z_l + s/2  (half-open)
    out[n, o, p] = bias[o] + sum_l sum_{c,i,j} weight[l, o, c, i, j] * xpad[n, c, tap] * m_l[tap]

so bin l has its own 2-D kernel ``weight[l]``. Input and depth are zero padded. A centre
depth <= 0 or non-finite gives ``s <= 0`` or NaN: no bin is open and the window adds
nothing (output = bias). The masks are piecewise constant in depth, so depth gets no
gradient.
"""

from __future__ import annotations

import numpy as np

from .common import (
    as_float_array,
    check_bias,
    check_grad_output,
    check_shape,
    conv_geometry,
    conv_operands,
    positive_finite_float,
)


def _conv2_5d_args(input, depth, weight, bias, stride, padding, dilation, focal, pixel_size):
    op = "conv2_5d"
    x, w, b = conv_operands(op, input, weight, bias, "[B, O, C, kh, kw]", weight_ndim=5)
    z = as_float_array(depth, "depth", op)
    check_shape(z, "depth", (x.shape[0], 1, *x.shape[2:]), op, "one depth map per sample")
    if w.shape[0] < 1:
        raise ValueError(f"{op}: weight needs at least one depth bin, got shape {tuple(w.shape)}")
    if x.shape[1] != w.shape[2]:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels but weight {tuple(w.shape)} expects "
            f"{w.shape[2]}"
        )
    if w.shape[3] % 2 == 0 or w.shape[4] % 2 == 0:
        raise ValueError(
            f"{op}: the kernel needs a centre tap, so kh and kw must be odd; got weight "
            f"shape {tuple(w.shape)}"
        )
    check_bias(b, w.shape[1], op)
    focal = positive_finite_float(focal, "focal", op)
    pixel_size = positive_finite_float(pixel_size, "pixel_size", op)
    geometry = conv_geometry(
        op, x.shape, w.shape[3:], stride, padding, dilation, kernel_name="weight's kernel size"
    )
    return x, z, w, b, geometry, focal, pixel_size


def depth_bin_masks(geometry, depth_pad, bins, focal, pixel_size):
    """``masks(i, j) -> [B, N, oh, ow]``: is tap ``(i, j)``'s depth in bin l?"""
    kh, kw = geometry.kernel
    centre = geometry.tap(depth_pad, kh // 2, kw // 2)[:, 0]  # [N, oh, ow]
    with np.errstate(invalid="ignore"):  # inf centres give NaN edges: no bin open
        s = centre * pixel_size / focal
        offsets = (np.arange(bins) - (bins - 1) / 2)[:, None, None, None]
        lower = centre + offsets * s - s / 2
        upper = centre + offsets * s + s / 2

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
