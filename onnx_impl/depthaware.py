"""``depthaware_conv2d`` and ``depthaware_avg_pool2d`` (Wang & Neumann, ECCV 2018) as ONNX
graphs.

Each window weighs its taps by their depth's similarity to the depth at its centre pixel,
``F = exp(-alpha * |depth[centre] - depth[tap]|)`` (docs/depthaware.md). No ONNX op has
per-position tap weights, so both graphs are composite, tap by tap, in float32 and
float64 alike:

- Which taps land in the image and which centres do is known when the graph is built
  (every size but the batch is), so the centre pixels are constant indices (one
  ``Gather`` per axis, clipped into the image) and "tap and centre in the image" is a
  constant mask. Per tap, ``F`` is ``Exp(Abs(centre - tap) * -alpha)`` on a strided
  ``Slice`` of the padded depth, and a ``Where`` on that mask sets it to 1 (convolution)
  or 0 (pooling) where the definition forms no F, so a NaN or infinite depth never
  enters from outside the image or from a centre outside it. F is computed in float64
  whatever the data's dtype and rounded once: in float32, ``alpha * |difference|``
  would lose ``alpha * |difference| * 6e-8`` of F's relative precision, and an
  ``alpha`` beyond float32's range would turn a tie's ``0 * alpha`` into NaN. The depth
  is one channel, so this costs little.
- Convolution: the composite convolution of conv2d (one strided ``Slice`` and one
  ``MatMul`` per tap, batch last) with each tap's slice multiplied by its F first.
- Pooling: a running sum of ``x[tap] * F`` and one of ``F`` (in-image taps only), then
  ``Div`` by ``sum F`` plus the window's padded cells (a constant map, 0 for
  ``count_include_pad=False``): ``pool - sum (1 - F)`` and ``sum F`` in one formula.

With ``alpha = 0`` (F = 1 whatever the depth, NaN and inf included) the graphs are
conv2d's and avg_pool2d's (the depth input is then unused). No tensor larger than one
tap's slice of the input, or the output, is held: no ``kh*kw``-times unfolded buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from reference.common import Geometry, avg_divisor, shape_of
from reference.depthaware import (
    depthaware_avg_pool2d_signature,
    depthaware_conv2d_signature,
    window_centres,
)

from . import graph as G
from .conv2d import conv_by_taps, conv_node
from .pool import avg_pool_graph
from .runtime import Spec, arrays, batched, run

CONV = "depthaware_conv2d"
POOL = "depthaware_avg_pool2d"


# ----------------------------------------------------------------------------- similarity


class Similarity:
    """The similarity F of every window's taps, one tap at a time, on graph ``g``.

    ``depth`` is a graph value ``[A, B, H, W]`` holding one depth map per sample along
    one of its first two axes (``[N, 1, H, W]``, or ``[1, N, H, W]`` batch last); every F
    comes out in that layout, ``[A, B, oh, ow]``."""

    def __init__(self, g, depth, geometry: Geometry, pooling: bool, alpha: float):
        self.g, self.geometry = g, geometry
        rows, cols, self.centre_inside = window_centres(geometry, pooling)
        if np.dtype(g.dtype) != np.float64:  # F in float64 (see the module docstring)
            depth = g.op("Cast", depth, to=TensorProto.DOUBLE)
        self.centre = G.pick(g, depth, rows, cols, geometry.in_size)
        self.depth_pad = G.pad_spatial(g, depth, geometry.pad_before, geometry.pad_after, 0.0,
                                       np.float64)
        self.scale = g.const(-alpha, np.float64)

    def tap(self, i: int, j: int, elsewhere: float):
        """F of tap ``(i, j)`` where both the tap and its window's centre are in the image,
        ``elsewhere`` at the other positions; None when that is every position."""
        g = self.g
        formed = self.geometry.in_input(i, j) & self.centre_inside
        if not formed.any():
            return None
        diff = g.op("Sub", self.centre, G.tap(g, self.depth_pad, self.geometry, i, j))
        f = g.op("Exp", g.op("Mul", g.op("Abs", diff), self.scale))
        if np.dtype(g.dtype) != np.float64:
            f = g.op("Cast", f, to=G.element_type(g.dtype))
        if formed.all():
            return f
        return g.op("Where", g.const(formed, np.bool_), f, g.const(elsewhere))


def _sized(shape) -> tuple:
    """A shape for the reference's checks: a symbolic batch (None) as 1 (a 0-d shape
    as it is, for the checks to refuse)."""
    shape = tuple(shape)
    return (1 if shape[0] is None else shape[0], *shape[1:]) if shape else shape


# ----------------------------------------------------------------------------- conv


@dataclass(frozen=True)
class DepthAwareConvSpec(Spec):
    input: tuple
    weight: tuple
    bias: bool
    geometry: Geometry
    alpha: float

    op = CONV

    def arguments(self):
        return [("input", self.input), ("depth", (None, 1, *self.input[2:])),
                ("weight", self.weight)] + ([("bias", (self.weight[0],))] if self.bias else [])

    def results(self):
        return [("output", (None, self.weight[0], *self.geometry.out_size), self.dtype)]

    def build(self, g, input, depth, weight, bias=None):
        return (depthaware_conv_graph(g, input, depth, weight, bias, self.geometry,
                                      self.weight, self.alpha),)


def depthaware_conv_graph(g, input, depth, weight, bias, geometry: Geometry, weight_shape,
                          alpha: float):
    """conv2d's composite graph with every tap's slice weighted by its F (batch last)."""
    if alpha == 0:  # F = 1 everywhere: conv2d
        if np.dtype(g.dtype) == np.float32:
            return conv_node(g, input, weight, bias, geometry, 1)
        return conv_by_taps(g, input, weight, bias, geometry, 1, weight_shape)
    similarity = Similarity(g, G.batch_last(g, depth), geometry, False, alpha)
    return conv_by_taps(g, input, weight, bias, geometry, 1, weight_shape,
                        tap_scale=lambda i, j: similarity.tap(i, j, elsewhere=1.0))


def conv_spec(dtype: str, input_shape, depth_shape, weight_shape, bias_shape, stride, padding,
              dilation, alpha) -> DepthAwareConvSpec:
    """Check a call (shapes; the batch may be None) and return its graph's spec."""
    sig = depthaware_conv2d_signature(_sized(input_shape), _sized(depth_shape),
                                      tuple(weight_shape), bias_shape, stride, padding,
                                      dilation, alpha)
    return DepthAwareConvSpec(dtype, batched(input_shape), tuple(weight_shape),
                              bias_shape is not None, sig.geometry, sig.alpha)


