"""conv2d through Torch7's nn.SpatialConvolutionMM, run by lupa.

::

    out[n, o, y, x] = bias[o] + sum_{c, i, j} w[o, c, i, j] * xpad[n, c, y*sh + i, x*sw + j]

SpatialConvolutionMM holds the weight as ``[O, C*kh*kw]`` (column ``(c*kh + i)*kw + j``),
the same numbers as the contract's ``[O, C, kh, kw]``. It has no dilation, no groups and
pads both sides alike: ``dilation`` and ``groups`` must be 1, and ``padding`` an int, a
pair, ``"valid"`` or ``"same"`` with odd kernel sizes.
"""

from __future__ import annotations

from . import _ops


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, runtime=None):
    """2-D cross-correlation with torch semantics (docs/conv2d.md), by nn.SpatialConvolutionMM.

    Args:
        input: ``[N, C, H, W]`` float32 or float64.
        weight: ``[O, C, kh, kw]``, the input's dtype.
        bias: ``[O]`` or None.
        stride: int or ``(h, w)``.
        padding: int, ``(h, w)``, ``"valid"``, or ``"same"`` (odd kernel sizes only).
        dilation, groups: must be 1.
        runtime: ``"luajit"`` (default), ``"5.4"`` or None.

    Returns:
        ``[N, O, oh, ow]`` in the input's dtype.
    """
    call = _ops.check_call("conv2d", input, weight, bias, stride, padding, dilation, groups, runtime=runtime)
    return _ops.forward(call, runtime)


def conv2d_vjp(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
               runtime=None):
    """Gradients of :func:`conv2d` by the module's ``backward``: ``{"input", "weight"}`` plus
    ``"bias"`` when given, each in the input's dtype. ``grad_output``: ``[N, O, oh, ow]``."""
    call = _ops.check_call("conv2d", input, weight, bias, stride, padding, dilation, groups, runtime=runtime,
                           backward=True)
    return _ops.vjp(call, grad_output, runtime)
