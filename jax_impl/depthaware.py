"""Depth-aware convolution and average pooling (Wang & Neumann, ECCV 2018), in XLA;
``reference/depthaware.py`` and docs/depthaware.md define them. Every tap is weighed by
its depth similarity to the window's centre::

    F[tap] = exp(-alpha * |depth[centre] - depth[tap]|)
    conv:  out[n, o, p] = bias[o] + sum_{c, tap} w[o, c, tap] * xpad[n, c, tap] * F[tap]
    pool:  out[n, c, p] = sum_{taps in the image} F * x[n, c, tap] / divisor

How it runs: channels last, one ``lax.scan`` over the ``kh*kw`` taps, as a convolution
with per-tap weights. Per tap, F ``[N, oh, ow]`` comes from the depth alone (one value
per position, never per channel); the convolution multiplies the tap's columns by F and
feeds them to one matrix product with the tap's ``[C, O]`` weight; pooling adds them up.
Nothing ``kh*kw`` times the input is ever formed. The window centres (the convolution's
``origin + (d*(k-1))//2``, pooling's middle of the clipped window) and which taps lie in
the image are static: they come from the reference's geometry at trace time.

Gradients are ``jax.custom_vjp``: depth is differentiable with ``sign(0) = 0``
(``jax.grad(jnp.abs)(0.0)`` is 1, so autodiff of the forward would pass a gradient
through every tie), and the backward walks the taps again instead of storing them.
Per tap it adds ``g * w * F`` (pooling ``g * F / divisor``) to the input gradient,
forms ``dL/dF`` per position and sends ``dL/dF * alpha * F * sign(centre - tap)`` to the
tap's depth and its negative to the centre's, where F came from depth (tap and centre in
the image, ``alpha > 0``).

``conv_forward`` / ``conv_backward`` / ``pool_forward`` / ``pool_backward`` are the native
implementations of the kernel contract (the Pallas kernels in
``jax_impl.kernels.depthaware`` expose the same functions).
"""

from __future__ import annotations

import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from reference.common import avg_divisor, shape_of
from reference.depthaware import (
    CONV,
    POOL,
    depthaware_avg_pool2d_signature,
    depthaware_conv2d_signature,
    window_centres,
)

from . import common
from . import geometry as geo

# ----------------------------------------------------------------------------- windows


def similarity(centre, tap_depth, alpha: float):
    """``(F, dF/d depth[tap])`` for a Python float ``alpha``: ``exp(-alpha * |d|)`` and
    ``alpha * F * sign(d)`` with ``d = centre - tap_depth`` and ``sign(0) = 0``;
    ``alpha = 0`` gives exactly 1 and 0 whatever the depth (NaN and inf included)."""
    if alpha == 0:
        return jnp.ones_like(centre), jnp.zeros_like(centre)
    diff = centre - tap_depth
    f = jnp.exp(-alpha * jnp.abs(diff))
    return f, alpha * f * jnp.sign(diff)


class _Depth:
    """The depth side of one call: centre depths ``[N, oh, ow]`` and, per tap, F, its
    depth slope and the mask of windows where F comes from depth."""

    def __init__(self, depth, geometry, alpha, pooling):
        self.geometry, self.alpha = geometry, alpha
        self.rows, self.cols, self.centre_inside = window_centres(geometry, pooling)
        self.depth_pad = geo.pad_hw(common.to_channels_last(depth), geometry)  # [N, Hp, Wp, 1]
        self.centre = depth[:, 0][:, self.rows][:, :, self.cols]  # [N, oh, ow]
        self.shape = self.centre.shape

    def formed(self, taps=None):
        """``[K, oh, ow]`` static: tap in the image and centre in the image, for ``taps``
        (default: every tap of the window)."""
        return np.stack([self.geometry.in_input(i, j) & self.centre_inside
                         for i, j in (self.geometry.taps() if taps is None else taps)])

    def pool_taps(self):
        """Pooling's scan over taps: ``(t [K'], formed [K', oh, ow])`` for the taps that
        read the image in some window (the others add nothing), so a window far larger
        than the image costs what the image allows."""
        taps = list(self.geometry.input_taps())
        kw = self.geometry.kernel[1]
        return jnp.asarray([i * kw + j for i, j in taps], jnp.int32), self.formed(taps)

    def tap(self, t, formed):
        """``(F, slope)`` of tap ``t`` ``[N, oh, ow]``: 1 and 0 where not ``formed``."""
        f, slope = similarity(self.centre, geo.tap(self.depth_pad, self.geometry, t)[..., 0],
                              self.alpha)
        return jnp.where(formed, f, 1), jnp.where(formed, slope, 0)

    def push(self, grad_depth_pad, grad_centre, t, push):
        """Send ``push = dL/dF * dF/d depth[tap]`` (zero where F is not formed) to the tap's
        depth and its negative to the centre's."""
        grad_depth_pad = geo.add_tap(grad_depth_pad, self.geometry, t, push[..., None])
        return grad_depth_pad, grad_centre - push

    def gradient(self, grad_depth_pad, grad_centre):
        """``[N, 1, H, W]``: the taps' shares plus every window's centre share (windows may
        share a centre: added, never assigned)."""
        grad = geo.unpad_hw(grad_depth_pad, self.geometry)[..., 0]
        share = jnp.where(self.centre_inside, grad_centre, 0)
        grad = grad.at[:, self.rows[:, None], self.cols[None, :]].add(share)
        return grad[:, None]