def depthaware_conv2d_plan(input, depth, weight, bias=None, stride=1, padding=0, dilation=1,
                           alpha=1.0):
    tensors, dtype = arrays(CONV, input=input, depth=depth, weight=weight, bias=bias)
    x, z, w, b = tensors.values()
    return conv_spec(dtype, x.shape, z.shape, w.shape, shape_of(b), stride, padding, dilation,
                     alpha), tensors


def depthaware_conv2d(input, depth, weight, bias=None, stride=1, padding=0, dilation=1,
                      alpha=1.0, *, runtime="onnxruntime"):
    """Depth-aware convolution as an ONNX graph.

    Args:
        input: ``[N, C, H, W]`` float32 or float64 array.
        depth: ``[N, 1, H, W]``, same dtype.
        weight: ``[O, C, kh, kw]`` (no groups; even kernels take the upper-left middle
            pixel as the centre); bias ``[O]`` or None.
        stride, padding, dilation: int or a sequence of one or two ints.
        alpha: similarity scale, finite and >= 0 (0: plain conv2d, whatever the depth).
        runtime: ``"onnxruntime"`` or ``"reference"`` (``onnx.reference``).

    Returns:
        ``[N, O, oh, ow]`` in the input dtype.
    """
    plan = depthaware_conv2d_plan(input, depth, weight, bias, stride, padding, dilation, alpha)
    return run(*plan, runtime)


