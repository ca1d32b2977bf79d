"""What every JAX op shares: argument kinds, dtypes, the ``impl`` switch, layouts.

The shape and value checks are not here: every op calls the shared checks of
``reference.common`` on shapes and Python values (at trace time under ``jax.jit``), so
errors read exactly as the reference's. This module adds what only JAX needs: tensor
arguments are JAX or NumPy arrays (:func:`as_arrays`), and every other argument is a
static Python value, never a traced one (:func:`check_static`). The window geometry
(padding, taps) is :mod:`jax_impl.geometry`.
"""

from __future__ import annotations

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from reference.common import check_float_dtypes, check_tensor_types

#: Accepted input dtypes. The half-precision ones are computed in float32 and the result
#: is cast back (products of tangents, bilinear weights and long sums lose too much in
#: 8-bit or 11-bit mantissas). float64 needs ``jax_enable_x64``.
DTYPES = ("float32", "float64", "bfloat16", "float16")
IMPLS = ("auto", "native", "pallas")
#: Matrix products at full precision on every device (no TF32 / bf16 passes on GPUs).
PRECISION = lax.Precision.HIGHEST


#: What a tensor argument may be: a JAX array (a tracer under a transformation is one)
#: or a NumPy array, taken as it is (nothing is copied or moved before the checks pass).
ARRAY_TYPES = (jax.Array, np.ndarray)
ARRAY_KIND = "a jax.Array or numpy.ndarray"


def as_arrays(op: str, **tensors) -> tuple:
    """The tensor arguments (name -> value) in order, each a JAX or NumPy array (None
    for an absent bias or mask); ``TypeError`` naming the argument for anything else: a
    torch tensor, a list, a scalar, a required tensor that is None."""
    check_tensor_types(op, ARRAY_TYPES, ARRAY_KIND, tensors)
    return tuple(tensors.values())


def _traced(value) -> bool:
    if isinstance(value, (tuple, list)):
        return any(map(_traced, value))
    return isinstance(value, jax.core.Tracer)


def check_static(op: str, **arguments) -> None:
    """Every non-tensor argument (stride, padding, groups, ...) is a Python value, not
    one traced by ``jax.jit`` (or another transformation): the window geometry and the
    output shape depend on it. ``TypeError`` saying which argument and how to make it
    static otherwise."""
    for name, value in arguments.items():
        if _traced(value):
            raise TypeError(
                f"{op}: {name} must be a static Python value, not a traced JAX value (the "
                f"output's shape depends on it). Under jax.jit mark it static, e.g. "
                f"jax.jit(jax_impl.{op}, static_argnames=({name!r},)), or bind it first: "
                f"jax.jit(functools.partial(jax_impl.{op}, {name}=...))"
            )


def check_dtypes(op: str, **tensors):
    """The tensors' common dtype; ``TypeError`` (reference wording) if one is not a float
    dtype of :data:`DTYPES` or they differ."""
    dtypes = {name: (None if t is None else t.dtype) for name, t in tensors.items()}
    check_float_dtypes(op, dtypes, allowed=DTYPES, same=True)
    return next(t.dtype for t in tensors.values() if t is not None)


def compute_dtype(dtype):
    """float32 for the half-precision dtypes, the dtype itself otherwise."""
    return jnp.float32 if jnp.dtype(dtype).itemsize < 4 else jnp.dtype(dtype)


def result_and_compute_dtypes(dtype):
    """The dtype an op returns for inputs of ``dtype`` (JAX's: float64 only under x64)
    and the one it computes in."""
    result = jax.dtypes.canonicalize_dtype(dtype)
    return result, compute_dtype(result)


def cast(dtype, *tensors):
    """Each tensor as a JAX array of ``dtype`` (None stays None)."""
    return tuple(None if t is None else jnp.asarray(t, dtype) for t in tensors)


def index_dtype():
    """int64 under ``jax_enable_x64`` (torch's index dtype), int32 otherwise."""
    return jax.dtypes.canonicalize_dtype(jnp.int64)


# ----------------------------------------------------------------------------- impl


def resolve_impl(op: str, impl, kernel_file: str | None) -> str:
    """``impl`` as ``"native"`` or ``"pallas"``: ``"auto"`` is the Pallas kernel on a GPU
    and XLA elsewhere. ``"pallas"`` imports ``jax_impl.kernels.<kernel_file>`` now, so a
    missing kernel is an error naming it before any work."""
    if impl not in IMPLS:
        raise ValueError(f"{op}: impl must be one of {', '.join(map(repr, IMPLS))}, got impl={impl!r}")
    if impl == "auto":
        impl = "pallas" if kernel_file and jax.default_backend() == "gpu" else "native"
    if impl == "pallas":
        if kernel_file is None:
            raise ValueError(f"{op}: there is no Pallas kernel for {op} (XLA's own code runs on "
                             f"every device); use impl='auto' or 'native', got impl='pallas'")
        kernel_module(op, kernel_file)
    return impl


def kernel_module(op: str, kernel_file: str):
    """``jax_impl.kernels.<kernel_file>``, or ``ModuleNotFoundError`` saying what is missing."""
    name = f"jax_impl.kernels.{kernel_file}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name not in (name, "jax_impl.kernels"):
            raise
        raise ModuleNotFoundError(
            f"{op}: impl='pallas' needs the Pallas kernel module {name}, which is not "
            f"available ({error}); use impl='native'", name=name
        ) from error


@functools.cache
def _jitted(fn, static_argnums):
    return jax.jit(fn, static_argnums=static_argnums)


def call_compiled(fn, *args):
    """``fn(*args)`` through one ``jax.jit`` per contract function, its non-array
    arguments (geometry, groups, ...) static.

    Called eagerly, an op then runs compiled; inside a user's ``jit`` the call is inlined.
    And a ``custom_vjp`` traces its primal and its forward rule apart (under ``jit`` and
    differentiation both happen), so sharing one jitted forward traces it once.
    """
    static = tuple(i for i, a in enumerate(args) if a is not None and not hasattr(a, "shape"))
    return _jitted(fn, static)(*args)


# ----------------------------------------------------------------------------- layout


def to_channels_last(x):
    """``[N, C, H, W] -> [N, H, W, C]``."""
    return jnp.transpose(x, (0, 2, 3, 1))


def to_channels_first(x):
    """``[N, H, W, C] -> [N, C, H, W]``."""
    return jnp.transpose(x, (0, 3, 1, 2))


def kernel_taps(weight):
    """``[..., kh, kw] -> [kh*kw, ...]``: one weight slice per tap, for a scan."""
    lead = weight.shape[:-2]
    taps = weight.reshape(*lead, -1)
    return jnp.moveaxis(taps, -1, 0)


def from_kernel_taps(taps, kernel):
    """Inverse of :func:`kernel_taps`: ``[kh*kw, ...] -> [..., kh, kw]``."""
    return jnp.moveaxis(taps, 0, -1).reshape(*taps.shape[1:], *kernel)


def add_bias(out, bias):
    """``out [N, O, oh, ow] + bias[o]`` (None: unchanged)."""
    return out if bias is None else out + bias.astype(out.dtype)[None, :, None, None]


