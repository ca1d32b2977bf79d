"""``max_pool2d`` and ``avg_pool2d`` (torch semantics exactly) as ONNX graphs.

Both are composite, tap by tap over the window (a strided ``Slice`` of the padded input
per tap, held one at a time; only the taps that read the input in some window, so a
window far larger than the input costs what the input allows), because ONNX's pooling
ops differ from the definition:

- ``MaxPool``: in onnxruntime a NaN never wins (in torch it does), its ``Indices`` are
  flat over the whole ``N*C*H*W`` tensor (torch's are per plane, ``h*W + w``), and ONNX's
  shape inference and onnxruntime's kernel disagree on ceil_mode windows that start in
  the padding.
- ``AveragePool`` has no ``divisor_override``, and onnxruntime has no float64 kernel.

max_pool2d runs torch's loop: from ``best = -inf``, a tap that lands inside the input
replaces the best when ``v > best or v is NaN`` (ties keep the first index, the last NaN
wins); which taps land inside, their flat indices and each window's first inside tap are
known when the graph is built, so they are constants. avg_pool2d adds the taps in a
running sum and divides by a constant ``[oh, ow]`` divisor (``divisor_override``, or the
cells covered inside the padded border or the input, never the ceil-mode overhang).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference.common import Geometry, avg_divisor, check_flag
from reference.pool import avg_pool2d_signature, max_pool2d_signature

from . import graph as G
from .runtime import Spec, arrays, batched, run


@dataclass(frozen=True)
class MaxPoolSpec(Spec):
    input: tuple
    geometry: Geometry
    return_indices: bool

    op = "max_pool2d"

    def arguments(self):
        return [("input", self.input)]

    def results(self):
        shape = (None, self.input[1], *self.geometry.out_size)
        indices = [("indices", shape, "int64")] if self.return_indices else []
        return [("output", shape, self.dtype), *indices]

    def build(self, g, input):
        out, indices = max_pool_graph(g, input, self.geometry, self.return_indices)
        return (out, indices) if self.return_indices else (out,)


def max_pool_graph(g, input, geometry: Geometry, with_indices: bool = True):
    """``(output, indices)`` (indices None unless ``with_indices``)."""
    width = geometry.in_size[1]
    taps = [(i, j, geometry.in_input(i, j),
             (geometry.positions(0, i)[:, None] * width + geometry.positions(1, j)[None, :]))
            for i, j in geometry.input_taps()]  # the others never land inside
    first = np.full(geometry.out_size, -1, dtype=np.int64)  # each window's first inside tap
    for _, _, inside, flat in taps:
        first = np.where(inside & (first < 0), flat, first)
    xpad = G.pad_spatial(g, input, geometry.pad_before, geometry.pad_after)
    best, index = g.const(-np.inf), None
    for i, j, inside, flat in taps:
        if not inside.any():
            continue
        v = G.tap(g, xpad, geometry, i, j)
        better = g.op("Or", g.op("Greater", v, best), g.op("IsNaN", v))
        if not inside.all():
            better = g.op("And", better, g.const(inside, np.bool_))
        best = g.op("Where", better, v, best)
        if with_indices:
            index = g.op("Where", better, g.const(flat, np.int64),
                         g.const(first, np.int64) if index is None else index)
    return best, index


def max_pool2d_plan(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                    return_indices=False):
    tensors, dtype = arrays("max_pool2d", input=input)
    x = tensors["input"]
    geometry = max_pool2d_signature(x.shape, kernel_size, stride, padding, dilation, ceil_mode,
                                    return_indices)
    with_indices = check_flag(return_indices, "return_indices", "max_pool2d")
    return MaxPoolSpec(dtype, batched(x.shape), geometry, with_indices), tensors


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, runtime="onnxruntime"):
    """Max pooling, ``F.max_pool2d`` semantics, as an ONNX graph.

    Args:
        input: ``[N, C, H, W]`` float32 or float64 array.
        kernel_size: int or a sequence of one or two ints.
        stride: int, sequence, or None / ``()`` (= kernel_size).
        padding: at most half the kernel size; padded cells never win.
        dilation: int or a sequence of one or two ints.
        ceil_mode: round the output size up (a last window starts inside the input or
            the left padding).
        return_indices: also return flat ``h*W + w`` argmax indices per plane (int64).
        runtime: ``"onnxruntime"`` or ``"reference"``.

    Returns:
        ``[N, C, oh, ow]`` in the input dtype, or ``(output, indices)``. A NaN wins its
        window.
    """
    plan = max_pool2d_plan(input, kernel_size, stride, padding, dilation, ceil_mode,
                           return_indices)
    return run(*plan, runtime)


@dataclass(frozen=True)
class AvgPoolSpec(Spec):
    input: tuple
    geometry: Geometry
    count_include_pad: bool
    divisor_override: int | None

    op = "avg_pool2d"

    def arguments(self):
        return [("input", self.input)]

    def results(self):
        return [("output", (None, self.input[1], *self.geometry.out_size), self.dtype)]

    def build(self, g, input):
        return (avg_pool_graph(g, input, self.geometry, self.count_include_pad,
                               self.divisor_override),)


def avg_pool_graph(g, input, geometry: Geometry, count_include_pad: bool, divisor_override):
    xpad = G.pad_spatial(g, input, geometry.pad_before, geometry.pad_after)
    total = None
    # Only the taps that read the input somewhere (the others add zeros everywhere): a
    # window far larger than the input makes a graph of the input's size.
    for i, j in geometry.input_taps():
        total = G.accumulate(g, total, G.tap(g, xpad, geometry, i, j))
    return g.op("Div", total, g.const(avg_divisor(geometry, count_include_pad, divisor_override)))


def avg_pool2d_plan(input, kernel_size, stride=None, padding=0, ceil_mode=False,
                    count_include_pad=True, divisor_override=None):
    tensors, dtype = arrays("avg_pool2d", input=input)
    x = tensors["input"]
    geometry = avg_pool2d_signature(x.shape, kernel_size, stride, padding, ceil_mode,
                                    count_include_pad, divisor_override)
    spec = AvgPoolSpec(dtype, batched(x.shape), geometry, bool(count_include_pad),
                       None if divisor_override is None else int(divisor_override))
    return spec, tensors


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, runtime="onnxruntime"):
    """Average pooling, ``F.avg_pool2d`` semantics, as an ONNX graph.

    Args:
        input: ``[N, C, H, W]`` float32 or float64 array.
        kernel_size: int or a sequence of one or two ints.
        stride: int, sequence, or None / ``()`` (= kernel_size).
        padding: zero padding, at most half the kernel size.
        ceil_mode: round the output size up.
        count_include_pad: divide by the cells inside the padded border (True) or inside
            the input (False).
        divisor_override: a non-zero int replacing the count.
        runtime: ``"onnxruntime"`` or ``"reference"``.

    Returns:
        ``[N, C, oh, ow]`` in the input dtype.
    """
    plan = avg_pool2d_plan(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                           divisor_override)
    return run(*plan, runtime)
