"""Max and average pooling, ``torch.nn.functional`` semantics exactly (docs/pool.md).

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

import numpy as np

from .common import (
    MAX_EXTENT,
    Geometry,
    avg_divisor,
    check_arrays,
    check_flag,
    check_grad_output,
    check_ndim,
    is_int,
    pool_geometry,
    to_float64,
)

# ----------------------------------------------------------------------------- checks


def max_pool2d_signature(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                         return_indices=False) -> Geometry:
    """Check a call of ``max_pool2d``, including torch's crash case: a window that covers
    only padding (possible with dilation) is a ``ValueError``."""
    op = "max_pool2d"
    x = check_ndim(input, "input", 4, "[N, C, H, W]", op)
    check_flag(return_indices, "return_indices", op)
    geometry = pool_geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode)
    _check_windows_reach_input(op, geometry, padding, dilation)
    return geometry


def avg_pool2d_signature(input, kernel_size, stride=None, padding=0, ceil_mode=False,
                         count_include_pad=True, divisor_override=None) -> Geometry:
    """Check a call of ``avg_pool2d``."""
    op = "avg_pool2d"
    x = check_ndim(input, "input", 4, "[N, C, H, W]", op)
    check_flag(count_include_pad, "count_include_pad", op)
    if divisor_override is not None:
        if not is_int(divisor_override):
            raise TypeError(
                f"{op}: divisor_override must be an int or None, got "
                f"divisor_override={divisor_override!r}"
            )
        if divisor_override == 0:
            raise ValueError(f"{op}: divisor_override must not be zero")
        if abs(divisor_override) > MAX_EXTENT:
            raise ValueError(f"{op}: divisor_override must be at most 2**31 - 1 in magnitude, "
                             f"got divisor_override={divisor_override}")
    return pool_geometry(op, x, kernel_size, stride, padding, 1, ceil_mode)


def _check_windows_reach_input(op, geometry, padding, dilation) -> None:
    """``ValueError`` if a max-pooling window reads only padding (closed form per output
    position: no loop over the window's taps)."""
    for axis, name in ((0, "row"), (1, "column")):
        first, last = geometry.window_input_taps(axis)
        only_padding = first > last
        if only_padding.any():
            o = int(np.argmax(only_padding))
            start = int(geometry.positions(axis, 0)[o])
            step, k = geometry.dilation[axis], geometry.kernel[axis]
            raise ValueError(
                f"{op}: with padding={padding!r} and dilation={dilation!r} the window of output "
                f"{name} {o} covers only padding ({name}s {start}, {start + step}, ..., "
                f"{start + (k - 1) * step} of an input with {geometry.in_size[axis]}); torch "
                f"returns -inf with an out-of-range index there and its backward corrupts memory"
            )


def _max_pool_args(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    (x,) = check_arrays("max_pool2d", input=input)
    geometry = max_pool2d_signature(x.shape, kernel_size, stride, padding, dilation, ceil_mode,
                                    return_indices)
    return *to_float64(x), geometry


def _argmax_windows(x, geometry):
    """Max and flat index of every window, visiting taps as torch's kernel does (only
    the taps that read the input somewhere: the others never win)."""
    n, c = x.shape[:2]
    width = geometry.in_size[1]
    xpad = geometry.pad(x)
    best = np.full((n, c, *geometry.out_size), -np.inf)
    index = np.full(best.shape, -1, dtype=np.int64)
    for i, j in geometry.input_taps():
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
        stride: int, ``(h, w)``, or None / ``()`` (= kernel_size).
        padding: int or ``(h, w)``, at most half of kernel_size; padded cells never win.
        dilation: int or ``(h, w)``.
        ceil_mode: round the output size up (a last window must start inside the input
            or the left padding).
        return_indices: also return the argmax as flat ``h*W + w`` indices (int64).

    Returns:
        ``[N, C, oh, ow]`` float64, or ``(output, indices)``.
    """
    x, geometry = _max_pool_args(input, kernel_size, stride, padding, dilation, ceil_mode,
                                 return_indices)
    best, index = _argmax_windows(x, geometry)
    return (best, index) if check_flag(return_indices, "return_indices", "max_pool2d") else best


def max_pool2d_vjp(grad_output, input, kernel_size, stride=None, padding=0, dilation=1,
                   ceil_mode=False, return_indices=False):
    """Gradient of :func:`max_pool2d` (of its output, not the indices): ``{"input"}``."""
    x, geometry = _max_pool_args(input, kernel_size, stride, padding, dilation, ceil_mode,
                                 return_indices)
    grad = check_grad_output(grad_output, (*x.shape[:2], *geometry.out_size), "max_pool2d")
    _, index = _argmax_windows(x, geometry)
    n, c, h, w = x.shape
    windows = geometry.out_size[0] * geometry.out_size[1]
    grad_x = np.zeros((n * c, h * w))
    planes = np.arange(n * c)[:, None]
    np.add.at(grad_x, (planes, index.reshape(n * c, windows)), grad.reshape(n * c, windows))
    return {"input": grad_x.reshape(x.shape)}


def _avg_pool_args(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                   divisor_override):
    (x,) = check_arrays("avg_pool2d", input=input)
    geometry = avg_pool2d_signature(x.shape, kernel_size, stride, padding, ceil_mode,
                                    count_include_pad, divisor_override)
    return *to_float64(x), geometry, avg_divisor(geometry, count_include_pad, divisor_override)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Average pooling, float64.

    Args:
        input: ``[N, C, H, W]``.
        kernel_size: int or ``(h, w)``.
        stride: int, ``(h, w)``, or None / ``()`` (= kernel_size).
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
    total = np.zeros((*x.shape[:2], *geometry.out_size))
    with np.errstate(invalid="ignore"):  # inf + -inf is NaN, as in torch
        for i, j in geometry.input_taps():  # the other taps add only padding's zeros
            total += geometry.tap(xpad, i, j)
    return total / divisor


def avg_pool2d_vjp(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                   count_include_pad=True, divisor_override=None):
    """Gradient of :func:`avg_pool2d`: ``{"input"}``."""
    x, geometry, divisor = _avg_pool_args(
        input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    grad = check_grad_output(grad_output, (*x.shape[:2], *geometry.out_size), "avg_pool2d")
    grad_xpad = np.zeros_like(geometry.pad(x))
    for i, j in geometry.input_taps():  # the others reach only padding
        geometry.add_to_tap(grad_xpad, i, j, grad / divisor)
    return {"input": geometry.unpad(grad_xpad).copy()}
