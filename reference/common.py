"""Argument checks, output sizes and window geometry shared by every operation.

Every backend validates through this module, so an argument error reads the same
whichever framework raised it: ``ValueError``/``TypeError`` naming the operation, the
argument and the value received, raised before any work is done.

Windows are handled tap by tap: for a kernel tap ``(i, j)``, :meth:`Geometry.tap` is
the strided view of the padded input that this tap reads at every output position::

    tap(xpad, i, j)[n, c, y, x] == xpad[n, c, y*sh + i*dh, x*sw + j*dw]

so a sliding-window operation is a short loop over the ``kh*kw`` taps of vectorised work
on ``[N, C, oh, ow]`` arrays, and never materialises the ``kh*kw``-times larger
unfolded input.
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_float_array(value, name: str, op: str) -> np.ndarray:
    """``value`` as a float64 array; ``TypeError`` unless it is float32 or float64."""
    array = np.asarray(value)
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{op}: {name} must be a float32 or float64 array, got dtype {array.dtype}"
        )
    return array.astype(np.float64, copy=False)


def optional_float_array(value, name: str, op: str) -> np.ndarray | None:
    return None if value is None else as_float_array(value, name, op)


def check_ndim(array: np.ndarray, name: str, ndim: int, layout: str, op: str) -> None:
    if array.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D {layout}, got shape {array.shape}")


def check_shape(array: np.ndarray, name: str, expected: tuple, op: str, why: str = "") -> None:
    if tuple(array.shape) != tuple(expected):
        reason = f" ({why})" if why else ""
        raise ValueError(
            f"{op}: {name} must have shape {tuple(expected)}{reason}, got {tuple(array.shape)}"
        )


def conv_operands(op: str, input, weight, bias, weight_layout: str, weight_ndim: int = 4):
    """``input`` ``[N, C, H, W]``, ``weight`` and optional ``bias`` as checked float64 arrays."""
    x = as_float_array(input, "input", op)
    w = as_float_array(weight, "weight", op)
    b = optional_float_array(bias, "bias", op)
    check_ndim(x, "input", 4, "[N, C, H, W]", op)
    check_ndim(w, "weight", weight_ndim, weight_layout, op)
    return x, w, b


def check_bias(bias: np.ndarray | None, out_channels: int, op: str) -> None:
    if bias is not None:
        check_shape(bias, "bias", (out_channels,), op, "one value per output channel")


def check_grad_output(grad_output, expected_shape: tuple, op: str) -> np.ndarray:
    grad = as_float_array(grad_output, "grad_output", op)
    check_shape(grad, "grad_output", expected_shape, op, "the forward output's shape")
    return grad


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def int_pair(value, name: str, op: str) -> tuple[int, int]:
    """``value`` as ``(h, w)``: an int means the same on both axes."""
    if _is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_int, value)):
        return int(value[0]), int(value[1])
    raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {name}={value!r}")


def positive_pair(value, name: str, op: str) -> tuple[int, int]:
    pair = int_pair(value, name, op)
    if min(pair) <= 0:
        raise ValueError(f"{op}: {name} must be positive, got {name}={value!r}")
    return pair


def nonnegative_pair(value, name: str, op: str) -> tuple[int, int]:
    pair = int_pair(value, name, op)
    if min(pair) < 0:
        raise ValueError(f"{op}: {name} must be >= 0, got {name}={value!r}")
    return pair


def positive_finite_float(value, name: str, op: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {name}={value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{op}: {name} must be finite and > 0, got {name}={value!r}")
    return float(value)


def output_length(size: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    """``floor((size + pad_total - dilation*(kernel-1) - 1) / stride) + 1``."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class Geometry:
    """Where every output pixel's window lies in the padded input.

    ``pad_before``/``pad_after`` are ``(rows, cols)`` added above/left and below/right;
    they differ only for ``padding="same"`` with an even effective kernel and for the
    ceil-mode overhang of pooling.
    """

    in_size: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad_before: tuple[int, int]
    pad_after: tuple[int, int]
    out_size: tuple[int, int]

    def taps(self):
        """Kernel taps ``(i, j)`` in row-major order (tap index ``i*kw + j``)."""
        return itertools.product(range(self.kernel[0]), range(self.kernel[1]))

    def pad(self, x: np.ndarray, value: float = 0.0) -> np.ndarray:
        (top, left), (bottom, right) = self.pad_before, self.pad_after
        widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
        return np.pad(x, widths, constant_values=value)

    def unpad(self, xpad: np.ndarray) -> np.ndarray:
        (top, left), (h, w) = self.pad_before, self.in_size
        return xpad[..., top : top + h, left : left + w]

    def _tap_slices(self, i: int, j: int) -> tuple[slice, slice]:
        (sh, sw), (dh, dw), (oh, ow) = self.stride, self.dilation, self.out_size
        return (
            slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (ow - 1) + 1, sw),
        )

    def tap(self, xpad: np.ndarray, i: int, j: int) -> np.ndarray:
        """View ``[..., oh, ow]``: what tap ``(i, j)`` reads at every output position."""
        rows, cols = self._tap_slices(i, j)
        return xpad[..., rows, cols]

    def add_to_tap(self, grad_pad: np.ndarray, i: int, j: int, value: np.ndarray) -> None:
        """Adjoint of :meth:`tap`: ``grad_pad`` += ``value`` at the cells tap ``(i, j)`` reads."""
        rows, cols = self._tap_slices(i, j)
        grad_pad[..., rows, cols] += value

    def positions(self, axis: int, tap: int) -> np.ndarray:
        """Unpadded input coordinate of ``tap`` along ``axis`` (0 rows, 1 cols), per output."""
        out = np.arange(self.out_size[axis])
        return out * self.stride[axis] - self.pad_before[axis] + tap * self.dilation[axis]

    def in_input(self, i: int, j: int) -> np.ndarray:
        """``[oh, ow]`` mask: does tap ``(i, j)`` land inside the unpadded input?"""
        rows, cols = self.positions(0, i), self.positions(1, j)
        rows_ok = (rows >= 0) & (rows < self.in_size[0])
        cols_ok = (cols >= 0) & (cols < self.in_size[1])
        return rows_ok[:, None] & cols_ok[None, :]


