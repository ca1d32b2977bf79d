"""Depth-aware convolution and average pooling (Wang & Neumann, "Depth-aware CNN for RGB-D
Segmentation", ECCV 2018).

Every window weighs each of its taps by how close the tap's depth is to the depth of the
window's centre pixel::

    F[tap] = exp(-alpha * |depth[centre] - depth[tap]|)        (alpha >= 0)

depthaware_conv2d (weight ``[O, C, kh, kw]``, no groups)::

    origin   (h0, w0) = (y*sh - ph, x*sw - pw);  tap (i, j) reads (h0 + i*dh, w0 + j*dw)
    centre   (h0 + (dh*(kh-1))//2, w0 + (dw*(kw-1))//2)    (integer arithmetic)
    out[n, o, y, x] = bias[o] + sum_{c, i, j} w[o, c, i, j] * xpad[n, c, tap] * F[tap]

With an even kernel the centre is the upper-left of the middle pixels; with dilation it
need not be a tap (its depth is read all the same). A tap outside the image reads the
zero padding and forms no F (it adds ``w * 0``, exactly as conv2d does). A centre outside
the image (padding beyond the centre offset) makes every F of its window 1: a plain
convolution window.

depthaware_avg_pool2d (no dilation, no ceil_mode, ``padding <= kernel_size/2``)::

    window   [hs, he) = [y*sh - ph, min(y*sh - ph + kh, H + ph)), the same for columns
    pool     (he - hs) * (we - ws)                          (the padded window's size)
    centre   ((max(hs, 0) + min(he, H))//2, (max(ws, 0) + min(we, W))//2)
                                                            (centre of the window clipped to the image)
    num      sum_{taps in the image} F[tap] * x[n, c, tap]
    divisor  pool - sum_{taps in the image} (1 - F[tap])   count_include_pad=True
             sum_{taps in the image} F[tap]                 count_include_pad=False
    out[n, c, y, x] = num / divisor

``alpha = 0`` means ``F = 1`` whatever the depth (NaN and inf included), and so does a
constant finite depth: then the ops are exactly conv2d and avg_pool2d. NaN depth makes
every F it enters NaN; an infinite tap depth against a finite centre gives F = 0;
``|inf - inf|`` is NaN.

Gradients. Depth is differentiable. With ``s = sign(depth[centre] - depth[tap])`` and
``sign(0) = 0`` (a tap at the centre's own depth passes no depth gradient)::

    dF/d depth[tap] = alpha * F * s = -dF/d depth[centre]

    conv:  d input[tap] += g * w * F,     d w += g * xpad[tap] * F,
           dL/dF[tap]    = sum_{o, c} g[o] * w[o, c, tap] * x[c, tap]
    pool:  d input[tap] += g * F / divisor,
           dL/dF[tap]    = sum_c g[c] * (x[c, tap] - out[c]) / divisor

(the divisor grows by 1 per unit of F in both pooling modes), and each dL/dF reaches the
tap's depth and the centre's depth through the line above, summed over every window.
Taps outside the image and windows whose centre is outside pass no depth gradient;
``alpha = 0`` passes none at all.

Each op loops over the ``kh*kw`` taps (pooling: only those that read the image in some
window, :meth:`Geometry.input_taps`; the others add nothing) with whole-array work on
``[N, C, oh, ow]``; no unfolded ``kh*kw``-times copy of the input (or of the depth) is
made.
"""

from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass

import numpy as np

from .common import (
    Geometry,
    avg_divisor,
    check_arrays,
    check_bias,
    check_flag,
    check_grad_output,
    check_ndim,
    check_shape,
    conv_window,
    grouped_tap_product,
    grouped_tap_product_vjp,
    pool_geometry,
    shape_of,
    to_float64,
)

CONV = "depthaware_conv2d"
POOL = "depthaware_avg_pool2d"


# ----------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class DepthAwareSignature:
    """A checked call of a depth-aware op: its windows, output shape and similarity scale."""

    geometry: Geometry
    out_shape: tuple
    alpha: float
    count_include_pad: bool = True


