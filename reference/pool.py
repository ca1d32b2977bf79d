"""Max and average pooling, ``torch.nn.functional`` semantics exactly.

Output size per axis (``e = dilation*(k-1) + 1``)::

    out = floor((in + 2p - e + (stride-1 if ceil_mode else 0)) / stride) + 1
    if ceil_mode and (out-1)*stride >= in + p: out -= 1   # last window must start inside

max_pool2d: padding is -inf (padded cells never win). The window's taps are visited in
row-major order starting from ``best = -inf`` at the first tap inside the input, and a tap
replaces the best when ``v > best or v is NaN``: ties keep the first index, a NaN always
wins and, among several NaNs, the last one does (torch's CPU kernel does exactly this).
Indices are flat ``h*W + w`` per plane; the gradient goes to that index only.

avg_pool2d: sum of the window's input cells divided by ``divisor_override`` if given, else
by the number of cells the window covers inside the padded border (``count_include_pad``,
never the ceil-mode overhang beyond it) or inside the input.
"""

from __future__ import annotations

import numbers

import numpy as np

from .common import (
    Geometry,
    as_float_array,
    check_grad_output,
    check_ndim,
    nonnegative_pair,
    positive_pair,
)


def _check_flag(value, name, op):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {name}={value!r}")
    return bool(value)


