"""``conv2_5d`` (2.5D convolution, Xing et al., ICIP 2019) as an ONNX graph.

Each output position splits its window's taps into ``B = weight.shape[0]`` depth bins
around the depth at the window centre ``d_c``: ``s = d_c * pixel_size / focal``, edges
``e_k = d_c + (k - B/2) * s``, tap in bin l iff ``e_l <= depth[tap] < e_{l+1}``, and bin l
has its own kernel ``weight[l]``.

The graph is composite, tap by tap. The bin masks come from the padded depth in
float64 whatever the data's dtype (a float32 edge would put taps that lie exactly on an
edge into the other bin: a different result, not a rounding error), computed in exactly
the reference's order of operations, so every tap lands in the reference's bin. Per
tap one ``MatMul`` contracts the tap's strided slice ``[N, C, oh*ow]`` with all B kernels
at once (``[B*O, C]``), the bin masks select per position and a ``ReduceSum`` over the
bins adds to the running total: the largest tensor is ``B`` outputs, never the
``kh*kw``-times unfolded input. A closed bin contributes ``0 * (its sum)``, so an infinite
input there gives NaN, as the reference's ``x * m`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from reference.common import Geometry, shape_of
from reference.conv2_5d import conv2_5d_signature

from . import graph as G
from .runtime import Spec, arrays, batched, run


@dataclass(frozen=True)
class Conv2_5dSpec(Spec):
    input: tuple
    weight: tuple
    bias: bool
    geometry: Geometry
    focal: float
    pixel_size: float

    op = "conv2_5d"

    def arguments(self):
        depth = (None, 1, *self.input[2:])
        return [("input", self.input), ("depth", depth), ("weight", self.weight)] + (
            [("bias", (self.weight[1],))] if self.bias else [])

    def results(self):
        return [("output", (None, self.weight[1], *self.geometry.out_size), self.dtype)]

    def build(self, g, input, depth, weight, bias=None):
        return (conv2_5d_graph(g, input, depth, weight, bias, self.geometry, self.weight,
                               self.focal, self.pixel_size),)


def conv2_5d_graph(g, input, depth, weight, bias, geometry: Geometry, weight_shape, focal,
                   pixel_size):
    """Bin masks in float64 and one B-kernel MatMul per tap, in the batch-last layout
    (:func:`graph.batch_last`)."""
    bins, out_channels, channels, kh, kw = weight_shape
    (oh, ow), positions = geometry.out_size, geometry.out_size[0] * geometry.out_size[1]
    batch = G.batch_size(g, input)
    xpad = G.batch_last(g, G.pad_spatial(g, input, geometry.pad_before, geometry.pad_after))
    if np.dtype(g.dtype) != np.float64:
        depth = g.op("Cast", depth, to=TensorProto.DOUBLE)
    dpad = G.batch_last(g, G.pad_spatial(g, depth, geometry.pad_before, geometry.pad_after,
                                         0.0, np.float64))  # [1, N, Hp, Wp]
    f64 = lambda v: g.const(v, np.float64)  # noqa: E731
    centre = G.tap(g, dpad, geometry, kh // 2, kw // 2)  # [1, N, oh, ow]
    s = g.op("Div", g.op("Mul", centre, f64(pixel_size)), f64(focal))
    steps = f64((np.arange(bins + 1) - bins / 2).reshape(bins + 1, 1, 1, 1))
    edges = g.op("Add", centre, g.op("Mul", steps, s))  # [B+1, N, oh, ow]
    lower = g.op("Slice", edges, G.ints(g, [0]), G.ints(g, [bins]), G.ints(g, [0]))
    upper = g.op("Slice", edges, G.ints(g, [1]), G.ints(g, [bins + 1]), G.ints(g, [0]))
    sums_shape = g.op("Concat", G.ints(g, [bins, out_channels]), batch, G.ints(g, [oh, ow]),
                      axis=0)
    total = None
    for i, j in geometry.taps():
        tap_depth = G.tap(g, dpad, geometry, i, j)
        inside = g.op("And", g.op("LessOrEqual", lower, tap_depth), g.op("Less", tap_depth, upper))
        masks = g.op("Unsqueeze", g.op("Cast", inside, to=G.element_type(g.dtype)),
                     G.ints(g, [1]))  # [B, 1, N, oh, ow]
        cols = G.merge_batch(g, G.tap(g, xpad, geometry, i, j), [channels], batch, positions)
        w = g.op("Slice", weight, G.ints(g, [i, j]), G.ints(g, [i + 1, j + 1]), G.ints(g, [3, 4]))
        w = G.reshape(g, w, [bins * out_channels, channels])
        sums = G.reshape_to(g, g.op("MatMul", w, cols), sums_shape)  # [B, O, N, oh, ow]
        term = g.op("ReduceSum", g.op("Mul", sums, masks), G.ints(g, [0]), keepdims=0)
        total = G.accumulate(g, total, term)  # [O, N, oh, ow]
    return G.add_bias(g, g.op("Transpose", total, perm=[1, 0, 2, 3]), bias)


def conv2_5d_plan(input, depth, weight, bias=None, stride=1, padding=0, dilation=1, focal=1.0,
                  pixel_size=1.0):
    tensors, dtype = arrays("conv2_5d", input=input, depth=depth, weight=weight, bias=bias)
    x, z, w, b = tensors.values()
    sig = conv2_5d_signature(x.shape, z.shape, w.shape, shape_of(b), stride, padding, dilation,
                             focal, pixel_size)
    spec = Conv2_5dSpec(dtype, batched(x.shape), w.shape, b is not None, sig.geometry,
                        sig.focal, sig.pixel_size)
    return spec, tensors


def conv2_5d(input, depth, weight, bias=None, stride=1, padding=0, dilation=1, focal=1.0,
             pixel_size=1.0, *, runtime="onnxruntime"):
    """2.5D convolution as an ONNX graph.

    Args:
        input: ``[N, C, H, W]`` float32 or float64 array.
        depth: ``[N, 1, H, W]``, same dtype.
        weight: ``[B, O, C, kh, kw]``: one kernel per depth bin, kh and kw odd.
        bias: ``[O]`` or None.
        stride, padding, dilation: int or a sequence of one or two ints.
        focal: focal length in pixels (> 0).
        pixel_size: feature stride x dilation (> 0).
        runtime: ``"onnxruntime"`` or ``"reference"``.

    Returns:
        ``[N, O, oh, ow]`` in the input dtype.
    """
    plan = conv2_5d_plan(input, depth, weight, bias, stride, padding, dilation, focal, pixel_size)
    return run(*plan, runtime)