def _dot(a, b, a_axis, b_axis):
    return lax.dot_general(a, b, (((a_axis,), (b_axis,)), ((), ())), precision=common.PRECISION)


# ----------------------------------------------------------------------------- conv contract


def conv_forward(input, depth, weight, geometry, alpha):
    """Depth-aware convolution without bias: ``[N, O, oh, ow]``.

    input ``[N, C, H, W]``, depth ``[N, 1, H, W]``, weight ``[O, C, kh, kw]``, one dtype;
    ``alpha`` a Python float >= 0.
    """
    n, c, o, (oh, ow) = input.shape[0], input.shape[1], weight.shape[0], geometry.out_size
    sim = _Depth(depth, geometry, alpha, pooling=False)
    xpad = geo.pad_hw(common.to_channels_last(input), geometry)

    def step(out, tap):
        t, w_tap, formed = tap
        cols = geo.tap(xpad, geometry, t)
        if alpha:
            cols = cols * sim.tap(t, formed)[0][..., None]
        return out + _dot(cols.reshape(n * oh * ow, c), w_tap, 1, 0), None

    out = jnp.zeros((n * oh * ow, o), input.dtype)
    weights = jnp.transpose(common.kernel_taps(weight), (0, 2, 1))  # [K, C, O]
    taps = (geo.tap_indices(geometry), weights, sim.formed())
    out, _ = lax.scan(step, out, taps)
    return common.to_channels_first(out.reshape(n, oh, ow, o))


def conv_backward(grad_out, input, depth, weight, geometry, alpha):
    """Gradients of :func:`conv_forward`: ``(grad_input, grad_depth, grad_weight)``."""
    n, c, o, (oh, ow) = input.shape[0], input.shape[1], weight.shape[0], geometry.out_size
    sim = _Depth(depth, geometry, alpha, pooling=False)
    xpad = geo.pad_hw(common.to_channels_last(input), geometry)
    gout = common.to_channels_last(grad_out).reshape(n * oh * ow, o)
    # [O, N*oh*ow] for the weight gradient: XLA:CPU contracts a long axis slowly unless
    # it is the left operand's last (measured: ~2x on the benchmark's shapes).
    gout_t = jnp.transpose(grad_out, (1, 0, 2, 3)).reshape(o, n * oh * ow)

    def step(carry, tap):
        grad_xpad, grad_depth_pad, grad_centre = carry
        t, w_tap, formed = tap
        cols = geo.tap(xpad, geometry, t)
        f, slope = sim.tap(t, formed)
        grad_cols = _dot(gout, w_tap, 1, 0).reshape(n, oh, ow, c)
        grad_xpad = geo.add_tap(grad_xpad, geometry, t, grad_cols * f[..., None])
        grad_w = _dot(gout_t, (cols * f[..., None]).reshape(n * oh * ow, c), 1, 0)  # [O, C]
        if alpha:
            grad_f = jnp.sum(grad_cols * cols, axis=-1)
            push = jnp.where(formed, grad_f * slope, 0)
            grad_depth_pad, grad_centre = sim.push(grad_depth_pad, grad_centre, t, push)
        return (grad_xpad, grad_depth_pad, grad_centre), grad_w

    start = (jnp.zeros_like(xpad), jnp.zeros_like(sim.depth_pad), jnp.zeros(sim.shape, input.dtype))
    taps = (geo.tap_indices(geometry), common.kernel_taps(weight), sim.formed())
    (grad_xpad, grad_depth_pad, grad_centre), grad_w = lax.scan(step, start, taps)
    grad_input = common.to_channels_first(geo.unpad_hw(grad_xpad, geometry))
    grad_w = common.from_kernel_taps(grad_w, geometry.kernel)
    return grad_input, sim.gradient(grad_depth_pad, grad_centre), grad_w


