"""Argument checks, output sizes and window geometry shared by every operation and backend.

Every backend validates through this module, so an argument error reads the same
whichever framework raised it: ``ValueError``/``TypeError`` naming the operation, the
argument and the value received (``MemoryError`` for a call whose tensors cannot fit in
memory, see "Sizes" below), raised before anything is copied, allocated or
computed. The per-operation checks (``reference.conv2d.conv2d_signature``,
``reference.deform.deform_conv2d_signature``, ...) live beside each op's definition and are
built from the pieces here; they take only shapes and Python values, so torch and JAX
call them on tensors they never read (at trace time under ``jax.jit``, on CUDA tensors,
on fake tensors).

What a call may hold:

- Tensor arguments: each backend says which kind it takes (the reference: NumPy arrays
  of float32 or float64) through :func:`check_tensor_types`; ``bias`` and ``mask`` may be
  None, no other tensor may. Every axis but the batch (axis 0 of the activations) must
  be non-empty; an empty batch gives an empty result.
- Shapes: the entries are ints, except that a batch size which is not an int (a
  ``torch.SymInt`` under ``torch.export`` / ``torch.compile(dynamic=True)``) passes
  through unconverted: it is never converted, compared or branched on, so a symbolic
  batch stays symbolic. Checks that relate it to another batch size are left to the
  framework.
- ``stride``/``padding``/``dilation``/``kernel_size``: an int or a sequence of one or two
  ints (one entry serves both axes, as torch's ``_pair`` does), never a bool; pooling's
  ``stride`` of ``None`` or ``()`` means the kernel size. Every integer argument and every
  padded extent is at most 2**31 - 1 (see "Sizes" below).

Windows are handled tap by tap: for a kernel tap ``(i, j)``, :meth:`Geometry.tap` is
the strided view of the padded input that this tap reads at every output position::

    tap(xpad, i, j)[n, c, y, x] == xpad[n, c, y*sh + i*dh, x*sw + j*dw]

so a sliding-window operation is a short loop over the ``kh*kw`` taps of vectorised work
on ``[N, C, oh, ow]`` arrays, and never materialises the ``kh*kw``-times larger
unfolded input. Which taps of a window read the input (rather than padding) is known in
closed form per output position (:meth:`Geometry.input_taps`), so pooling loops only
over taps that read something, however large its window.
"""

from __future__ import annotations

import itertools
import math
import numbers
import operator
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: What the reference accepts; backends pass their own list to :func:`check_float_dtypes`.
REFERENCE_DTYPES = ("float32", "float64")
#: Tensor arguments that may be None (absent); every other tensor argument is required.
OPTIONAL_TENSORS = ("bias", "mask")


# ----------------------------------------------------------------------------- sizes
# How large a call may be: two limits, checked on Python ints (never on the tensors).
#
# - **One axis fits 32-bit indices.** Every integer argument (kernel size, stride,
#   padding, dilation, groups, divisor) and every padded input extent
#   ``H + pad_before + pad_after`` is at most :data:`MAX_EXTENT` = 2**31 - 1: the GPU
#   kernels and JAX (without ``jax_enable_x64``) index one axis with 32-bit integers, and
#   a window, an output size or a padded size derived from such values then fits 64-bit
#   arithmetic with room to spare. Beyond it: ``ValueError`` naming the argument.
# - **The tensors an op creates fit in memory.** The output and the padded input (which
#   the reference and the XLA code materialise) together need at least
#   :data:`BYTES_PER_ELEMENT` bytes an element. More than this machine's memory
#   (:func:`machine_memory`): ``MemoryError`` naming the arguments, raised before anything
#   is allocated, where NumPy would raise it late, XLA:CPU would abort the process and the
#   Linux OOM killer would end it.
#
# An empty batch (N = 0) or a symbolic one (a ``torch.SymInt`` under ``torch.export``) is
# checked as a batch of one: an empty batch is refused exactly where a batch of one is.

#: The largest extent along one axis, and the largest integer argument: 2**31 - 1.
MAX_EXTENT = 2**31 - 1
#: The least bytes an element takes in any backend's computation (float32: half
#: precision is computed in float32).
BYTES_PER_ELEMENT = 4
#: The memory assumed where the machine's cannot be read: the 2**48-byte virtual address
#: space of x86-64 and AArch64 processes.
ADDRESS_SPACE = 2**48


def _read_machine_memory() -> int:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        total = ADDRESS_SPACE
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total if total > 0 else ADDRESS_SPACE


