"""Max and average pooling with torch's rules exactly, in XLA; docs/pool.md and
``reference/pool.py`` define them.

max_pool2d visits each window's taps in row-major order, as torch's kernel does: the best
value starts at the first tap inside the input (padding never wins), a tap replaces it
when ``v > best or v is NaN``, so ties keep the first index and NaN wins (the last NaN,
among several). Indices are torch's flat ``h*W + w`` per plane. The taps are a short
unrolled loop of elementwise work on ``[N, C, oh, ow]`` arrays that XLA fuses into one
pass. The gradient (a ``jax.custom_vjp``) goes to the chosen index only, scatter-added.
JAX's own pooling gradients differ (docs/jax.md): a reshape-and-max pool splits ties,
``reduce_window`` max passes over a NaN and can send an all -inf window's gradient to
padding.

avg_pool2d is XLA's ``reduce_window`` sum over the zero-padded input (the ceil-mode
overhang included) divided by torch's divisor (``reference.common.avg_divisor``, a
constant of the static geometry). It is linear, so its gradient is JAX's own transpose
(forward and reverse mode) in the native implementation.

``max_forward`` / ``max_backward`` / ``avg_forward`` / ``avg_backward`` are the native
implementations of the kernel contract (the Pallas kernels in ``jax_impl.kernels.pool``
expose the same functions).
"""

from __future__ import annotations

import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from reference.common import avg_divisor
from reference.pool import avg_pool2d_signature, max_pool2d_signature

from . import common
from . import geometry as geo

# ----------------------------------------------------------------------------- contract


def _tap_view(xpad, geometry, i, j):
    """``[N, C, oh, ow]`` view of tap ``(i, j)`` in the NCHW-padded input."""
    (sh, sw), (dh, dw), (oh, ow) = geometry.stride, geometry.dilation, geometry.out_size
    start = (0, 0, i * dh, j * dw)
    limit = (xpad.shape[0], xpad.shape[1], i * dh + sh * (oh - 1) + 1, j * dw + sw * (ow - 1) + 1)
    return lax.slice(xpad, start, limit, (1, 1, sh, sw))


def _pad_nchw(x, geometry, value):
    (top, left), (bottom, right) = geometry.pad_before, geometry.pad_after
    config = [(0, 0, 0), (0, 0, 0), (top, bottom, 0), (left, right, 0)]
    return lax.pad(x, jnp.asarray(value, x.dtype), config)


def max_forward(input, geometry):
    """Max of every window and its flat index: ``(out [N, C, oh, ow], indices)``.

    Indices are int64 under ``jax_enable_x64`` and int32 otherwise.
    """
    width = geometry.in_size[1]
    xpad = _pad_nchw(input, geometry, -jnp.inf)
    best = jnp.full((*input.shape[:2], *geometry.out_size), -jnp.inf, input.dtype)
    index = jnp.full(best.shape, -1, common.index_dtype())
    for i, j in geometry.input_taps():  # the other taps read only padding: never the max
        rows = geo.positions(geometry, 0) + i * geometry.dilation[0]
        cols = geo.positions(geometry, 1) + j * geometry.dilation[1]
        inside = ((rows >= 0) & (rows < geometry.in_size[0]))[:, None] & (
            (cols >= 0) & (cols < width))[None, :]
        flat = jnp.asarray(rows[:, None] * width + cols[None, :], index.dtype)
        v = _tap_view(xpad, geometry, i, j)
        index = jnp.where(inside & (index < 0), flat, index)
        better = inside & ((v > best) | jnp.isnan(v))
        best = jnp.where(better, v, best)
        index = jnp.where(better, flat, index)
    return best, index


def max_backward(grad_out, indices, geometry):
    """Gradient of :func:`max_forward`'s values: ``grad_out`` scatter-added at ``indices``."""
    n, c = grad_out.shape[:2]
    (h, w), windows = geometry.in_size, geometry.out_size[0] * geometry.out_size[1]
    planes = jnp.arange(n * c, dtype=indices.dtype)[:, None]
    grad = jnp.zeros((n * c, h * w), grad_out.dtype)
    grad = grad.at[planes, indices.reshape(n * c, windows)].add(
        grad_out.reshape(n * c, windows), mode="promise_in_bounds")
    return grad.reshape(n, c, h, w)


def avg_forward(input, geometry, count_include_pad, divisor_override):
    """Average of every window with torch's divisor: ``[N, C, oh, ow]``."""
    (kh, kw), (sh, sw) = geometry.kernel, geometry.stride
    padding = ((0, 0), (0, 0), *zip(geometry.pad_before, geometry.pad_after))
    # A concrete zero and lax.add: JAX's differentiable reduce_window sum.
    total = lax.reduce_window(input, np.zeros((), input.dtype), lax.add, (1, 1, kh, kw),
                              (1, 1, sh, sw), padding)
    total = total[:, :, :geometry.out_size[0], :geometry.out_size[1]]
    divisor = avg_divisor(geometry, count_include_pad, divisor_override)
    return total / jnp.asarray(divisor, input.dtype)


def avg_backward(grad_out, geometry, count_include_pad, divisor_override):
    """Gradient of :func:`avg_forward` (linear, so it needs no input): ``[N, C, H, W]``."""
    shape = jax.ShapeDtypeStruct((*grad_out.shape[:2], *geometry.in_size), grad_out.dtype)
    forward = functools.partial(avg_forward, geometry=geometry,
                                count_include_pad=count_include_pad,
                                divisor_override=divisor_override)
    (grad,) = jax.linear_transpose(forward, shape)(grad_out)
    return grad


