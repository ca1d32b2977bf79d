"""``tanprod_conv2d`` (Torch7's ``nn.CustomConv``) as an ONNX graph.

::

    out[n, o, y, x] = bias[o] + prod_{c, i, j} tan(xpad[n, c, y*sh + i*dh, x*sw + j*dw] + w[o, c, i, j])

No ONNX op computes a product over a window, so the graph is composite: a running product
over the kernel taps and, within a tap, over chunks of input channels. Per (tap, chunk) a
strided ``Slice`` of the zero-padded input ``[N, c, oh, ow]`` meets the tap's weights
``[O, c]`` in one broadcast ``Add`` (``[N, O, c, oh, ow]``), then ``tan`` and a
``ReduceProd`` over the chunk. The chunk is ``max(1, C // O)`` channels, so no tensor is
larger than one tap's slice or the output: nothing like the ``kh*kw``-times unfolded
input, nor the ``O``-times larger factors of a whole tap, is materialised.

``tan`` is the ``Tan`` op in float32; onnxruntime has no float64 ``Tan``, so float64 uses
``Sin / Cos``. NaN and infinities propagate as the definition says (``tan(inf)`` is NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference.common import Geometry, shape_of
from reference.tanprod import tanprod_conv2d_signature

from . import graph as G
from .runtime import Spec, arrays, batched, run


@dataclass(frozen=True)
class TanprodSpec(Spec):
    input: tuple
    weight: tuple
    bias: bool
    geometry: Geometry

    op = "tanprod_conv2d"

    def arguments(self):
        return [("input", self.input), ("weight", self.weight)] + (
            [("bias", (self.weight[0],))] if self.bias else [])

    def results(self):
        return [("output", (None, self.weight[0], *self.geometry.out_size), self.dtype)]

    def build(self, g, input, weight, bias=None):
        return (tanprod_graph(g, input, weight, bias, self.geometry, self.weight),)


def tan(g, u):
    if np.dtype(g.dtype) == np.float32:
        return g.op("Tan", u)
    return g.op("Div", g.op("Sin", u), g.op("Cos", u))


def tanprod_graph(g, input, weight, bias, geometry: Geometry, weight_shape):
    """The running product over taps and channel chunks (see the module docstring)."""
    out_channels, channels = weight_shape[:2]
    chunk = max(1, channels // out_channels)
    xpad = G.pad_spatial(g, input, geometry.pad_before, geometry.pad_after)
    total = None
    for i, j in geometry.taps():
        cols = G.tap(g, xpad, geometry, i, j)
        for start in range(0, channels, chunk):
            stop = min(start + chunk, channels)
            x = cols if (start, stop) == (0, channels) else g.op(
                "Slice", cols, G.ints(g, [start]), G.ints(g, [stop]), G.ints(g, [1]))
            w = g.op("Slice", weight, G.ints(g, [start, i, j]), G.ints(g, [stop, i + 1, j + 1]),
                     G.ints(g, [1, 2, 3]))  # [O, c, 1, 1]
            u = g.op("Add", g.op("Unsqueeze", x, G.ints(g, [1])),  # [N, 1, c, oh, ow]
                     g.op("Unsqueeze", w, G.ints(g, [0])))  # [1, O, c, 1, 1]
            factor = g.op("ReduceProd", tan(g, u), G.ints(g, [2]), keepdims=0)
            total = G.accumulate(g, total, factor, "Mul")
    return G.add_bias(g, total, bias)


def tanprod_conv2d_plan(input, weight, bias=None, stride=1, padding=0, dilation=1):
    tensors, dtype = arrays("tanprod_conv2d", input=input, weight=weight, bias=bias)
    x, w, b = tensors.values()
    geometry = tanprod_conv2d_signature(x.shape, w.shape, shape_of(b), stride, padding,
                                        dilation).geometry
    return TanprodSpec(dtype, batched(x.shape), w.shape, b is not None, geometry), tensors


def tanprod_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, *,
                   runtime="onnxruntime"):
    """Product of ``tan(input + weight)`` over each window, plus bias, as an ONNX graph.

    Args:
        input: ``[N, C, H, W]`` float32 or float64 array.
        weight: ``[O, C, kh, kw]``; bias ``[O]`` or None, added after the product.
        stride, padding, dilation: int or a sequence of one or two ints; zero padding,
            so a padded tap contributes the factor ``tan(w)``.
        runtime: ``"onnxruntime"`` or ``"reference"``.

    Returns:
        ``[N, O, oh, ow]`` in the input dtype.
    """
    return run(*tanprod_conv2d_plan(input, weight, bias, stride, padding, dilation), runtime)