#: Read once, at import: the checks run inside ``torch.compile`` and ``jax.jit`` traces,
#: which should see a constant rather than a system call.
_MACHINE_MEMORY = _read_machine_memory()


def machine_memory() -> int:
    """Bytes of physical memory, or the cgroup (container) limit if lower."""
    return _MACHINE_MEMORY


def elements(shape) -> int:
    """Elements of a tensor of ``shape``, the batch (axis 0) counted as at least one and
    a non-int (symbolic) batch as one."""
    batch, *rest = shape
    batch = batch if isinstance(batch, int) and batch > 0 else 1
    return batch * math.prod(rest)


def _bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_memory(op: str, created: dict[str, tuple], arguments: str) -> None:
    """``MemoryError`` if the tensors of ``created`` (name -> shape) need more than this
    machine's memory at :data:`BYTES_PER_ELEMENT` bytes an element; ``arguments``
    describes the call (it names the arguments that set the sizes)."""
    need = BYTES_PER_ELEMENT * sum(elements(shape) for shape in created.values())
    have = machine_memory()
    if need > have:
        listed = " and ".join(
            f"the {name} {list(shape)}" for name, shape in created.items()
        )
        raise MemoryError(
            f"{op}: {listed} need at least {_bytes(need)}, more than this machine's "
            f"{_bytes(have)} of memory ({arguments})"
        )


# ----------------------------------------------------------------------------- tensors


def check_tensor_types(op: str, accepted, accepted_name: str, tensors: Mapping[str, object]) -> None:
    """Every tensor argument (name -> value) is an instance of ``accepted``; the optional
    ones (:data:`OPTIONAL_TENSORS`) may also be None. ``TypeError`` naming the argument and
    what it got otherwise (``accepted_name`` says what was expected: "a torch.Tensor")."""
    for name, value in tensors.items():
        if value is None and name in OPTIONAL_TENSORS:
            continue
        if not isinstance(value, accepted):
            got = "None" if value is None else type(value).__name__
            raise TypeError(f"{op}: {name} must be {accepted_name}, got {got}")


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


#: How the reference names what it accepts, in its errors.
REFERENCE_KIND = "a numpy.ndarray of float32 or float64"


def check_arrays(op: str, **arrays) -> tuple:
    """The reference's tensor arguments, returned as given (nothing copied): NumPy arrays
    (``numpy.ndarray``) of float32 or float64, None for an absent bias or mask.

    Anything else is a ``TypeError`` naming the argument: a list (which may be ragged, of
    ints, or of strings: convert it with ``np.asarray(value, np.float64)``), a torch or
    JAX tensor (``.numpy()`` / ``np.asarray``), a scalar, None for a required tensor.
    """
    check_tensor_types(op, np.ndarray, REFERENCE_KIND, arrays)
    check_float_dtypes(op, {name: None if a is None else a.dtype for name, a in arrays.items()})
    return tuple(arrays.values())


def to_float64(*arrays) -> tuple:
    """Each array as float64 (a copy only for float32); None stays None."""
    return tuple(None if a is None else a.astype(np.float64, copy=False) for a in arrays)


def float_arrays(op: str, **arrays) -> tuple:
    """:func:`check_arrays`, then each as float64, in one step. The reference's ops take
    the two steps apart and run their signature check between them, so that nothing is
    copied before every argument is checked."""
    return to_float64(*check_arrays(op, **arrays))


def as_float_array(value, name: str, op: str) -> np.ndarray:
    """``value``, an array or a nested sequence of numbers, as a float64 array;
    ``TypeError`` naming ``name`` unless it holds float32 or float64 numbers."""
    if value is None or isinstance(value, (str, bytes, Mapping)):
        raise TypeError(f"{op}: {name} must be a float32 or float64 array, got "
                        f"{type(value).__name__}")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged sequences
        raise TypeError(f"{op}: {name} must be a float32 or float64 array, got "
                        f"{type(value).__name__} ({error})") from None
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{op}: {name} must be a float32 or float64 array, got dtype {array.dtype}"
        )
    return array.astype(np.float64, copy=False)


# ----------------------------------------------------------------------------- shapes


