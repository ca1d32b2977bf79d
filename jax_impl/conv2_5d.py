"""2.5D depth-aware convolution (Xing et al., ICIP 2019), in XLA; docs/conv2_5d.md and
``reference/conv2_5d.py`` define it::

    s        = d_c * pixel_size / focal                  (d_c: depth at the window centre)
    e_k      = d_c + (k - B/2) * s                       (bin edges, k = 0..B, this exact form)
    m_l[tap] = 1  iff  e_l <= depth_pad[tap] < e_{l+1}
    out[n, o, p] = bias[o] + sum_l sum_{c,i,j} weight[l, o, c, i, j] * xpad[n, c, tap] * m_l[tap]

How it runs: channels last, one ``lax.scan`` over the ``kh*kw`` taps. Per tap, the bin
masks ``[N, oh, ow, B]`` come from the depth alone (one value per position and bin, never
per channel). The forward multiplies the tap's columns by all B kernels at once
(``[C, B*O]``) and sums the results under the masks; the backward masks the output
gradient per bin once (``[N*oh*ow, B*O]``) and both products read it: the input
gradient against the tap's ``[B*O, C]`` kernels, the weight gradient against the
columns. So the bins cost B-wide matrix products, never B copies of the columns. The
gradient is a ``jax.custom_vjp``: depth gets an exact zero (the masks are piecewise
constant), and the backward recomputes each tap's masks instead of storing them.

``forward`` / ``backward`` are the native implementations of the kernel contract (the
Pallas kernels in ``jax_impl.kernels.conv2_5d`` expose the same functions).
"""

from __future__ import annotations

import functools
import sys

import jax
import jax.numpy as jnp
from jax import lax

from reference.common import shape_of
from reference.conv2_5d import conv2_5d_signature

from . import common
from . import geometry as geo

OP = "conv2_5d"


class _Bins:
    """The depth bins of every output position, ``[N, oh, ow, B]`` edges, and per-tap masks."""

    def __init__(self, depth, bins, geometry, focal, pixel_size):
        self.geometry = geometry
        self.depth_pad = geo.pad_hw(common.to_channels_last(depth), geometry)  # [N, Hp, Wp, 1]
        centre = geo.tap(self.depth_pad, geometry, geo.centre_tap(geometry))  # [N, oh, ow, 1]
        # A centre <= 0 or non-finite gives s <= 0 or NaN: every bin is empty.
        edges = geo.bin_edges(centre, geo.bin_steps(bins, depth.dtype), focal, pixel_size)
        self.lower, self.upper = edges[..., :-1], edges[..., 1:]

    def open(self, t):
        """``[N, oh, ow, B]`` booleans: is tap ``t``'s depth in bin l?"""
        tap_depth = geo.tap(self.depth_pad, self.geometry, t)
        return (self.lower <= tap_depth) & (tap_depth < self.upper)


def _dot(a, b, a_axis, b_axis):
    return lax.dot_general(a, b, (((a_axis,), (b_axis,)), ((), ())), precision=common.PRECISION)


def forward(input, depth, weight, geometry, focal, pixel_size):
    """2.5D convolution without bias: ``[N, O, oh, ow]``.

    input ``[N, C, H, W]``, depth ``[N, 1, H, W]``, weight ``[B, O, C, kh, kw]``, one dtype;
    focal and pixel_size are Python floats.
    """
    n, (oh, ow), o = input.shape[0], geometry.out_size, weight.shape[1]
    b, c = weight.shape[0], weight.shape[2]
    bins = _Bins(depth, b, geometry, focal, pixel_size)
    xpad = geo.pad_hw(common.to_channels_last(input), geometry)
    # Each tap's columns times every bin's kernel at once, [C, B*O], then masked per bin
    # and summed: one product B kernels wide, the columns never copied B times.
    weights = jnp.transpose(common.kernel_taps(weight), (0, 3, 1, 2)).reshape(-1, c, b * o)

    def step(out, tap):
        t, w_tap = tap
        cols = geo.tap(xpad, geometry, t).reshape(n * oh * ow, c)
        per_bin = _dot(cols, w_tap, 1, 0).reshape(n, oh, ow, b, o)
        # masks * (x @ W) = (masks * x) @ W, with NaN and Inf * 0 = NaN in a closed bin.
        # Written as a select of x or x * 0: XLA turns a product with a converted 0/1
        # mask into a select that drops the NaN (float64 on the CPU).
        closed = per_bin * 0
        return out + jnp.sum(jnp.where(bins.open(t)[..., None], per_bin, closed), axis=3), None

    out = jnp.zeros((n, oh, ow, o), input.dtype)
    out, _ = lax.scan(step, out, (geo.tap_indices(geometry), weights))
    return common.to_channels_first(out)