def similarity_alpha(value, op: str) -> float:
    """``alpha`` as a float: a real number, finite and >= 0 (0 turns depth off)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: alpha must be a real number, got alpha={value!r}")
    if isinstance(value, numbers.Integral) and value > sys.float_info.max:
        value = math.inf  # an int beyond float range
    if not 0 <= value < math.inf:  # comparisons only (a NaN fails them): see positive_finite_float
        raise ValueError(f"{op}: alpha must be finite and >= 0, got alpha={value!r}")
    return float(value)


def _input_and_depth(input, depth, op):
    x = check_ndim(input, "input", 4, "[N, C, H, W]", op)
    z = check_ndim(depth, "depth", 4, "[N, 1, H, W]", op)
    check_shape(z, "depth", (x[0], 1, *x[2:]), op, "one depth map per sample, the input's size")
    return x


def depthaware_conv2d_signature(input, depth, weight, bias=None, stride=1, padding=0,
                                dilation=1, alpha=1.0) -> DepthAwareSignature:
    """Check a call of ``depthaware_conv2d`` (shapes ``input [N,C,H,W]``, ``depth
    [N,1,H,W]``, ``weight [O,C,kh,kw]``, ``bias [O]``)."""
    x = _input_and_depth(input, depth, CONV)
    w = check_ndim(weight, "weight", 4, "[O, C, kh, kw]", CONV, batch=False)
    if x[1] != w[1]:
        raise ValueError(f"{CONV}: input has {x[1]} channels but weight {w} expects {w[1]} "
                         f"(no groups)")
    check_bias(bias, w[0], CONV)
    alpha = similarity_alpha(alpha, CONV)
    geometry = conv_window(CONV, x, w[2:], w[0], stride, padding, dilation)
    return DepthAwareSignature(geometry, (x[0], w[0], *geometry.out_size), alpha)


def depthaware_avg_pool2d_signature(input, depth, kernel_size, stride=None, padding=0,
                                    alpha=1.0, count_include_pad=True) -> DepthAwareSignature:
    """Check a call of ``depthaware_avg_pool2d`` (``input [N,C,H,W]``, ``depth [N,1,H,W]``;
    padding at most half of kernel_size)."""
    x = _input_and_depth(input, depth, POOL)
    count_include_pad = check_flag(count_include_pad, "count_include_pad", POOL)
    alpha = similarity_alpha(alpha, POOL)
    geometry = pool_geometry(POOL, x, kernel_size, stride, padding, 1, False)
    return DepthAwareSignature(geometry, (*x[:2], *geometry.out_size), alpha, count_include_pad)


# ----------------------------------------------------------------------------- geometry


def conv_centres(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Input row of every output row's window centre, and column of every output column's:
    the origin plus ``(d*(k-1))//2``."""
    (kh, kw), (dh, dw) = geometry.kernel, geometry.dilation
    return geometry.positions(0, 0) + (dh * (kh - 1)) // 2, geometry.positions(1, 0) + (dw * (kw - 1)) // 2