def is_int(value) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_ndim(shape, name: str, ndim: int, layout: str, op: str, batch: bool = True) -> tuple:
    """``shape`` (or an array's shape) has ``ndim`` axes, none negative and none empty
    except the batch (axis 0, when ``batch``). Returns it as a tuple of ints, except a
    batch entry that is not an int (a symbolic size), which is returned untouched."""
    dims = tuple(getattr(shape, "shape", shape))
    if len(dims) != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D {layout}, got shape {dims}")
    checked = []
    for axis, size in enumerate(dims):
        if axis == 0 and batch and not is_int(size):
            checked.append(size)  # symbolic: never converted or compared
            continue
        try:
            if isinstance(size, (bool, np.bool_)):
                raise TypeError
            # int() for an int: Dynamo presents a symbolic batch as one, and keeps it
            # symbolic through int() where operator.index() would pin it. Other sizes with
            # __index__ (a torch.SymInt outside Dynamo) are pinned, as they must be.
            size = int(size) if is_int(size) else operator.index(size)
        except TypeError:
            raise TypeError(f"{op}: {name} has a size that is not an int: shape {dims}") from None
        if size < 0:
            raise ValueError(f"{op}: {name} has a negative size: shape {dims}")
        checked.append(size)
    if any(size == 0 for axis, size in enumerate(checked) if axis > 0 or not batch):
        where = "only the batch (axis 0) may be empty" if batch else "no axis may be empty"
        raise ValueError(f"{op}: {name} {layout} has an empty axis: shape {tuple(checked)} "
                         f"({where})")
    return tuple(checked)


def sizes_differ(a, b) -> bool:
    """Two sizes known to differ (a symbolic size is never compared)."""
    return is_int(a) and is_int(b) and a != b


def check_shape(shape, name: str, expected: tuple, op: str, why: str = "") -> None:
    """``shape`` equals ``expected`` (entries that are not ints are not compared)."""
    dims = tuple(getattr(shape, "shape", shape))
    if len(dims) != len(expected) or any(map(sizes_differ, dims, expected)):
        reason = f" ({why})" if why else ""
        raise ValueError(
            f"{op}: {name} must have shape {tuple(expected)}{reason}, got {dims}"
        )


def check_bias(bias_shape, out_channels: int, op: str) -> None:
    if bias_shape is not None:
        dims = check_ndim(bias_shape, "bias", 1, "[O]", op, batch=False)
        check_shape(dims, "bias", (out_channels,), op, "one value per output channel")


def check_grad_output(grad_output, expected_shape: tuple, op: str) -> np.ndarray:
    """The reference's ``grad_output``: checked like a tensor argument and against the
    forward output's shape, then as float64."""
    (grad,) = check_arrays(op, grad_output=grad_output)
    check_shape(grad.shape, "grad_output", expected_shape, op, "the forward output's shape")
    return grad.astype(np.float64, copy=False)


def shape_of(tensor) -> tuple | None:
    """``tensor.shape`` as a tuple (entries unconverted); None stays None (an absent
    optional argument)."""
    return None if tensor is None else tuple(tensor.shape)


# ----------------------------------------------------------------------------- scalars


