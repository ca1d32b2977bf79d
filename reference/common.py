"""Argument checks, output sizes and window geometry shared by every operation and backend.

Every backend validates through this module, so an argument error reads the same
whichever framework raised it: ``ValueError``/``TypeError`` naming the operation, the
argument and the value received, raised before any work is done. The per-operation
checks (:func:`conv2d_signature`, :func:`deform_signature`, ...) take only shapes, dtype
names and Python values, so torch and JAX call them on tensors they never read (at trace
time under ``jax.jit``, on CUDA tensors, on fake tensors).

Argument forms follow torch: ``stride``/``padding``/``dilation``/``kernel_size`` are an int
or a sequence of one or two ints (one entry serves both axes, as torch's ``_pair`` does);
pooling's ``stride`` of ``None`` or ``()`` means the kernel size.

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
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: What the reference accepts; backends pass their own list to :func:`check_float_dtypes`.
REFERENCE_DTYPES = ("float32", "float64")


# ----------------------------------------------------------------------------- dtypes


def dtype_name(dtype) -> str:
    """``"float32"`` for ``np.float32``, ``torch.float32`` or a JAX dtype alike."""
    return str(dtype).removeprefix("torch.")


def check_float_dtypes(op: str, dtypes: Mapping[str, object], allowed=REFERENCE_DTYPES,
                       same: bool = False) -> str | None:
    """Every present (non-None) dtype in ``dtypes`` (argument name -> dtype) is allowed.

    ``same``: the tensors must also agree (backends never cast silently). Returns the
    common dtype's name (the first one's when ``same`` is False), None if none is present.
    """
    names = {arg: dtype_name(d) for arg, d in dtypes.items() if d is not None}
    for arg, name in names.items():
        if name not in allowed:
            raise TypeError(
                f"{op}: {arg} must be a {' or '.join(allowed)} tensor, got dtype {name}"
            )
    if same and len(set(names.values())) > 1:
        listed = ", ".join(f"{arg} {name}" for arg, name in names.items())
        raise TypeError(f"{op}: tensor arguments must share one dtype, got {listed}")
    return next(iter(names.values()), None)


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


def float_arrays(op: str, **arrays) -> tuple:
    """Each keyword argument as a float64 array (None stays None), in the order given."""
    return tuple(optional_float_array(value, name, op) for name, value in arrays.items())


# ----------------------------------------------------------------------------- shapes


def _sizes(shape) -> tuple:
    """``shape`` (or an array's shape) as a tuple of ints. A size that is not an integer,
    a symbolic size (``torch.SymInt`` under ``torch.export`` / ``torch.compile``), is kept
    as it is: comparing it is what the checks need, and ``int()`` would pin it to the
    traced value."""
    return tuple(int(s) if isinstance(s, numbers.Integral) else s
                 for s in getattr(shape, "shape", shape))


def check_ndim(shape, name: str, ndim: int, layout: str, op: str) -> tuple:
    """``shape`` (or an array's shape) has ``ndim`` axes; returns it as a tuple of sizes."""
    shape = _sizes(shape)
    if len(shape) != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D {layout}, got shape {shape}")
    return shape


def check_shape(shape, name: str, expected: tuple, op: str, why: str = "") -> None:
    shape = _sizes(shape)
    if shape != tuple(expected):
        reason = f" ({why})" if why else ""
        raise ValueError(
            f"{op}: {name} must have shape {tuple(expected)}{reason}, got {shape}"
        )


def check_bias(bias_shape, out_channels: int, op: str) -> None:
    if bias_shape is not None:
        check_shape(bias_shape, "bias", (out_channels,), op, "one value per output channel")


def check_grad_output(grad_output, expected_shape: tuple, op: str) -> np.ndarray:
    grad = as_float_array(grad_output, "grad_output", op)
    check_shape(grad.shape, "grad_output", expected_shape, op, "the forward output's shape")
    return grad


def shape_of(tensor) -> tuple | None:
    """``tensor.shape`` as a tuple of sizes; None stays None (an absent optional argument)."""
    return None if tensor is None else _sizes(tensor)


# ----------------------------------------------------------------------------- scalars


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def int_pair(value, name: str, op: str) -> tuple[int, int]:
    """``value`` as ``(h, w)``: an int, or a sequence of one (both axes) or two ints."""
    if _is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) in (1, 2) and all(map(_is_int, value)):
        return int(value[0]), int(value[-1])
    raise TypeError(
        f"{op}: {name} must be an int or a sequence of one or two ints, got {name}={value!r}"
    )


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
    # One chained comparison (False for NaN and inf): a symbolic float (torch.SymFloat
    # under torch.compile) can be compared, not passed to math.isfinite.
    if not 0 < value < math.inf:
        raise ValueError(f"{op}: {name} must be finite and > 0, got {name}={value!r}")
    return float(value)


def check_flag(value, name: str, op: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {name}={value!r}")
    return bool(value)


def positive_int(value, name: str, op: str) -> int:
    if not _is_int(value):
        raise TypeError(f"{op}: {name} must be an int, got {name}={value!r}")
    if value < 1:
        raise ValueError(f"{op}: {name} must be positive, got {name}={value}")
    return int(value)


# ----------------------------------------------------------------------------- geometry


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


# ----------------------------------------------------------------------------- signatures
# One check per operation, on shapes (tuples, or anything with ``.shape``; None for an
# absent optional tensor) and Python values. Each returns what a backend needs to compute
# the op: the window geometry, resolved groups and scalars, the output shape.

KERNEL = "weight's kernel size"


@dataclass(frozen=True)
class ConvSignature:
    """A checked call of a convolution-like op: ``out_shape == (N, O, *geometry.out_size)``."""

    geometry: Geometry
    out_shape: tuple[int, int, int, int]
    groups: int = 1
    offset_groups: int = 1
    focal: float = 1.0
    pixel_size: float = 1.0


def _operands(op, input, weight, weight_layout, weight_ndim=4):
    x = check_ndim(input, "input", 4, "[N, C, H, W]", op)
    w = check_ndim(weight, "weight", weight_ndim, weight_layout, op)
    return x, w


def conv2d_signature(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Check a call of ``conv2d`` (shapes ``input [N,C,H,W]``, ``weight [O,C/groups,kh,kw]``)."""
    op = "conv2d"
    x, w = _operands(op, input, weight, "[O, C/groups, kh, kw]")
    groups = positive_int(groups, "groups", op)
    if x[1] != groups * w[1]:
        raise ValueError(
            f"{op}: input has {x[1]} channels but weight {w} with groups={groups} expects "
            f"{groups * w[1]}"
        )
    if w[0] % groups:
        raise ValueError(f"{op}: groups={groups} must divide the weight's {w[0]} output channels")
    check_bias(bias, w[0], op)
    geometry = conv_geometry(op, x, w[2:], stride, padding, dilation,
                             allow_string_padding=True, kernel_name=KERNEL)
    return ConvSignature(geometry, (x[0], w[0], *geometry.out_size), groups=groups)


def tanprod_signature(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """Check a call of ``tanprod_conv2d`` (``input [N,C,H,W]``, ``weight [O,C,kh,kw]``)."""
    op = "tanprod_conv2d"
    x, w = _operands(op, input, weight, "[O, C, kh, kw]")
    if x[1] != w[1]:
        raise ValueError(f"{op}: input has {x[1]} channels but weight {w} expects {w[1]}")
    check_bias(bias, w[0], op)
    geometry = conv_geometry(op, x, w[2:], stride, padding, dilation, kernel_name=KERNEL)
    return ConvSignature(geometry, (x[0], w[0], *geometry.out_size))


def conv2_5d_signature(input, depth, weight, bias=None, stride=1, padding=0, dilation=1,
                       focal=1.0, pixel_size=1.0):
    """Check a call of ``conv2_5d`` (``depth [N,1,H,W]``, ``weight [B,O,C,kh,kw]``, kh, kw odd)."""
    op = "conv2_5d"
    x, w = _operands(op, input, weight, "[B, O, C, kh, kw]", weight_ndim=5)
    check_shape(depth, "depth", (x[0], 1, *x[2:]), op, "one depth map per sample")
    if w[0] < 1:
        raise ValueError(f"{op}: weight needs at least one depth bin, got shape {w}")
    if x[1] != w[2]:
        raise ValueError(f"{op}: input has {x[1]} channels but weight {w} expects {w[2]}")
    if w[3] % 2 == 0 or w[4] % 2 == 0:
        raise ValueError(
            f"{op}: the kernel needs a centre tap, so kh and kw must be odd; got weight shape {w}"
        )
    check_bias(bias, w[1], op)
    focal = positive_finite_float(focal, "focal", op)
    pixel_size = positive_finite_float(pixel_size, "pixel_size", op)
    geometry = conv_geometry(op, x, w[3:], stride, padding, dilation, kernel_name=KERNEL)
    return ConvSignature(geometry, (x[0], w[1], *geometry.out_size), focal=focal,
                         pixel_size=pixel_size)


def deform_signature(input, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None):
    """Check a call of ``deform_conv2d``; resolves weight groups and offset groups."""
    op = "deform_conv2d"
    x, w = _operands(op, input, weight, "[O, C/groups, kh, kw]")
    off = check_ndim(offset, "offset", 4, "[N, 2*offset_groups*kh*kw, oh, ow]", op)
    groups = split_groups(x[1], w[1], "weight.shape[1]", op, "channels per group")
    if w[0] % groups:
        raise ValueError(
            f"{op}: the {groups} weight groups must divide the weight's {w[0]} output channels "
            f"(weight shape {w})"
        )
    check_bias(bias, w[0], op)
    geometry = conv_geometry(op, x, w[2:], stride, padding, dilation, kernel_name=KERNEL)
    taps = w[2] * w[3]
    if off[1] == 0 or off[1] % (2 * taps):
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
        check_ndim(mask, "mask", 4, "[N, offset_groups*kh*kw, oh, ow]", op)
        check_shape(mask, "mask", (x[0], offset_groups * taps, *geometry.out_size), op,
                    f"offset_groups={offset_groups} from offset")
    return ConvSignature(geometry, (x[0], w[0], *geometry.out_size), groups=groups,
                         offset_groups=offset_groups)


def xcorr_signature(search, template, op="xcorr2d"):
    """Check a call of ``xcorr2d`` / ``xcorr2d_depthwise``; returns the output shape."""
    s = check_ndim(search, "search", 4, "[N, C, H, W]", op)
    t = check_ndim(template, "template", 4, "[N, C, h, w]", op)
    if s[:2] != t[:2]:
        raise ValueError(
            f"{op}: search and template must agree on batch and channels, got search {s} and "
            f"template {t}"
        )
    if t[2] > s[2] or t[3] > s[3] or min(t[2:]) < 1:
        raise ValueError(
            f"{op}: template's spatial size must be between 1x1 and the search's, got "
            f"template {t} for search {s}"
        )
    channels = 1 if op == "xcorr2d" else s[1]
    return (s[0], channels, s[2] - t[2] + 1, s[3] - t[3] + 1)


# ----------------------------------------------------------------------------- pooling


def pool_geometry(op, input_shape, kernel_size, stride, padding, dilation, ceil_mode) -> Geometry:
    """Validate pooling arguments and place every window (torch's rules)."""
    kernel = positive_pair(kernel_size, "kernel_size", op)
    no_stride = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    stride = kernel if no_stride else positive_pair(stride, "stride", op)
    pad = nonnegative_pair(padding, "padding", op)
    dilation = positive_pair(dilation, "dilation", op)
    ceil_mode = check_flag(ceil_mode, "ceil_mode", op)
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


def max_pool_signature(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       return_indices=False) -> Geometry:
    """Check a call of ``max_pool2d``, including torch's crash case: a window that covers
    only padding (possible with dilation) is a ``ValueError``."""
    op = "max_pool2d"
    x = check_ndim(input, "input", 4, "[N, C, H, W]", op)
    check_flag(return_indices, "return_indices", op)
    geometry = pool_geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode)
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


def avg_pool_signature(input, kernel_size, stride=None, padding=0, ceil_mode=False,
                       count_include_pad=True, divisor_override=None) -> Geometry:
    """Check a call of ``avg_pool2d``."""
    op = "avg_pool2d"
    x = check_ndim(input, "input", 4, "[N, C, H, W]", op)
    geometry = pool_geometry(op, x, kernel_size, stride, padding, 1, ceil_mode)
    check_flag(count_include_pad, "count_include_pad", op)
    if divisor_override is not None:
        if not _is_int(divisor_override):
            raise TypeError(
                f"{op}: divisor_override must be an int or None, got "
                f"divisor_override={divisor_override!r}"
            )
        if divisor_override == 0:
            raise ValueError(f"{op}: divisor_override must not be zero")
    return geometry


def avg_divisor(geometry: Geometry, count_include_pad: bool, divisor_override) -> np.ndarray:
    """``[oh, ow]`` float64 divisor of every average-pooling window (torch's rule): the
    override, else the cells covered inside the padded border (``count_include_pad``,
    never the ceil-mode overhang beyond it) or inside the input."""
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


# ----------------------------------------------------------------------------- reference math


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
