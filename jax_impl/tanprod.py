"""Tan-product convolution (Torch7 ``nn.CustomConv``, for channels and batches), in XLA (docs/tanprod.md)::

    out[n, o, y, x] = bias[o] + prod_{c, i, j} tan(xpad[n, c, y*sh + i*dh, x*sw + j*dw] + w[o, c, i, j])

Zero padding: a padded tap contributes ``tan(w)``.

How it runs: a ``lax.scan`` over the ``kh*kw`` taps multiplies each tap's product over
channels into the output. The gradient is a ``jax.custom_vjp`` with the leave-one-out
product formed without division (never ``out / tan(u)``, which is 0/0 exactly where a
factor vanishes), in two levels as the reference does: the other taps' products (prefix
products carried through a second scan, suffix products from a first one) times the
other channels of this tap (exclusive cumulative products along the channel axis).
Autodiff of the forward would be exact as well, but it would keep every tap's
``[N, O, C, oh, ow]`` factors for the backward, ``kh*kw*C`` times the output; this
backward holds ``kh*kw`` output-sized suffix products and one tap's factors at a time.

``forward`` / ``backward`` are the native implementations of the kernel contract (the
Pallas kernels in ``jax_impl.kernels.tanprod`` expose the same functions).
"""

from __future__ import annotations

import functools
import sys

import jax
import jax.numpy as jnp
from jax import lax

from reference.common import shape_of
from reference.tanprod import tanprod_conv2d_signature

from . import common
from . import geometry as geo

OP = "tanprod_conv2d"


def _tap_factors(xpad, w_tap, geometry, t):
    """``tan(x + w)`` of tap ``t``: ``[N, O, C, oh, ow]`` from ``xpad [N, Hp, Wp, C]`` and
    the tap's weight ``[O, C]``."""
    cols = common.to_channels_first(geo.tap(xpad, geometry, t))  # [N, C, oh, ow]
    return jnp.tan(cols[:, None] + w_tap[None, :, :, None, None])


def _exclusive_products(factors, axis):
    """``out[k] = prod_{m != k} factors[m]`` along ``axis``, without division."""
    ones = jnp.ones_like(lax.slice_in_dim(factors, 0, 1, axis=axis))
    n = factors.shape[axis]
    before = jnp.concatenate([ones, lax.slice_in_dim(factors, 0, n - 1, axis=axis)], axis=axis)
    after = jnp.concatenate([lax.slice_in_dim(factors, 1, n, axis=axis), ones], axis=axis)
    return lax.cumprod(before, axis=axis) * lax.cumprod(after, axis=axis, reverse=True)


def _scan_inputs(input, weight, geometry):
    xpad = geo.pad_hw(common.to_channels_last(input), geometry)
    return xpad, (geo.tap_indices(geometry), common.kernel_taps(weight))


def forward(input, weight, geometry):
    """Product of ``tan(input + weight)`` over each window, without bias: ``[N, O, oh, ow]``.

    input ``[N, C, H, W]``, weight ``[O, C, kh, kw]``, one dtype.
    """
    xpad, taps = _scan_inputs(input, weight, geometry)

    def step(out, tap):
        t, w_tap = tap
        return out * jnp.prod(_tap_factors(xpad, w_tap, geometry, t), axis=2), None

    out = jnp.ones((input.shape[0], weight.shape[0], *geometry.out_size), input.dtype)
    return lax.scan(step, out, taps)[0]


def backward(grad_out, input, weight, geometry):
    """Gradients of :func:`forward`: ``(grad_input, grad_weight)``, exact where a factor is
    zero: ``d out / d u = prod_{other factors} * sec^2(u)`` at ``u = x + w``."""
    xpad, taps = _scan_inputs(input, weight, geometry)

    def tap_product(_, tap):
        t, w_tap = tap
        return None, jnp.prod(_tap_factors(xpad, w_tap, geometry, t), axis=2)

    # suffix[t] = product of the taps after t.
    _, products = lax.scan(tap_product, None, taps)
    suffix = _exclusive_suffix(products)

    def step(carry, tap):
        prefix, grad_xpad = carry
        t, w_tap, after = tap
        factors = _tap_factors(xpad, w_tap, geometry, t)
        others = (prefix * after)[:, :, None] * _exclusive_products(factors, axis=2)
        grad_u = grad_out[:, :, None] * others * (1 + factors * factors)  # sec^2 = 1 + tan^2
        grad_cols = common.to_channels_last(jnp.sum(grad_u, axis=1))
        grad_xpad = geo.add_tap(grad_xpad, geometry, t, grad_cols)
        prefix = prefix * jnp.prod(factors, axis=2)
        return (prefix, grad_xpad), jnp.sum(grad_u, axis=(0, 3, 4))

    start = (jnp.ones_like(grad_out), jnp.zeros_like(xpad))
    (_, grad_xpad), grad_w = lax.scan(step, start, (*taps, suffix))
    grad_input = common.to_channels_first(geo.unpad_hw(grad_xpad, geometry))
    return grad_input, common.from_kernel_taps(grad_w, geometry.kernel)


def _exclusive_suffix(products):
    """``out[t] = prod_{m > t} products[m]`` along axis 0."""
    ones = jnp.ones_like(products[:1])
    return lax.cumprod(jnp.concatenate([products[1:], ones]), axis=0, reverse=True)


# ----------------------------------------------------------------------------- the op


def _functions(impl):
    """The contract functions for a resolved ``impl``: this module or the Pallas kernels."""
    return sys.modules[__name__] if impl == "native" else common.kernel_module(OP, "tanprod")


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _tanprod(input, weight, geometry, impl):
    return common.call_compiled(_functions(impl).forward, input, weight, geometry)


def _tanprod_fwd(input, weight, geometry, impl):
    return _tanprod(input, weight, geometry, impl), (input, weight)


def _tanprod_bwd(geometry, impl, residuals, grad_out):
    return tuple(common.call_compiled(_functions(impl).backward, grad_out, *residuals, geometry))


_tanprod.defvjp(_tanprod_fwd, _tanprod_bwd)


def tanprod_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, *, impl="auto"):
    """Product of ``tan(input + weight)`` over each window, plus bias.

    Args:
        input: ``[N, C, H, W]``.
        weight: ``[O, C, kh, kw]``.
        bias: ``[O]`` or None, added after the product.
        stride, padding, dilation: int or ``(h, w)`` (static); padding is zero padding.
        impl: ``"auto"`` (Pallas kernel on a GPU, XLA elsewhere), ``"native"``, ``"pallas"``.

    Returns:
        ``[N, O, oh, ow]`` in the input's dtype. Differentiable in input, weight and bias
        (a ``jax.custom_vjp``: reverse mode only), exactly where a factor is zero.
    """
    input, weight, bias = common.as_arrays(OP, input=input, weight=weight, bias=bias)
    common.check_static(OP, stride=stride, padding=padding, dilation=dilation, impl=impl)
    common.check_dtypes(OP, input=input, weight=weight, bias=bias)
    sig = tanprod_conv2d_signature(input.shape, weight.shape, shape_of(bias), stride, padding, dilation)
    impl = common.resolve_impl(OP, impl, "tanprod")
    result, compute = common.result_and_compute_dtypes(input.dtype)
    input, weight, bias = common.cast(compute, input, weight, bias)
    out = _tanprod(input, weight, sig.geometry, impl)
    return common.add_bias(out, bias).astype(result)