def _resolve_padding(padding, kernel, stride, dilation, op, allow_string):
    if isinstance(padding, str):
        if not allow_string:
            raise TypeError(f"{op}: padding must be an int or a pair of ints, got {padding!r}")
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"{op}: padding='same' needs stride 1 (as in torch), got stride={stride}"
                )
            totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
            before = tuple(t // 2 for t in totals)
            after = tuple(t - b for t, b in zip(totals, before))
            return before, after
        raise ValueError(f"{op}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    pad = nonnegative_pair(padding, "padding", op)
    return pad, pad


def conv_geometry(
    op: str,
    input_shape: tuple,
    kernel,
    stride,
    padding,
    dilation,
    *,
    allow_string_padding: bool = False,
    kernel_name: str = "kernel_size",
) -> Geometry:
    """Validate stride/padding/dilation and compute the output size of a sliding window.

    ``out = floor((in + pad_before + pad_after - dil*(k-1) - 1) / stride) + 1`` per axis;
    ``ValueError`` when it is < 1.
    """
    kernel = positive_pair(kernel, kernel_name, op)
    stride = positive_pair(stride, "stride", op)
    dilation = positive_pair(dilation, "dilation", op)
    before, after = _resolve_padding(
        padding, kernel, stride, dilation, op, allow_string_padding
    )
    in_size = (int(input_shape[-2]), int(input_shape[-1]))
    out = tuple(
        output_length(n, k, s, b + a, d)
        for n, k, s, b, a, d in zip(in_size, kernel, stride, before, after, dilation)
    )
    if min(out) < 1:
        raise ValueError(
            f"{op}: output size would be {out[0]}x{out[1]} (< 1) for input "
            f"{in_size[0]}x{in_size[1]}, kernel_size={kernel}, stride={stride}, "
            f"padding={padding!r}, dilation={dilation}"
        )
    return Geometry(in_size, kernel, stride, dilation, before, after, out)


def split_groups(channels: int, group_size: int, name: str, op: str, what: str) -> int:
    """Number of groups when ``channels`` are split into groups of ``group_size``."""
    if group_size < 1 or channels % group_size:
        raise ValueError(
            f"{op}: {name} does not divide the {channels} input channels "
            f"({what}: got {group_size})"
        )
    return channels // group_size


def grouped_tap_product(cols: np.ndarray, w_tap: np.ndarray, groups: int) -> np.ndarray:
    """``out[n, o] = sum_{c in group(o)} w_tap[o, c] * cols[n, c]`` over ``[N, C, oh, ow]`` cols.

    ``w_tap`` is one kernel tap of a grouped weight, shape ``[O, C/groups]``.
    """
    n, c, oh, ow = cols.shape
    out_channels, group_in = w_tap.shape
    cols_g = cols.reshape(n, groups, group_in, oh, ow)
    w_g = w_tap.reshape(groups, out_channels // groups, group_in)
    out = np.einsum("ngcyx,goc->ngoyx", cols_g, w_g, optimize=True)
    return out.reshape(n, out_channels, oh, ow)


def grouped_tap_product_vjp(grad_out, cols, w_tap, groups):
    """Gradients of :func:`grouped_tap_product` w.r.t. ``cols`` and ``w_tap``."""
    n, c, oh, ow = cols.shape
    out_channels, group_in = w_tap.shape
    grad_g = grad_out.reshape(n, groups, out_channels // groups, oh, ow)
    cols_g = cols.reshape(n, groups, group_in, oh, ow)
    w_g = w_tap.reshape(groups, out_channels // groups, group_in)
    grad_cols = np.einsum("ngoyx,goc->ngcyx", grad_g, w_g, optimize=True)
    grad_w = np.einsum("ngoyx,ngcyx->goc", grad_g, cols_g, optimize=True)
    return grad_cols.reshape(n, c, oh, ow), grad_w.reshape(out_channels, group_in)