# ----------------------------------------------------------------------------- the ops


def _functions(impl, op):
    """The contract functions for a resolved ``impl``: this module or the Pallas kernels."""
    return sys.modules[__name__] if impl == "native" else common.kernel_module(op, "pool")


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _max_pool(input, geometry, impl):
    return common.call_compiled(_functions(impl, "max_pool2d").max_forward, input, geometry)


def _max_pool_fwd(input, geometry, impl):
    out, indices = _max_pool(input, geometry, impl)
    return (out, indices), indices


def _max_pool_bwd(geometry, impl, indices, grads):
    grad = common.call_compiled(_functions(impl, "max_pool2d").max_backward, grads[0], indices,
                                geometry)
    return (grad,)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, impl="auto"):
    """Max pooling, torch semantics (ties to the first index, NaN wins, ceil_mode).

    Args:
        input: ``[N, C, H, W]``.
        kernel_size: int or ``(h, w)``.
        stride: int, ``(h, w)``, or None / ``()`` (= kernel_size).
        padding: int or ``(h, w)``, at most half of kernel_size; padded cells never win.
        dilation: int or ``(h, w)``.
        ceil_mode: round the output size up (a last window must start inside the input or
            the left padding).
        return_indices: also return torch's flat ``h*W + w`` indices (int64 under
            ``jax_enable_x64``, int32 otherwise).
        impl: ``"auto"`` (Pallas kernel on a GPU, XLA elsewhere), ``"native"``, ``"pallas"``.

    Returns:
        ``[N, C, oh, ow]`` in the input's dtype, or ``(output, indices)``. The gradient
        goes to the chosen index only (a ``jax.custom_vjp``: reverse mode only).
    """
    (input,) = common.as_arrays("max_pool2d", input=input)
    common.check_static("max_pool2d", kernel_size=kernel_size, stride=stride, padding=padding,
                        dilation=dilation, ceil_mode=ceil_mode, return_indices=return_indices,
                        impl=impl)
    common.check_dtypes("max_pool2d", input=input)
    geometry = max_pool2d_signature(input.shape, kernel_size, stride, padding, dilation, ceil_mode,
                                    return_indices)
    impl = common.resolve_impl("max_pool2d", impl, "pool")
    result, compute = common.result_and_compute_dtypes(input.dtype)
    out, indices = _max_pool(*common.cast(compute, input), geometry, impl)
    return (out.astype(result), indices) if return_indices else out.astype(result)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _avg_pool_kernel(input, geometry, count_include_pad, divisor_override, impl):
    return common.call_compiled(_functions(impl, "avg_pool2d").avg_forward, input, geometry,
                                count_include_pad, divisor_override)


def _avg_pool_kernel_fwd(input, geometry, count_include_pad, divisor_override, impl):
    return _avg_pool_kernel(input, geometry, count_include_pad, divisor_override, impl), None


def _avg_pool_kernel_bwd(geometry, count_include_pad, divisor_override, impl, _, grad_out):
    grad = common.call_compiled(_functions(impl, "avg_pool2d").avg_backward, grad_out, geometry,
                                count_include_pad, divisor_override)
    return (grad,)


_avg_pool_kernel.defvjp(_avg_pool_kernel_fwd, _avg_pool_kernel_bwd)


def _avg_pool(input, geometry, count_include_pad, divisor_override, impl):
    if impl == "native":  # linear: JAX's own derivatives, both modes
        return common.call_compiled(avg_forward, input, geometry, count_include_pad,
                                    divisor_override)
    return _avg_pool_kernel(input, geometry, count_include_pad, divisor_override, impl)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, impl="auto"):
    """Average pooling, torch semantics.

    Args:
        input: ``[N, C, H, W]``.
        kernel_size: int or ``(h, w)``.
        stride: int, ``(h, w)``, or None / ``()`` (= kernel_size).
        padding: int or ``(h, w)`` zero padding, at most half of kernel_size.
        ceil_mode: round the output size up (see :func:`max_pool2d`).
        count_include_pad: divide by the cells covered inside the padded border (True) or
            inside the input only (False).
        divisor_override: non-zero int replacing the count, or None.
        impl: ``"auto"`` (Pallas kernel on a GPU, XLA elsewhere), ``"native"``, ``"pallas"``.

    Returns:
        ``[N, C, oh, ow]`` in the input's dtype.
    """
    (input,) = common.as_arrays("avg_pool2d", input=input)
    common.check_static("avg_pool2d", kernel_size=kernel_size, stride=stride, padding=padding,
                        ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                        divisor_override=divisor_override, impl=impl)
    common.check_dtypes("avg_pool2d", input=input)
    geometry = avg_pool2d_signature(input.shape, kernel_size, stride, padding, ceil_mode,
                                    count_include_pad, divisor_override)
    impl = common.resolve_impl("avg_pool2d", impl, "pool")
    result, compute = common.result_and_compute_dtypes(input.dtype)
    divisor_override = None if divisor_override is None else int(divisor_override)
    out = _avg_pool(*common.cast(compute, input), geometry, bool(count_include_pad),
                    divisor_override, impl)
    return out.astype(result)

