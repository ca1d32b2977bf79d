"""Deformable convolution v1 (no mask) and v2 (mask), ``torchvision.ops.deform_conv2d``
semantics; the contract is docs/deform.md.

For output ``(n, o, yo, xo)`` and kernel tap ``k = i*kw + j``, input channel ``c`` reads
offset group ``g = c // (C/Go)`` at the shifted point::

    y = yo*sh - ph + i*dh + offset[n, g*2K + 2k,     yo, xo]
    x = xo*sw - pw + j*dw + offset[n, g*2K + 2k + 1, yo, xo]
    out[n, o, yo, xo] = bias[o] + sum_{c in group(o), k}
                        w[o, c, i, j] * mask[n, g*K + k, yo, xo] * sample(input[n, c], y, x)

``sample`` is bilinear with zero outside: 0 if ``y <= -1 or y >= H or x <= -1 or x >= W``,
else the four corners ``floor(y) + {0, 1}`` x ``floor(x) + {0, 1}`` weighted ``(1-ly)(1-lx),
(1-ly)lx, ly(1-lx), ly*lx`` (``ly = y - floor(y)``), each read as 0 off the image. For
finite inputs the first rule follows from the second (every corner with a non-zero weight
is off the image there), but not with a NaN/Inf on the border: at ``x = -1`` the corner
``x = 0`` has weight 0 and ``0 * NaN`` is NaN, so the rule is applied as written.

Gradients follow torchvision: derivatives at integer coordinates are the right-hand ones
(floor picks the cell below/right), the offset gradient has no whole-sample early-out (at
exactly ``y = -1`` it is the right derivative), and the mask gradient is ``sum grad_col *
sample``. The input gradient goes to the corners whose weight factors are both > 0 (as
torchvision's ``|y - row| < 1 and |x - col| < 1``), so a zero-weight corner never turns an
infinite or NaN gradient into NaN. A NaN coordinate gives a NaN sample, NaN offset and mask
gradients, and nothing to the input gradient (torchvision crashes on it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import (
    KERNEL,
    ConvSignature,
    check_arrays,
    check_bias,
    check_grad_output,
    check_memory,
    check_ndim,
    check_shape,
    conv_geometry,
    conv_operands,
    describe_window,
    grouped_tap_product,
    grouped_tap_product_vjp,
    shape_of,
    split_groups,
    to_float64,
)

# ----------------------------------------------------------------------------- checks


def deform_conv2d_signature(input, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None):
    """Check a call of ``deform_conv2d``; resolves weight groups and offset groups."""
    op = "deform_conv2d"
    x, w = conv_operands(op, input, weight, "[O, C/groups, kh, kw]")
    off = check_ndim(offset, "offset", 4, "[N, 2*offset_groups*kh*kw, oh, ow]", op)
    groups = split_groups(x[1], w[1], "weight.shape[1]", op, "channels per group")
    if w[0] % groups:
        raise ValueError(
            f"{op}: the {groups} weight groups must divide the weight's {w[0]} output channels "
            f"(weight shape {w})"
        )
    check_bias(bias, w[0], op)
    geometry = conv_geometry(op, x, w[2:], stride, padding, dilation, kernel_name=KERNEL)
    # Deformable sampling never pads the input: only the output is created. Checked
    # before offset and mask, whose shapes follow the output's.
    described = describe_window(KERNEL, geometry.kernel, geometry.stride, padding, geometry.dilation,
                                geometry.in_size)
    check_memory(op, {"output": (x[0], w[0], *geometry.out_size)}, described)
    taps = w[2] * w[3]
    if off[1] % (2 * taps):
        raise ValueError(
            f"{op}: offset needs 2*offset_groups*kh*kw channels, a positive multiple of "
            f"{2 * taps}; got offset shape {off}"
        )
    offset_groups = off[1] // (2 * taps)
    if x[1] % offset_groups:
        raise ValueError(
            f"{op}: offset {off} gives {offset_groups} offset groups, which must divide the "
            f"input's {x[1]} channels"
        )
    check_shape(off, "offset", (x[0], off[1], *geometry.out_size), op,
                "batch and output size must match")
    if mask is not None:
        m = check_ndim(mask, "mask", 4, "[N, offset_groups*kh*kw, oh, ow]", op)
        check_shape(m, "mask", (x[0], offset_groups * taps, *geometry.out_size), op,
                    f"offset_groups={offset_groups} from offset")
    return ConvSignature(geometry, (x[0], w[0], *geometry.out_size), groups=groups,
                         offset_groups=offset_groups)


@dataclass(frozen=True)
class _DeformArgs:
    x: np.ndarray
    offset: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    mask: np.ndarray | None
    groups: int
    offset_groups: int
    geometry: object

    def points(self, i, j):
        """Sampling coordinates ``y, x`` of tap ``(i, j)``: each ``[N, Go, oh, ow]``."""
        n = self.x.shape[0]
        (kh, kw), (oh, ow) = self.geometry.kernel, self.geometry.out_size
        off = self.offset.reshape(n, self.offset_groups, kh * kw, 2, oh, ow)
        k = i * kw + j
        y = self.geometry.positions(0, i)[:, None] + off[:, :, k, 0]
        x = self.geometry.positions(1, j)[None, :] + off[:, :, k, 1]
        return y, x

    def tap_mask(self, i, j):
        """Modulation of tap ``(i, j)``, ``[N, Go, 1, oh*ow]`` (1 without a mask)."""
        if self.mask is None:
            return 1.0
        n, (kh, kw), (oh, ow) = self.x.shape[0], self.geometry.kernel, self.geometry.out_size
        m = self.mask.reshape(n, self.offset_groups, kh * kw, oh * ow)
        return m[:, :, i * kw + j, None, :]


def _deform_args(input, offset, weight, bias, stride, padding, dilation, mask):
    x, off, w, b, m = check_arrays("deform_conv2d", input=input, offset=offset, weight=weight,
                                   bias=bias, mask=mask)
    sig = deform_conv2d_signature(x.shape, off.shape, w.shape, shape_of(b), stride, padding, dilation,
                                  shape_of(m))
    return _DeformArgs(*to_float64(x, off, w, b, m), sig.groups, sig.offset_groups, sig.geometry)


@dataclass(frozen=True)
class _Corner:
    index: np.ndarray  # flat h*W + w, [N, Go, 1, P]; 0 where off the image
    inside: np.ndarray  # [N, Go, 1, P]
    weight: np.ndarray  # bilinear weight
    contributes: np.ndarray  # inside with both weight factors > 0: gets input gradient
    d_dy: np.ndarray  # d weight / d y
    d_dx: np.ndarray  # d weight / d x


def _corners(y, x, height, width):
    """The four bilinear corners of every sample point (arrays ``[N, Go, 1, oh*ow]``),
    which points are NaN and which are outside (sample 0 by the border rule)."""
    n, go, oh, ow = y.shape
    y = y.reshape(n, go, 1, oh * ow)
    x = x.reshape(n, go, 1, oh * ow)
    not_a_point = np.isnan(y) | np.isnan(x)
    # Clipping keeps far points off the image (all corners outside) and castable to int.
    y = np.clip(np.where(not_a_point, -2.0, y), -2.0, height + 1.0)
    x = np.clip(np.where(not_a_point, -2.0, x), -2.0, width + 1.0)
    outside = (y <= -1) | (y >= height) | (x <= -1) | (x >= width)
    y0, x0 = np.floor(y), np.floor(x)
    ly, lx = y - y0, x - x0
    corners = []
    for row, wy, sy in ((y0, 1 - ly, -1.0), (y0 + 1, ly, 1.0)):
        for col, wx, sx in ((x0, 1 - lx, -1.0), (x0 + 1, lx, 1.0)):
            inside = (row >= 0) & (row < height) & (col >= 0) & (col < width)
            index = np.where(inside, row * width + col, 0).astype(np.int64)
            contributes = inside & (wy > 0) & (wx > 0)
            corners.append(_Corner(index, inside, wy * wx, contributes, sy * wx, wy * sx))
    return corners, not_a_point, outside


def _read(planes, corner):
    """Corner values of every channel: ``planes`` is ``[N, Go, C/Go, H*W]``."""
    values = np.take_along_axis(planes, corner.index, axis=3)
    return np.where(corner.inside, values, 0.0)


def deform_conv2d(input, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None):
    """Deformable convolution, float64.

    Args:
        input: ``[N, C, H, W]``.
        offset: ``[N, 2*Go*kh*kw, oh, ow]``; interleaved ``(dy, dx)`` per tap, Go offset
            groups (input channel c uses group ``c // (C/Go)``).
        weight: ``[O, C/G, kh, kw]`` with ``G = C // weight.shape[1]`` weight groups.
        bias: ``[O]`` or None.
        stride, padding, dilation: int or ``(h, w)``.
        mask: ``[N, Go*kh*kw, oh, ow]`` modulation (v2) or None (v1, mask = 1).

    Returns:
        ``[N, O, oh, ow]`` float64.
    """
    a = _deform_args(input, offset, weight, bias, stride, padding, dilation, mask)
    n, c, h, w_ = a.x.shape
    planes = a.x.reshape(n, a.offset_groups, c // a.offset_groups, h * w_)
    out = np.zeros((n, a.w.shape[0], *a.geometry.out_size))
    for i, j in a.geometry.taps():
        corners, not_a_point, outside = _corners(*a.points(i, j), h, w_)
        sample = sum(corner.weight * _read(planes, corner) for corner in corners)
        sample = np.where(not_a_point, np.nan, np.where(outside, 0.0, sample)) * a.tap_mask(i, j)
        out += grouped_tap_product(sample.reshape(n, c, *a.geometry.out_size), a.w[:, :, i, j],
                                   a.groups)
    if a.b is not None:
        out += a.b[None, :, None, None]
    return out


def deform_conv2d_vjp(grad_output, input, offset, weight, bias=None, stride=1, padding=0,
                      dilation=1, mask=None):
    """Gradients of :func:`deform_conv2d`: ``{"input", "offset", "weight"}`` plus ``"bias"``
    and ``"mask"`` when given (torchvision's conventions, see the module docstring)."""
    a = _deform_args(input, offset, weight, bias, stride, padding, dilation, mask)
    n, c, h, w_ = a.x.shape
    go, (kh, kw), (oh, ow) = a.offset_groups, a.geometry.kernel, a.geometry.out_size
    grad = check_grad_output(grad_output, (n, a.w.shape[0], oh, ow), "deform_conv2d")
    planes = a.x.reshape(n, go, c // go, h * w_)
    # Flat position of each (n, g, c) plane in the input, for scattering corner gradients.
    plane_start = (np.arange(n * c) * (h * w_)).reshape(n, go, c // go, 1)

    grad_x = np.zeros(a.x.size)
    grad_offset = np.zeros((n, go, kh * kw, 2, oh * ow))
    grad_mask = np.zeros((n, go, kh * kw, oh * ow))
    grad_w = np.zeros_like(a.w)
    for i, j in a.geometry.taps():
        k = i * kw + j
        corners, not_a_point, outside = _corners(*a.points(i, j), h, w_)
        values = [_read(planes, corner) for corner in corners]
        sample = sum(corner.weight * v for corner, v in zip(corners, values))
        sample = np.where(not_a_point, np.nan, np.where(outside, 0.0, sample))
        tap_mask = a.tap_mask(i, j)
        cols = (sample * tap_mask).reshape(n, c, oh, ow)
        grad_cols, grad_w[:, :, i, j] = grouped_tap_product_vjp(grad, cols, a.w[:, :, i, j], a.groups)
        grad_cols = grad_cols.reshape(n, go, c // go, oh * ow)
        grad_mask[:, :, k] = (grad_cols * sample).sum(axis=2)
        grad_sample = grad_cols * tap_mask
        for corner in corners:
            np.add.at(grad_x, plane_start + corner.index,
                      np.where(corner.contributes, grad_sample * corner.weight, 0.0))
        d_dy = sum(corner.d_dy * v for corner, v in zip(corners, values))
        d_dx = sum(corner.d_dx * v for corner, v in zip(corners, values))
        grad_offset[:, :, k, 0] = np.where(not_a_point, np.nan, grad_sample * d_dy).sum(axis=2)
        grad_offset[:, :, k, 1] = np.where(not_a_point, np.nan, grad_sample * d_dx).sum(axis=2)

    grads = {
        "input": grad_x.reshape(a.x.shape),
        "offset": grad_offset.reshape(a.offset.shape),
        "weight": grad_w,
    }
    if a.b is not None:
        grads["bias"] = grad.sum(axis=(0, 2, 3))
    if a.mask is not None:
        grads["mask"] = grad_mask.reshape(a.mask.shape)
    return grads