def backward(grad_out, input, depth, weight, geometry, focal, pixel_size):
    """Gradients of :func:`forward`: ``(grad_input, grad_weight)``; depth has none."""
    n, (oh, ow) = input.shape[0], geometry.out_size
    b, o, c = weight.shape[:3]
    bins = _Bins(depth, b, geometry, focal, pixel_size)
    xpad = geo.pad_hw(common.to_channels_last(input), geometry)
    gout = common.to_channels_last(grad_out).reshape(n * oh * ow, o)
    weights = common.kernel_taps(weight).reshape(-1, b * o, c)  # [K, B*O, C] per tap

    def step(grad_xpad, tap):
        t, w_tap = tap
        # The output gradient per bin, masked, [N*oh*ow, B*O]: both products read it.
        # (An Inf gradient in a closed bin gives Inf * 0 = NaN, as the reference's sum.)
        g = gout.reshape(n, oh, ow, 1, o)
        masked = jnp.where(bins.open(t)[..., None], g, g * 0).reshape(-1, b * o)
        cols = geo.tap(xpad, geometry, t).reshape(n * oh * ow, c)
        grad_w = _dot(cols, masked, 0, 0)  # [C, B*O]: XLA:CPU is slower at [B*O, C]
        grad_cols = _dot(masked, w_tap, 1, 0).reshape(n, oh, ow, c)
        return geo.add_tap(grad_xpad, geometry, t, grad_cols), grad_w

    grad_xpad, grad_w = lax.scan(step, jnp.zeros_like(xpad), (geo.tap_indices(geometry), weights))
    grad_input = common.to_channels_first(geo.unpad_hw(grad_xpad, geometry))
    grad_w = jnp.transpose(grad_w.reshape(-1, c, b, o), (0, 2, 3, 1))  # [K, B, O, C]
    return grad_input, common.from_kernel_taps(grad_w, weight.shape[3:])


# ----------------------------------------------------------------------------- the op


def _functions(impl):
    """The contract functions for a resolved ``impl``: this module or the Pallas kernels."""
    return sys.modules[__name__] if impl == "native" else common.kernel_module(OP, "conv2_5d")


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _conv2_5d(input, depth, weight, geometry, focal, pixel_size, impl):
    return common.call_compiled(_functions(impl).forward, input, depth, weight, geometry, focal,
                                pixel_size)


def _conv2_5d_fwd(input, depth, weight, geometry, focal, pixel_size, impl):
    out = _conv2_5d(input, depth, weight, geometry, focal, pixel_size, impl)
    return out, (input, depth, weight)


def _conv2_5d_bwd(geometry, focal, pixel_size, impl, residuals, grad_out):
    input, depth, weight = residuals
    grad_input, grad_weight = common.call_compiled(_functions(impl).backward, grad_out, input,
                                                   depth, weight, geometry, focal, pixel_size)
    return grad_input, jnp.zeros_like(depth), grad_weight


_conv2_5d.defvjp(_conv2_5d_fwd, _conv2_5d_bwd)


def conv2_5d(input, depth, weight, bias=None, stride=1, padding=0, dilation=1, focal=1.0,
             pixel_size=1.0, *, impl="auto"):
    """2.5D convolution: one kernel per depth bin around each window's centre depth.

    Args:
        input: ``[N, C, H, W]``.
        depth: ``[N, 1, H, W]``; its gradient is zero.
        weight: ``[B, O, C, kh, kw]``, B depth bins, kh and kw odd.
        bias: ``[O]`` or None.
        stride, padding, dilation: int or ``(h, w)`` (static).
        focal: focal length in pixels, a Python float > 0 (static).
        pixel_size: feature stride x dilation, a Python float > 0 (static).
        impl: ``"auto"`` (Pallas kernel on a GPU, XLA elsewhere), ``"native"``, ``"pallas"``.

    Returns:
        ``[N, O, oh, ow]`` in the input's dtype. Differentiable in input, weight and bias
        (a ``jax.custom_vjp``: reverse mode only); depth gets zeros.
    """
    input, depth, weight, bias = common.as_arrays(OP, input=input, depth=depth, weight=weight,
                                                  bias=bias)
    common.check_static(OP, stride=stride, padding=padding, dilation=dilation, focal=focal,
                        pixel_size=pixel_size, impl=impl)
    common.check_dtypes(OP, input=input, depth=depth, weight=weight, bias=bias)
    sig = conv2_5d_signature(input.shape, depth.shape, weight.shape, shape_of(bias), stride,
                             padding, dilation, focal, pixel_size)
    impl = common.resolve_impl(OP, impl, "conv2_5d")
    result, compute = common.result_and_compute_dtypes(input.dtype)
    input, depth, weight, bias = common.cast(compute, input, depth, weight, bias)
    out = _conv2_5d(input, depth, weight, sig.geometry, sig.focal, sig.pixel_size, impl)
    return common.add_bias(out, bias).astype(result)