def pool_centres(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Input row / column of every pooling window's centre: the middle (floor) of the
    window clipped to the image."""
    centres = []
    for axis in (0, 1):
        start = geometry.positions(axis, 0)
        end = np.minimum(start + geometry.kernel[axis], geometry.in_size[axis])
        centres.append((np.maximum(start, 0) + end) // 2)
    return tuple(centres)


def window_centres(geometry: Geometry, pooling: bool):
    """``(rows [oh], cols [ow], inside [oh, ow])``: the input row and column of every
    window's centre (:func:`pool_centres` or :func:`conv_centres`), clipped into the
    image, and whether the centre lies in it (always, for pooling)."""
    rows, cols = (pool_centres if pooling else conv_centres)(geometry)
    (h, w) = geometry.in_size
    inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
    return np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1), inside


class _Similarity:
    """F and its depth slope, one tap at a time, for every window of ``geometry``."""

    def __init__(self, geometry: Geometry, depth: np.ndarray, pooling: bool, alpha: float):
        self.geometry, self.alpha = geometry, alpha
        rows, cols, self.centre_inside = window_centres(geometry, pooling)
        self.index = (rows[:, None], cols[None, :])
        self.centre = depth[:, 0][:, self.index[0], self.index[1]]  # [N, oh, ow]
        self.depth_pad = geometry.pad(depth)[:, 0]

    def tap(self, i: int, j: int):
        """``(F, slope, formed)`` of tap ``(i, j)``: ``F`` and ``slope = dF/d depth[tap]``
        ``[N, oh, ow]``, and ``formed [oh, ow]``, where F comes from depth (tap and centre
        in the image). Elsewhere ``F = 1`` and ``slope = 0``."""
        formed = self.geometry.in_input(i, j) & self.centre_inside
        shape = self.centre.shape
        if self.alpha == 0:  # F = 1 whatever the depth, NaN and inf included
            return np.ones(shape), np.zeros(shape), formed
        with np.errstate(invalid="ignore"):  # inf - inf
            diff = self.centre - self.geometry.tap(self.depth_pad, i, j)
            f = np.exp(-self.alpha * np.abs(diff))
            slope = self.alpha * f * np.sign(diff)
        return np.where(formed, f, 1.0), np.where(formed, slope, 0.0), formed

    def scatter(self, grad_depth_pad: np.ndarray, i: int, j: int, push: np.ndarray,
                grad_centre: np.ndarray) -> None:
        """Add ``push = dL/dF * dF/d depth[tap]`` to the tap's depth and subtract it from
        the centre's (accumulated per window in ``grad_centre``, see :meth:`depth_gradient`)."""
        self.geometry.add_to_tap(grad_depth_pad, i, j, push)
        grad_centre -= push

    def depth_gradient(self, grad_depth_pad: np.ndarray, grad_centre: np.ndarray) -> np.ndarray:
        """``[N, 1, H, W]``: the taps' shares plus every window's centre share."""
        grad = self.geometry.unpad(grad_depth_pad).copy()  # [N, H, W]
        samples = np.arange(grad.shape[0])[:, None, None]
        # Windows may share a centre (pooling at the border): accumulate, never assign.
        np.add.at(grad, (samples, *self.index), np.where(self.centre_inside, grad_centre, 0.0))
        return grad[:, None]


# ----------------------------------------------------------------------------- conv


def _conv_args(input, depth, weight, bias, stride, padding, dilation, alpha):
    x, z, w, b = check_arrays(CONV, input=input, depth=depth, weight=weight, bias=bias)
    sig = depthaware_conv2d_signature(x.shape, z.shape, w.shape, shape_of(b), stride, padding,
                                      dilation, alpha)
    x, z, w, b = to_float64(x, z, w, b)
    similarity = _Similarity(sig.geometry, z, False, sig.alpha)
    return x, w, b, sig, similarity


def depthaware_conv2d(input, depth, weight, bias=None, stride=1, padding=0, dilation=1,
                      alpha=1.0):
    """Depth-aware convolution, float64.

    Args:
        input: ``[N, C, H, W]``.
        depth: ``[N, 1, H, W]``, differentiable.
        weight: ``[O, C, kh, kw]`` (any kh, kw: even kernels take the upper-left middle).
        bias: ``[O]`` or None.
        stride, padding, dilation: int or ``(h, w)``.
        alpha: similarity scale, finite and >= 0.

    Returns:
        ``[N, O, oh, ow]`` float64, ``oh = floor((H + 2*ph - dh*(kh-1) - 1)/sh) + 1``.
        With ``alpha = 0`` or a constant finite depth: exactly ``conv2d``.
    """
    x, w, b, sig, similarity = _conv_args(input, depth, weight, bias, stride, padding,
                                          dilation, alpha)
    geometry = sig.geometry
    xpad = geometry.pad(x)
    out = np.zeros(sig.out_shape)
    for i, j in geometry.taps():
        f, _, _ = similarity.tap(i, j)
        out += grouped_tap_product(geometry.tap(xpad, i, j) * f[:, None], w[:, :, i, j], 1)
    if b is not None:
        out += b[None, :, None, None]
    return out


def depthaware_conv2d_vjp(grad_output, input, depth, weight, bias=None, stride=1, padding=0,
                          dilation=1, alpha=1.0):
    """Gradients of :func:`depthaware_conv2d`: ``{"input", "depth", "weight"}`` plus
    ``"bias"`` when given."""
    x, w, b, sig, similarity = _conv_args(input, depth, weight, bias, stride, padding,
                                          dilation, alpha)
    geometry = sig.geometry
    grad = check_grad_output(grad_output, sig.out_shape, CONV)
    xpad = geometry.pad(x)
    grad_xpad = np.zeros_like(xpad)
    grad_w = np.zeros_like(w)
    grad_depth_pad = np.zeros(xpad[:, 0].shape)
    grad_centre = np.zeros(grad.shape[:1] + grad.shape[2:])
    for i, j in geometry.taps():
        f, slope, formed = similarity.tap(i, j)
        cols = geometry.tap(xpad, i, j)
        grad_cols, grad_w[:, :, i, j] = grouped_tap_product_vjp(grad, cols * f[:, None],
                                                                w[:, :, i, j], 1)
        geometry.add_to_tap(grad_xpad, i, j, grad_cols * f[:, None])
        if sig.alpha:
            grad_f = np.sum(grad_cols * cols, axis=1)
            similarity.scatter(grad_depth_pad, i, j, np.where(formed, grad_f * slope, 0.0),
                               grad_centre)
    grads = {
        "input": geometry.unpad(grad_xpad).copy(),
        "depth": similarity.depth_gradient(grad_depth_pad, grad_centre),
        "weight": grad_w,
    }
    if b is not None:
        grads["bias"] = grad.sum(axis=(0, 2, 3))
    return grads


# ----------------------------------------------------------------------------- pooling


def _pool_args(input, depth, kernel_size, stride, padding, alpha, count_include_pad):
    x, z = check_arrays(POOL, input=input, depth=depth)
    sig = depthaware_avg_pool2d_signature(x.shape, z.shape, kernel_size, stride, padding, alpha,
                                          count_include_pad)
    x, z = to_float64(x, z)
    similarity = _Similarity(sig.geometry, z, True, sig.alpha)
    return x, sig, similarity


def _pool_forward(x, sig, similarity):
    """``(out [N, C, oh, ow], divisor [N, oh, ow])``."""
    geometry = sig.geometry
    xpad = geometry.pad(x)
    num = np.zeros(sig.out_shape)
    if sig.count_include_pad:
        divisor = np.broadcast_to(avg_divisor(geometry, True, None), similarity.centre.shape)
    else:
        divisor = np.zeros(similarity.centre.shape)
    with np.errstate(invalid="ignore"):  # inf + -inf is NaN, as in avg_pool2d
        for i, j in geometry.input_taps():  # the others read padding in every window
            f, _, inside = similarity.tap(i, j)  # the centre is always inside: inside = tap in image
            num += geometry.tap(xpad, i, j) * np.where(inside, f, 0.0)[:, None]
            if sig.count_include_pad:
                divisor = divisor - np.where(inside, 1.0 - f, 0.0)
            else:
                divisor = divisor + np.where(inside, f, 0.0)
        return num / divisor[:, None], divisor


def depthaware_avg_pool2d(input, depth, kernel_size, stride=None, padding=0, alpha=1.0,
                          count_include_pad=True):
    """Depth-aware average pooling, float64.

    Args:
        input: ``[N, C, H, W]``.
        depth: ``[N, 1, H, W]``, differentiable.
        kernel_size: int or ``(h, w)``.
        stride: int, ``(h, w)``, or None / ``()`` (= kernel_size).
        padding: int or ``(h, w)``, at most half of kernel_size.
        alpha: similarity scale, finite and >= 0.
        count_include_pad: divide by ``pool - sum(1 - F)`` (padded cells count 1, image
            cells count F; the original kernel's rule) or by ``sum F``.

    Returns:
        ``[N, C, oh, ow]`` float64. With ``alpha = 0`` or a constant finite depth: exactly
        ``avg_pool2d(input, kernel_size, stride, padding, count_include_pad=...)``.
    """
    x, sig, similarity = _pool_args(input, depth, kernel_size, stride, padding, alpha,
                                    count_include_pad)
    return _pool_forward(x, sig, similarity)[0]


def depthaware_avg_pool2d_vjp(grad_output, input, depth, kernel_size, stride=None, padding=0,
                              alpha=1.0, count_include_pad=True):
    """Gradients of :func:`depthaware_avg_pool2d`: ``{"input", "depth"}``."""
    x, sig, similarity = _pool_args(input, depth, kernel_size, stride, padding, alpha,
                                    count_include_pad)
    geometry = sig.geometry
    grad = check_grad_output(grad_output, sig.out_shape, POOL)
    out, divisor = _pool_forward(x, sig, similarity)
    share = grad / divisor[:, None]  # dL/d num
    xpad = geometry.pad(x)
    grad_xpad = np.zeros_like(xpad)
    grad_depth_pad = np.zeros(xpad[:, 0].shape)
    grad_centre = np.zeros(divisor.shape)
    with np.errstate(invalid="ignore"):
        for i, j in geometry.input_taps():
            f, slope, inside = similarity.tap(i, j)
            geometry.add_to_tap(grad_xpad, i, j, share * np.where(inside, f, 0.0)[:, None])
            if sig.alpha:
                grad_f = np.sum(share * (geometry.tap(xpad, i, j) - out), axis=1)
                similarity.scatter(grad_depth_pad, i, j, np.where(inside, grad_f * slope, 0.0),
                                   grad_centre)
    return {
        "input": geometry.unpad(grad_xpad).copy(),
        "depth": similarity.depth_gradient(grad_depth_pad, grad_centre),
    }