def pool_geometry(op, input_shape, kernel_size, stride, padding, dilation, ceil_mode) -> Geometry:
    """Validate pooling arguments and place every window (torch's rules)."""
    kernel = positive_pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else positive_pair(stride, "stride", op)
    pad = nonnegative_pair(padding, "padding", op)
    dilation = positive_pair(dilation, "dilation", op)
    ceil_mode = _check_flag(ceil_mode, "ceil_mode", op)
    if any(2 * p > k for p, k in zip(pad, kernel)):
        raise ValueError(
            f"{op}: padding must be at most half of kernel_size, got padding={padding!r} "
            f"for kernel_size={kernel_size!r}"
        )
    in_size = (int(input_shape[-2]), int(input_shape[-1]))
    out, pad_after = [], []
    for n, k, s, p, d in zip(in_size, kernel, stride, pad, dilation):
        span = d * (k - 1) + 1
        length = (n + 2 * p - span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (length - 1) * s >= n + p:
            length -= 1
        out.append(length)
        pad_after.append(max(p, (length - 1) * s + span - n - p))  # ceil-mode overhang
    if min(out) < 1:
        raise ValueError(
            f"{op}: output size would be {out[0]}x{out[1]} (< 1) for input "
            f"{in_size[0]}x{in_size[1]}, kernel_size={kernel_size!r}, stride={stride}, "
            f"padding={padding!r}, dilation={dilation}, ceil_mode={ceil_mode}"
        )
    return Geometry(in_size, kernel, stride, dilation, pad, tuple(pad_after), tuple(out))


def _pool_input(input, op):
    x = as_float_array(input, "input", op)
    check_ndim(x, "input", 4, "[N, C, H, W]", op)
    return x


def _max_pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode):
    op = "max_pool2d"
    geometry = pool_geometry(op, x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    for axis, name in ((0, "row"), (1, "column")):
        taps = np.stack([geometry.positions(axis, t) for t in range(geometry.kernel[axis])])
        reaches_input = ((taps >= 0) & (taps < geometry.in_size[axis])).any(axis=0)
        if not reaches_input.all():
            o = int(np.argmin(reaches_input))
            raise ValueError(
                f"{op}: with padding={padding!r} and dilation={dilation!r} the window of output "
                f"{name} {o} covers only padding ({name}s {taps[:, o].tolist()} of an input with "
                f"{geometry.in_size[axis]}); torch returns -inf with an out-of-range index there "
                f"and its backward corrupts memory"
            )
    return geometry


def _argmax_windows(x, geometry):
    """Max and flat index of every window, visiting taps as torch's kernel does."""
    n, c = x.shape[:2]
    width = geometry.in_size[1]
    xpad = geometry.pad(x)
    best = np.full((n, c, *geometry.out_size), -np.inf)
    index = np.full(best.shape, -1, dtype=np.int64)
    for i, j in geometry.taps():
        flat = geometry.positions(0, i)[:, None] * width + geometry.positions(1, j)[None, :]
        inside = geometry.in_input(i, j)
        v = geometry.tap(xpad, i, j)
        index = np.where(inside & (index < 0), flat, index)
        better = inside & ((v > best) | np.isnan(v))
        best = np.where(better, v, best)
        index = np.where(better, flat, index)
    return best, index


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max pooling, float64.

    Args:
        input: ``[N, C, H, W]``.
        kernel_size: int or ``(h, w)``.
        stride: int, ``(h, w)`` or None (= kernel_size).
        padding: int or ``(h, w)``, at most half of kernel_size; padded cells never win.
        dilation: int or ``(h, w)``.
        ceil_mode: round the output size up (a last window must start inside the input
            or the left padding).
        return_indices: also return the argmax as flat ``h*W + w`` indices (int64).

    Returns:
        ``[N, C, oh, ow]`` float64, or ``(output, indices)``.
    """
    x = _pool_input(input, "max_pool2d")
    return_indices = _check_flag(return_indices, "return_indices", "max_pool2d")
    geometry = _max_pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    best, index = _argmax_windows(x, geometry)
    return (best, index) if return_indices else best


def max_pool2d_vjp(grad_output, input, kernel_size, stride=None, padding=0, dilation=1,
                   ceil_mode=False, return_indices=False):
    """Gradient of :func:`max_pool2d` (of its output, not the indices): ``{"input"}``."""
    x = _pool_input(input, "max_pool2d")
    _check_flag(return_indices, "return_indices", "max_pool2d")
    geometry = _max_pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    grad = check_grad_output(grad_output, (*x.shape[:2], *geometry.out_size), "max_pool2d")
    _, index = _argmax_windows(x, geometry)
    n, c, h, w = x.shape
    grad_x = np.zeros((n * c, h * w))
    planes = np.arange(n * c)[:, None]
    np.add.at(grad_x, (planes, index.reshape(n * c, -1)), grad.reshape(n * c, -1))
    return {"input": grad_x.reshape(x.shape)}


def _avg_pool_args(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                   divisor_override):
    op = "avg_pool2d"
    x = _pool_input(input, op)
    geometry = pool_geometry(op, x.shape, kernel_size, stride, padding, 1, ceil_mode)
    count_include_pad = _check_flag(count_include_pad, "count_include_pad", op)
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral):
            raise TypeError(
                f"{op}: divisor_override must be an int or None, got "
                f"divisor_override={divisor_override!r}"
            )
        if divisor_override == 0:
            raise ValueError(f"{op}: divisor_override must not be zero")
    return x, geometry, _avg_divisor(geometry, count_include_pad, divisor_override)


def _avg_divisor(geometry, count_include_pad, divisor_override):
    """``[oh, ow]`` divisor of every window."""
    if divisor_override is not None:
        return np.full(geometry.out_size, float(divisor_override))
    counts = []
    for axis in (0, 1):
        start = geometry.positions(axis, 0)
        end = start + geometry.kernel[axis]
        size, pad = geometry.in_size[axis], geometry.pad_before[axis]
        if count_include_pad:
            counts.append(np.minimum(end, size + pad) - start)
        else:
            counts.append(np.minimum(end, size) - np.maximum(start, 0))
    return (counts[0][:, None] * counts[1][None, :]).astype(np.float64)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Average pooling, float64.

    Args:
        input: ``[N, C, H, W]``.
        kernel_size: int or ``(h, w)``.
        stride: int, ``(h, w)`` or None (= kernel_size).
        padding: int or ``(h, w)`` zero padding, at most half of kernel_size.
        ceil_mode: round the output size up (see :func:`max_pool2d`).
        count_include_pad: divide by the cells covered inside the padded border (True) or
            inside the input only (False).
        divisor_override: non-zero int replacing the count.

    Returns:
        ``[N, C, oh, ow]`` float64.
    """
    x, geometry, divisor = _avg_pool_args(
        input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    xpad = geometry.pad(x)
    with np.errstate(invalid="ignore"):  # inf + -inf is NaN, as in torch
        total = sum(geometry.tap(xpad, i, j) for i, j in geometry.taps())
    return total / divisor


def avg_pool2d_vjp(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                   count_include_pad=True, divisor_override=None):
    """Gradient of :func:`avg_pool2d`: ``{"input"}``."""
    x, geometry, divisor = _avg_pool_args(
        input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    grad = check_grad_output(grad_output, (*x.shape[:2], *geometry.out_size), "avg_pool2d")
    grad_xpad = np.zeros_like(geometry.pad(x))
    for i, j in geometry.taps():
        geometry.add_to_tap(grad_xpad, i, j, grad / divisor)
    return {"input": geometry.unpad(grad_xpad).copy()}