def int_pair(value, name: str, op: str) -> tuple[int, int]:
    """``value`` as ``(h, w)``: an int, or a sequence of one (both axes) or two ints, each
    at most 2**31 - 1."""
    if is_int(value):
        pair = int(value), int(value)
    elif isinstance(value, (tuple, list)) and len(value) in (1, 2) and all(map(is_int, value)):
        pair = int(value[0]), int(value[-1])
    else:
        raise TypeError(
            f"{op}: {name} must be an int or a sequence of one or two ints, got {name}={value!r}"
        )
    if max(pair) > MAX_EXTENT:
        raise ValueError(f"{op}: {name} must be at most 2**31 - 1, got {name}={value!r}")
    return pair


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
    if type(value).__name__ == "SymFloat":
        # A symbolic float (torch.compile with dynamic shapes): it can be compared, while
        # float() or math.isfinite would pin it to the traced value.
        if not 0 < value < math.inf:
            raise ValueError(f"{op}: {name} must be finite and > 0, got {name}={value!r}")
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {name}={value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        number = math.inf
    # Comparisons only (a NaN fails them): under torch.compile with dynamic shapes Dynamo
    # hands a float argument over as a symbolic float, which math.isfinite cannot take.
    if not 0 < number < math.inf:
        raise ValueError(f"{op}: {name} must be finite and > 0, got {name}={value!r}")
    return number


def check_flag(value, name: str, op: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {name}={value!r}")
    return bool(value)


def positive_int(value, name: str, op: str) -> int:
    if not is_int(value):
        raise TypeError(f"{op}: {name} must be an int, got {name}={value!r}")
    if value < 1:
        raise ValueError(f"{op}: {name} must be positive, got {name}={value}")
    if value > MAX_EXTENT:
        raise ValueError(f"{op}: {name} must be at most 2**31 - 1, got {name}={value}")
    return int(value)


# ----------------------------------------------------------------------------- geometry


def tap_extent(kernel: int, dilation: int) -> int:
    """``dilation*(kernel-1) + 1``: how many cells a window spans along one axis."""
    return dilation * (kernel - 1) + 1


def output_length(size: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    """``floor((size + pad_total - dilation*(kernel-1) - 1) / stride) + 1``."""
    return (size + pad_total - tap_extent(kernel, dilation)) // stride + 1


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

    def padded_size(self) -> tuple[int, int]:
        """``(Hp, Wp)``: the input's size with its padding."""
        return tuple(n + b + a for n, b, a in zip(self.in_size, self.pad_before, self.pad_after))

    def used_size(self) -> tuple[int, int]:
        """The rows and columns of the padded input that some window reads, from the
        top-left: ``(out - 1) * stride + dilation*(kernel-1) + 1`` per axis (the rest of a
        floor-rounded output size is never read)."""
        return tuple((o - 1) * s + tap_extent(k, d) for o, s, k, d in
                     zip(self.out_size, self.stride, self.kernel, self.dilation))

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
        out = np.arange(self.out_size[axis], dtype=np.int64)
        return out * self.stride[axis] - self.pad_before[axis] + tap * self.dilation[axis]

    def in_input(self, i: int, j: int) -> np.ndarray:
        """``[oh, ow]`` mask: does tap ``(i, j)`` land inside the unpadded input?"""
        rows, cols = self.positions(0, i), self.positions(1, j)
        rows_ok = (rows >= 0) & (rows < self.in_size[0])
        cols_ok = (cols >= 0) & (cols < self.in_size[1])
        return rows_ok[:, None] & cols_ok[None, :]

    def window_input_taps(self, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """Closed form, per output position along ``axis``: the first and last tap whose
        coordinate ``start + t*d`` lies in ``[0, n)``, as ``(first, last)`` int arrays
        (``first > last``: the window reads only padding). Taps in between land inside
        too, since the coordinates step by the dilation ``d``."""
        n, k, d = self.in_size[axis], self.kernel[axis], self.dilation[axis]
        start = self.positions(axis, 0)
        first = np.maximum(0, -(start // d))  # ceil(-start / d)
        last = np.minimum(k - 1, (n - 1 - start) // d)
        return first, last

    def input_tap_range(self, axis: int) -> tuple[int, int]:
        """Closed form: the first and last tap along ``axis`` that reads the input at one
        output position at least (``first > last``: none does). Every such tap lies in
        between, so a kernel that loops over this range (the Triton pooling kernels)
        visits at most ``(2*n + stride) / dilation + 2`` taps along an axis of ``n``
        cells, however large the window: the first window starts at ``-pad``, the last
        at ``(out - 1) * stride - pad``."""
        n, k, d = self.in_size[axis], self.kernel[axis], self.dilation[axis]
        first_start = -self.pad_before[axis]
        last_start = (self.out_size[axis] - 1) * self.stride[axis] - self.pad_before[axis]
        return max(0, -(last_start // d)), min(k - 1, (n - 1 - first_start) // d)

    def _axis_input_taps(self, axis: int) -> list[int]:
        """The taps along ``axis`` that read the input at some output position: the union
        of the windows' ``[first, last]`` ranges."""
        first, last = self.window_input_taps(axis)
        keep = first <= last
        first, last = first[keep], last[keep]
        order = np.argsort(first, kind="stable")
        taps, end = [], -1
        for lo, hi in zip(first[order].tolist(), last[order].tolist()):
            taps.extend(range(max(lo, end + 1), hi + 1))
            end = max(end, hi)
        return taps

    def input_taps(self):
        """The taps ``(i, j)``, row-major, that read the unpadded input at one output
        position at least: as many as the input and the output positions allow, however
        large the window. The other taps read only padding everywhere."""
        return itertools.product(self._axis_input_taps(0), self._axis_input_taps(1))


def describe_window(kernel_name, kernel, stride, padding, dilation, in_size) -> str:
    """The arguments that set a window's sizes, for messages."""
    return (f"input {in_size[0]}x{in_size[1]}, {kernel_name}={kernel}, stride={stride}, "
            f"padding={padding!r}, dilation={dilation}")


def _check_padded_size(op, in_size, before, after, described) -> None:
    padded = [n + b + a for n, b, a in zip(in_size, before, after)]
    if max(padded) > MAX_EXTENT:
        raise ValueError(
            f"{op}: the padded input would be {padded[0]}x{padded[1]}, more than 2**31 - 1 "
            f"along one axis (one axis must fit 32-bit indices; {described})"
        )


def _check_output_size(op, out, described) -> None:
    if min(out) < 1:
        raise ValueError(
            f"{op}: output size would be {out[0]}x{out[1]} (< 1) for {described}"
        )


def check_created_sizes(op: str, geometry: Geometry, batch, channels: int, out_channels: int,
                        described: str) -> None:
    """``MemoryError`` unless the output ``[N, out_channels, oh, ow]`` and the padded input
    ``[N, channels, Hp, Wp]`` fit in memory (:func:`check_memory`)."""
    check_memory(op, {"output": (batch, out_channels, *geometry.out_size),
                      "padded input": (batch, channels, *geometry.padded_size())}, described)


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
            totals = [tap_extent(k, d) - 1 for k, d in zip(kernel, dilation)]
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
    ``ValueError`` when it is < 1 or a padded extent exceeds 2**31 - 1.
    """
    kernel = positive_pair(kernel, kernel_name, op)
    stride = positive_pair(stride, "stride", op)
    dilation = positive_pair(dilation, "dilation", op)
    before, after = _resolve_padding(
        padding, kernel, stride, dilation, op, allow_string_padding
    )
    in_size = (operator.index(input_shape[-2]), operator.index(input_shape[-1]))
    described = describe_window(kernel_name, kernel, stride, padding, dilation, in_size)
    _check_padded_size(op, in_size, before, after, described)
    out = tuple(
        output_length(n, k, s, b + a, d)
        for n, k, s, b, a, d in zip(in_size, kernel, stride, before, after, dilation)
    )
    _check_output_size(op, out, described)
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
# One check per operation, ``<op>_signature`` in the op's own file, on shapes (tuples, or
# anything with ``.shape``; None for an absent optional tensor) and Python values. Each
# returns what a backend needs to compute the op: the window geometry, resolved groups and
# scalars, the output shape. The output shape's batch entry is the input's, unconverted
# (it may be symbolic). What the convolutions' checks share is here.

KERNEL = "weight's kernel size"


@dataclass(frozen=True)
class ConvSignature:
    """A checked call of a convolution-like op: ``out_shape == (N, O, *geometry.out_size)``."""

    geometry: Geometry
    out_shape: tuple
    groups: int = 1
    offset_groups: int = 1
    focal: float = 1.0
    pixel_size: float = 1.0


def conv_operands(op, input, weight, weight_layout, weight_ndim=4):
    """The shapes of a convolution's input ``[N, C, H, W]`` and weight, checked."""
    x = check_ndim(input, "input", 4, "[N, C, H, W]", op)
    w = check_ndim(weight, "weight", weight_ndim, weight_layout, op, batch=False)
    return x, w


def conv_window(op, x, kernel, out_channels, stride, padding, dilation, **options) -> Geometry:
    """The geometry of a convolution's window over ``x``, and its sizes checked."""
    geometry = conv_geometry(op, x, kernel, stride, padding, dilation, kernel_name=KERNEL,
                             **options)
    described = describe_window(KERNEL, geometry.kernel, geometry.stride, padding, geometry.dilation,
                                geometry.in_size)
    check_created_sizes(op, geometry, x[0], x[1], out_channels, described)
    return geometry


# ----------------------------------------------------------------------------- pooling


def pool_geometry(op, input_shape, kernel_size, stride, padding, dilation, ceil_mode) -> Geometry:
    """Validate pooling arguments and place every window (torch's rules); the output
    ``[N, C, oh, ow]`` and the padded input must fit in memory."""
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
    in_size = (operator.index(input_shape[-2]), operator.index(input_shape[-1]))
    out, pad_after = [], []
    for n, k, s, p, d in zip(in_size, kernel, stride, pad, dilation):
        span = tap_extent(k, d)
        length = (n + 2 * p - span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (length - 1) * s >= n + p:
            length -= 1
        out.append(length)
        pad_after.append(max(p, (length - 1) * s + span - n - p))  # ceil-mode overhang
    described = (f"input {in_size[0]}x{in_size[1]}, kernel_size={kernel_size!r}, "
                 f"stride={stride}, padding={padding!r}, dilation={dilation}, "
                 f"ceil_mode={ceil_mode}")
    _check_padded_size(op, in_size, pad, pad_after, described)
    _check_output_size(op, out, described)
    geometry = Geometry(in_size, kernel, stride, dilation, pad, tuple(pad_after), tuple(out))
    check_created_sizes(op, geometry, input_shape[0], input_shape[1], input_shape[1], described)
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
