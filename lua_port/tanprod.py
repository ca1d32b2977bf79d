"""tanprod_conv2d through Torch7's nn.CustomConv ('tanprod' kernel), run by lupa.

::

    out[n, o, y, x] = bias[o] + prod_{c, i, j} tan(xpad[n, c, y*sh + i, x*sw + j] + w[o, c, i, j])

The Lua module computes in doubles; the result has the input's dtype. Torch7's module has
no dilation: ``dilation`` must be 1.
"""

from __future__ import annotations

from . import _ops


def tanprod_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, *, runtime=None):
    """Product of ``tan(input + weight)`` over each window (docs/tanprod.md), by nn.CustomConv.

    Args:
        input: ``[N, C, H, W]`` float32 or float64.
        weight: ``[O, C, kh, kw]``, the input's dtype.
        bias: ``[O]`` or None, added after the product.
        stride, padding: int or ``(h, w)``; zero padding (a padded tap gives ``tan(w)``).
        dilation: must be 1 (Torch7's module has none).
        runtime: ``"luajit"`` (default), ``"5.4"`` or None.

    Returns:
        ``[N, O, oh, ow]`` in the input's dtype.
    """
    call = _ops.check_call("tanprod_conv2d", input, weight, bias, stride, padding, dilation, runtime=runtime)
    return _ops.forward(call, runtime)


def tanprod_conv2d_vjp(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, *,
                       runtime=None):
    """Gradients of :func:`tanprod_conv2d` by the module's ``backward`` (leave-one-out
    products, exact where a factor is 0): ``{"input", "weight"}`` plus ``"bias"`` when given,
    each in the input's dtype. ``grad_output``: ``[N, O, oh, ow]``."""
    call = _ops.check_call("tanprod_conv2d", input, weight, bias, stride, padding, dilation, runtime=runtime,
                           backward=True)
    return _ops.vjp(call, grad_output, runtime)