# ----------------------------------------------------------------------------- pool contract


def _pool_parts(input, depth, geometry, alpha, count_include_pad):
    """``(out [N, oh, ow, C], divisor [N, oh, ow], xpad, sim)``: the forward's pieces."""
    sim = _Depth(depth, geometry, alpha, pooling=True)
    xpad = geo.pad_hw(common.to_channels_last(input), geometry)
    n, c, (oh, ow) = input.shape[0], input.shape[1], geometry.out_size
    if count_include_pad:  # the padded window's size; image cells count F instead of 1
        divisor = jnp.broadcast_to(jnp.asarray(avg_divisor(geometry, True, None), input.dtype),
                                   sim.shape)
    else:
        divisor = jnp.zeros(sim.shape, input.dtype)

    def step(carry, tap):
        num, divisor = carry
        t, inside = tap  # the centre is always in the image: formed = tap in the image
        f = jnp.where(inside, sim.tap(t, inside)[0], 0)
        num = num + geo.tap(xpad, geometry, t) * f[..., None]
        divisor = divisor - jnp.where(inside, 1 - f, 0) if count_include_pad else divisor + f
        return (num, divisor), None

    start = (jnp.zeros((n, oh, ow, c), input.dtype), divisor)
    (num, divisor), _ = lax.scan(step, start, sim.pool_taps())
    return num / divisor[..., None], divisor, xpad, sim


def pool_forward(input, depth, geometry, alpha, count_include_pad):
    """Depth-aware average pooling: ``[N, C, oh, ow]``.

    input ``[N, C, H, W]``, depth ``[N, 1, H, W]``, one dtype; ``alpha`` a Python float
    >= 0; ``count_include_pad`` a bool.
    """
    return common.to_channels_first(_pool_parts(input, depth, geometry, alpha,
                                                count_include_pad)[0])


def pool_backward(grad_out, input, depth, geometry, alpha, count_include_pad):
    """Gradients of :func:`pool_forward`: ``(grad_input, grad_depth)``."""
    out, divisor, xpad, sim = _pool_parts(input, depth, geometry, alpha, count_include_pad)
    share = common.to_channels_last(grad_out) / divisor[..., None]  # dL/d num

    def step(carry, tap):
        grad_xpad, grad_depth_pad, grad_centre = carry
        t, inside = tap
        f, slope = sim.tap(t, inside)
        grad_xpad = geo.add_tap(grad_xpad, geometry, t, share * jnp.where(inside, f, 0)[..., None])
        if alpha:
            grad_f = jnp.sum(share * (geo.tap(xpad, geometry, t) - out), axis=-1)
            push = jnp.where(inside, grad_f * slope, 0)
            grad_depth_pad, grad_centre = sim.push(grad_depth_pad, grad_centre, t, push)
        return (grad_xpad, grad_depth_pad, grad_centre), None

    start = (jnp.zeros_like(xpad), jnp.zeros_like(sim.depth_pad), jnp.zeros_like(divisor))
    (grad_xpad, grad_depth_pad, grad_centre), _ = lax.scan(step, start, sim.pool_taps())
    grad_input = common.to_channels_first(geo.unpad_hw(grad_xpad, geometry))
    return grad_input, sim.gradient(grad_depth_pad, grad_centre)


# ----------------------------------------------------------------------------- the ops


def _functions(impl, op):
    """The contract functions for a resolved ``impl``: this module or the Pallas kernels."""
    return sys.modules[__name__] if impl == "native" else common.kernel_module(op, "depthaware")


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _conv(input, depth, weight, geometry, alpha, impl):
    return common.call_compiled(_functions(impl, CONV).conv_forward, input, depth, weight,
                                geometry, alpha)


def _conv_fwd(input, depth, weight, geometry, alpha, impl):
    return _conv(input, depth, weight, geometry, alpha, impl), (input, depth, weight)


def _conv_bwd(geometry, alpha, impl, residuals, grad_out):
    return tuple(common.call_compiled(_functions(impl, CONV).conv_backward, grad_out, *residuals,
                                      geometry, alpha))


