"""Standard 2-D convolution (torch semantics) and per-sample correlation (SiamFC,
SiamRPN++), through XLA's convolution ``lax.conv_general_dilated``.

conv2d maps onto it directly (``feature_group_count`` = groups, explicit padding pairs
from the shared geometry, so ``"same"`` puts the odd extra row/column bottom/right as
torch does). The correlations use the per-sample trick: the batch is folded into the
channels of a single image and every sample's template becomes its own group, so one
convolution correlates each sample with its own template::

    xcorr2d:           search [1, N*C, H, W]  *  template [N, C, h, w],      groups N
    xcorr2d_depthwise: search [1, N*C, H, W]  *  template [N*C, 1, h, w],    groups N*C

Gradients are JAX's own (the convolution's transposes), forward and reverse mode.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from reference.common import conv2d_signature, shape_of, xcorr_signature

from . import common

_NCHW = ("NCHW", "OIHW", "NCHW")


def _convolve(x, w, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    return lax.conv_general_dilated(x, w, stride, padding, rhs_dilation=dilation,
                                    dimension_numbers=_NCHW, feature_group_count=groups,
                                    precision=common.PRECISION)


@functools.partial(jax.jit, static_argnames=("geometry", "groups"))
def _conv2d(input, weight, bias, geometry, groups):
    dtype = common.compute_dtype(input.dtype)
    padding = tuple(zip(geometry.pad_before, geometry.pad_after))
    out = _convolve(input.astype(dtype), weight.astype(dtype), geometry.stride, padding,
                    geometry.dilation, groups)
    return common.add_bias(out, bias).astype(input.dtype)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, impl="auto"):
    """2-D cross-correlation, ``torch.nn.functional.conv2d`` semantics.

    Args:
        input: ``[N, C, H, W]``.
        weight: ``[O, C/groups, kh, kw]``.
        bias: ``[O]`` or None.
        stride, dilation: int or ``(h, w)``, positive (static).
        padding: int or ``(h, w)``, or ``"valid"`` / ``"same"`` (stride 1 only).
        groups: int (static).
        impl: ``"auto"`` or ``"native"`` (XLA's convolution on every device; there is no
            Pallas kernel for it).

    Returns:
        ``[N, O, oh, ow]`` in the input's dtype.
    """
    input, weight, bias = common.as_arrays(input, weight, bias)
    common.check_dtypes("conv2d", input=input, weight=weight, bias=bias)
    sig = conv2d_signature(input.shape, weight.shape, shape_of(bias), stride, padding, dilation,
                           groups)
    common.resolve_impl("conv2d", impl, None)
    return _conv2d(input, weight, bias, sig.geometry, sig.groups)


@functools.partial(jax.jit, static_argnames=("depthwise",))
def _xcorr(search, template, depthwise):
    n, c, h, w = search.shape
    th, tw = template.shape[2:]
    oh, ow = h - th + 1, w - tw + 1
    if n == 0:  # no groups to fold into: nothing to correlate
        return jnp.zeros((0, c if depthwise else 1, oh, ow), search.dtype)
    dtype = common.compute_dtype(search.dtype)
    folded = search.astype(dtype).reshape(1, n * c, h, w)
    if depthwise:
        out = _convolve(folded, template.astype(dtype).reshape(n * c, 1, th, tw), groups=n * c)
    else:
        out = _convolve(folded, template.astype(dtype), groups=n)
    return out.reshape(n, c if depthwise else 1, oh, ow).astype(search.dtype)


def xcorr2d(search, template, *, impl="auto"):
    """Per-sample cross-correlation summed over channels (SiamFC).

    Args:
        search: ``[N, C, H, W]``.
        template: ``[N, C, h, w]``, correlated with its own sample of ``search``.
        impl: ``"auto"`` or ``"native"``.

    Returns:
        ``[N, 1, H-h+1, W-w+1]`` in the input's dtype.
    """
    return _xcorr_op("xcorr2d", search, template, impl)


def xcorr2d_depthwise(search, template, *, impl="auto"):
    """Per-sample, per-channel cross-correlation (SiamRPN++ depth-wise xcorr).

    Args:
        search: ``[N, C, H, W]``.
        template: ``[N, C, h, w]``.
        impl: ``"auto"`` or ``"native"``.

    Returns:
        ``[N, C, H-h+1, W-w+1]`` in the input's dtype: channel c of sample n correlated
        with its own template channel.
    """
    return _xcorr_op("xcorr2d_depthwise", search, template, impl)


def _xcorr_op(op, search, template, impl):
    search, template = common.as_arrays(search, template)
    common.check_dtypes(op, search=search, template=template)
    xcorr_signature(search.shape, template.shape, op)
    common.resolve_impl(op, impl, None)
    return _xcorr(search, template, depthwise=op == "xcorr2d_depthwise")