# ----------------------------------------------------------------------------- pooling


@dataclass(frozen=True)
class DepthAwarePoolSpec(Spec):
    input: tuple
    geometry: Geometry
    alpha: float
    count_include_pad: bool

    op = POOL

    def arguments(self):
        return [("input", self.input), ("depth", (None, 1, *self.input[2:]))]

    def results(self):
        return [("output", (None, self.input[1], *self.geometry.out_size), self.dtype)]

    def build(self, g, input, depth):
        return (depthaware_pool_graph(g, input, depth, self.geometry, self.alpha,
                                      self.count_include_pad),)


def depthaware_pool_graph(g, input, depth, geometry: Geometry, alpha: float,
                          count_include_pad: bool):
    """Running sums of ``x * F`` and ``F`` over the in-image taps, divided."""
    if alpha == 0:  # F = 1 everywhere: avg_pool2d
        return avg_pool_graph(g, input, geometry, count_include_pad, None)
    similarity = Similarity(g, depth, geometry, True, alpha)
    xpad = G.pad_spatial(g, input, geometry.pad_before, geometry.pad_after)
    num = weights = None
    for i, j in geometry.input_taps():  # the others read padding in every window
        f = similarity.tap(i, j, elsewhere=0.0)  # [N, 1, oh, ow]; every centre is inside
        if f is None:  # the tap reads padding in every window
            continue
        num = G.accumulate(g, num, g.op("Mul", G.tap(g, xpad, geometry, i, j), f))
        weights = G.accumulate(g, weights, f)
    if count_include_pad:  # pool - sum(1 - F) = sum F + the window's padded cells
        padded = avg_divisor(geometry, True, None) - avg_divisor(geometry, False, None)
        if padded.any():
            weights = g.op("Add", weights, g.const(padded))
    return g.op("Div", num, weights)


def pool_spec(dtype: str, input_shape, depth_shape, kernel_size, stride, padding, alpha,
              count_include_pad) -> DepthAwarePoolSpec:
    """Check a call (shapes; the batch may be None) and return its graph's spec."""
    sig = depthaware_avg_pool2d_signature(_sized(input_shape), _sized(depth_shape), kernel_size,
                                          stride, padding, alpha, count_include_pad)
    return DepthAwarePoolSpec(dtype, batched(input_shape), sig.geometry, sig.alpha,
                              sig.count_include_pad)


def depthaware_avg_pool2d_plan(input, depth, kernel_size, stride=None, padding=0, alpha=1.0,
                               count_include_pad=True):
    tensors, dtype = arrays(POOL, input=input, depth=depth)
    x, z = tensors.values()
    return pool_spec(dtype, x.shape, z.shape, kernel_size, stride, padding, alpha,
                     count_include_pad), tensors


def depthaware_avg_pool2d(input, depth, kernel_size, stride=None, padding=0, alpha=1.0,
                          count_include_pad=True, *, runtime="onnxruntime"):
    """Depth-aware average pooling as an ONNX graph.

    Args:
        input: ``[N, C, H, W]`` float32 or float64 array.
        depth: ``[N, 1, H, W]``, same dtype.
        kernel_size: int or a sequence of one or two ints.
        stride: int, sequence, or None / ``()`` (= kernel_size).
        padding: at most half the kernel size.
        alpha: similarity scale, finite and >= 0 (0: plain avg_pool2d).
        count_include_pad: divide by ``pool - sum(1 - F)`` (padded cells count 1) or by
            ``sum F``.
        runtime: ``"onnxruntime"`` or ``"reference"``.

    Returns:
        ``[N, C, oh, ow]`` in the input dtype.
    """
    plan = depthaware_avg_pool2d_plan(input, depth, kernel_size, stride, padding, alpha,
                                      count_include_pad)
    return run(*plan, runtime)