_conv.defvjp(_conv_fwd, _conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _pool(input, depth, geometry, alpha, count_include_pad, impl):
    return common.call_compiled(_functions(impl, POOL).pool_forward, input, depth, geometry,
                                alpha, count_include_pad)


def _pool_fwd(input, depth, geometry, alpha, count_include_pad, impl):
    return _pool(input, depth, geometry, alpha, count_include_pad, impl), (input, depth)


def _pool_bwd(geometry, alpha, count_include_pad, impl, residuals, grad_out):
    return tuple(common.call_compiled(_functions(impl, POOL).pool_backward, grad_out, *residuals,
                                      geometry, alpha, count_include_pad))


_pool.defvjp(_pool_fwd, _pool_bwd)


def depthaware_conv2d(input, depth, weight, bias=None, stride=1, padding=0, dilation=1,
                      alpha=1.0, *, impl="auto"):
    """Depth-aware convolution: each tap weighed by ``exp(-alpha * |depth[centre] -
    depth[tap]|)``.

    Args:
        input: ``[N, C, H, W]``.
        depth: ``[N, 1, H, W]``, differentiable.
        weight: ``[O, C, kh, kw]`` (no groups; even kernels take the upper-left middle
            pixel as the centre).
        bias: ``[O]`` or None.
        stride, padding, dilation: int or ``(h, w)`` (static).
        alpha: similarity scale, a Python float, finite and >= 0 (static); 0 makes the
            op ``conv2d``.
        impl: ``"auto"`` (Pallas kernel on a GPU, XLA elsewhere), ``"native"``, ``"pallas"``.

    Returns:
        ``[N, O, oh, ow]`` in the input's dtype. Differentiable in input, depth, weight
        and bias (a ``jax.custom_vjp``: reverse mode only; ``sign(0) = 0`` in the depth
        gradient).
    """
    input, depth, weight, bias = common.as_arrays(CONV, input=input, depth=depth, weight=weight,
                                                  bias=bias)
    common.check_static(CONV, stride=stride, padding=padding, dilation=dilation, alpha=alpha,
                        impl=impl)
    common.check_dtypes(CONV, input=input, depth=depth, weight=weight, bias=bias)
    sig = depthaware_conv2d_signature(input.shape, depth.shape, weight.shape, shape_of(bias),
                                      stride, padding, dilation, alpha)
    impl = common.resolve_impl(CONV, impl, "depthaware")
    result, compute = common.result_and_compute_dtypes(input.dtype)
    input, depth, weight, bias = common.cast(compute, input, depth, weight, bias)
    out = _conv(input, depth, weight, sig.geometry, sig.alpha, impl)
    return common.add_bias(out, bias).astype(result)


def depthaware_avg_pool2d(input, depth, kernel_size, stride=None, padding=0, alpha=1.0,
                          count_include_pad=True, *, impl="auto"):
    """Depth-aware average pooling: each in-image cell weighed by its depth similarity
    to the centre of the window clipped to the image.

    Args:
        input: ``[N, C, H, W]``.
        depth: ``[N, 1, H, W]``, differentiable.
        kernel_size: int or ``(h, w)``.
        stride: int, ``(h, w)``, or None / ``()`` (= kernel_size).
        padding: int or ``(h, w)``, at most half of kernel_size.
        alpha: similarity scale, a Python float, finite and >= 0 (static); 0 makes the
            op ``avg_pool2d``.
        count_include_pad: divide by ``pool - sum(1 - F)`` (padded cells count 1) or by
            ``sum F`` (static bool).
        impl: ``"auto"`` (Pallas kernel on a GPU, XLA elsewhere), ``"native"``, ``"pallas"``.

    Returns:
        ``[N, C, oh, ow]`` in the input's dtype. Differentiable in input and depth (a
        ``jax.custom_vjp``: reverse mode only).
    """
    input, depth = common.as_arrays(POOL, input=input, depth=depth)
    common.check_static(POOL, kernel_size=kernel_size, stride=stride, padding=padding,
                        alpha=alpha, count_include_pad=count_include_pad, impl=impl)
    common.check_dtypes(POOL, input=input, depth=depth)
    sig = depthaware_avg_pool2d_signature(input.shape, depth.shape, kernel_size, stride,
                                          padding, alpha, count_include_pad)
    impl = common.resolve_impl(POOL, impl, "depthaware")
    result, compute = common.result_and_compute_dtypes(input.dtype)
    input, depth = common.cast(compute, input, depth)
    out = _pool(input, depth, sig.geometry, sig.alpha, sig.count_include_pad, impl)
    return out.astype(result)
