"""``deform_conv2d`` (deformable convolution v1/v2, torchvision semantics) as an ONNX graph.

The work is one ``DeformConv`` node (ai.onnx, opset 19+, float and double), which follows
the definition except in two places; the graph puts a few cheap nodes around it, on the
offsets (``2*Go*kh*kw`` values per output position, never per channel), so that it
follows the definition everywhere:

- **Off-image corners.** onnxruntime's kernel reads element ``(0, 0)`` of the image
  plane, with bilinear weight 0, for every corner off the image (and for every corner
  of a sample that lies wholly outside), so a NaN or an infinity at ``input[n, c, 0, 0]``
  makes unrelated outputs NaN. The graph pads the input with a zero row at the top and a
  zero column at the left, so element ``(0, 0)`` is a zero, and adds 1 to every offset
  to keep the sample points on the same pixels. The begin pads stay as given; the end
  pads shrink by one where they can, and where they cannot (padding 0) the output grows
  by a row or column, for which the offsets get an extra row or column that the graph
  crops away.
- **Samples wholly outside** (``y <= -1 or y >= H or x <= -1 or x >= W``, decided in
  float64 from the given offsets) are moved far off the padded image: after the shift
  the point ``y = -1`` would land on the new zero row and read image row 0 with weight 0
  (``0 * inf`` is NaN) where the definition gives 0. Moving them also keeps huge or
  infinite offsets out of the kernel's float-to-int conversion.
- **NaN offsets.** onnxruntime gives a finite output for a sample point with a NaN
  coordinate, where the definition (``w * mask * NaN``) gives NaN for every output
  channel whose weight group reads an input channel of that offset group. The graph
  marks those points (``IsNaN``), moves them off the image like the points outside,
  and sets the affected outputs to NaN with a ``Where``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from reference.common import Geometry, output_length, shape_of, tap_extent
from reference.deform import deform_conv2d_signature

from . import graph as G
from .runtime import Spec, arrays, batched, run


@dataclass(frozen=True)
class DeformSpec(Spec):
    input: tuple
    weight: tuple
    bias: bool
    mask: bool
    geometry: Geometry
    groups: int
    offset_groups: int

    op = "deform_conv2d"

    def arguments(self):
        taps = self.geometry.kernel[0] * self.geometry.kernel[1]
        out = self.geometry.out_size
        args = [("input", self.input),
                ("offset", (None, 2 * self.offset_groups * taps, *out)),
                ("weight", self.weight)]
        if self.bias:
            args.append(("bias", (self.weight[0],)))
        if self.mask:
            args.append(("mask", (None, self.offset_groups * taps, *out)))
        return args

    def results(self):
        return [("output", (None, self.weight[0], *self.geometry.out_size), self.dtype)]

    def build(self, g, input, offset, weight, bias=None, mask=None):
        return (deform_graph(g, input, offset, weight, bias, mask, self.geometry, self.groups,
                             self.offset_groups, self.input[1:], self.weight[0]),)


def _outputs_per_offset_group(channels, out_channels, groups, offset_groups) -> np.ndarray:
    """``[Go, O]``: 1 where output channel o's weight group reads a channel of offset
    group g."""
    reads = np.zeros((offset_groups, out_channels))
    per_group, per_offset_group = channels // groups, channels // offset_groups
    for o in range(out_channels):
        first = (o // (out_channels // groups)) * per_group
        for c in range(first, first + per_group):
            reads[c // per_offset_group, o] = 1.0
    return reads


def deform_graph(g, input, offset, weight, bias, mask, geometry: Geometry, groups: int,
                 offset_groups: int, input_size, out_channels: int):
    """DeformConv on the shifted image with the offsets fixed up (see the module docstring)."""
    channels, height, width = input_size
    (kh, kw), (oh, ow) = geometry.kernel, geometry.out_size
    taps, go = kh * kw, offset_groups
    # The pads DeformConv gets on the padded image and the output size they give.
    begin = geometry.pad_before
    end = tuple(max(p - 1, 0) for p in geometry.pad_before)
    grown = tuple(output_length(n + 1, k, s, b + e, d) for n, k, s, b, e, d in zip(
        (height, width), geometry.kernel, geometry.stride, begin, end, geometry.dilation))
    extra = (grown[0] - oh, grown[1] - ow)

    # Sample coordinates in float64: which points are outside, which are NaN.
    offsets = G.reshape(g, offset, [0, go, taps, 2, oh, ow])
    offsets64 = offsets if np.dtype(g.dtype) == np.float64 else g.op(
        "Cast", offsets, to=TensorProto.DOUBLE)
    base = np.zeros((1, 1, taps, 2, oh, ow))
    for i, j in geometry.taps():
        base[0, 0, i * kw + j, 0] = geometry.positions(0, i)[:, None]
        base[0, 0, i * kw + j, 1] = geometry.positions(1, j)[None, :]
    coords = g.op("Add", offsets64, g.const(base, np.float64))
    limits = g.const(np.array([height, width], np.float64).reshape(1, 1, 1, 2, 1, 1), np.float64)
    nan = g.op("IsNaN", coords)
    outside = g.op("Or", g.op("LessOrEqual", coords, g.const(-1.0, np.float64)),
                   g.op("GreaterOrEqual", coords, limits))

    def either(flags):  # [N, Go, K, 2, oh, ow] -> [N, Go, K, 1, oh, ow]
        first, second = (g.op("Slice", flags, G.ints(g, [a]), G.ints(g, [a + 1]), G.ints(g, [3]))
                         for a in (0, 1))
        return g.op("Or", first, second)

    nan_point = either(nan)
    far_point = g.op("Or", either(outside), nan_point)
    reach = max((o - 1) * s - b + tap_extent(k, d) - 1 for o, s, b, k, d in
                zip(grown, geometry.stride, begin, (kh, kw), geometry.dilation))
    far = g.const(-(reach + 3.0))  # lands every point at y, x <= -3 of the padded image
    moved = g.op("Where", far_point, far, g.op("Add", offsets, g.const(1.0)))
    if any(extra):
        moved = g.op("Pad", moved, G.ints(g, [0] * 10 + list(extra)), far)
        if mask is not None:
            mask = G.pad_spatial(g, mask, (0, 0), extra)
    moved = G.reshape(g, moved, [0, 2 * go * taps, *grown])

    image = G.pad_spatial(g, input, (1, 1), (0, 0))
    out = g.op("DeformConv", image, weight, moved, bias, mask, kernel_shape=[kh, kw],
               strides=list(geometry.stride), dilations=list(geometry.dilation),
               pads=[*begin, *end], group=groups, offset_group=go)
    if any(extra):
        out = G.crop(g, out, oh, ow)

    # NaN where a NaN point is read: any tap, any channel of the output's weight group.
    nan_any = g.op("ReduceMax", g.op("Cast", nan_point, to=G.element_type(g.dtype)),
                   G.ints(g, [2, 3]), keepdims=0)  # [N, Go, oh, ow]
    reads = g.const(_outputs_per_offset_group(channels, out_channels, groups, go))
    hits = g.op("MatMul", g.op("Transpose", nan_any, perm=[0, 2, 3, 1]), reads)  # [N, oh, ow, O]
    hits = g.op("Transpose", hits, perm=[0, 3, 1, 2])
    return g.op("Where", g.op("Greater", hits, g.const(0.0)), g.const(np.nan), out)


def deform_conv2d_plan(input, offset, weight, bias=None, stride=1, padding=0, dilation=1,
                       mask=None):
    tensors, dtype = arrays("deform_conv2d", input=input, offset=offset, weight=weight,
                            bias=bias, mask=mask)
    x, off, w, b, m = tensors.values()
    sig = deform_conv2d_signature(x.shape, off.shape, w.shape, shape_of(b), stride, padding, dilation,
                                  shape_of(m))
    spec = DeformSpec(dtype, batched(x.shape), w.shape, b is not None, m is not None,
                      sig.geometry, sig.groups, sig.offset_groups)
    return spec, tensors


def deform_conv2d(input, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None,
                  *, runtime="onnxruntime"):
    """Deformable convolution v1 (``mask=None``) or v2, torchvision semantics, as an ONNX
    graph around ``DeformConv``.

    Args:
        input: ``[N, C, H, W]`` float32 or float64 array.
        offset: ``[N, 2*Go*kh*kw, oh, ow]``: interleaved ``(dy, dx)`` per tap, Go offset
            groups (input channel c uses group ``c // (C/Go)``).
        weight: ``[O, C/G, kh, kw]`` with ``G = C // weight.shape[1]`` weight groups.
        bias: ``[O]`` or None.
        stride, padding, dilation: int or a sequence of one or two ints.
        mask: ``[N, Go*kh*kw, oh, ow]`` modulation, or None.
        runtime: ``"onnxruntime"`` or ``"reference"``.

    Returns:
        ``[N, O, oh, ow]`` in the input dtype; NaN where a sample point has a NaN
        coordinate.
    """
    plan = deform_conv2d_plan(input, offset, weight, bias, stride, padding, dilation, mask)
    return run(*plan, runtime)
