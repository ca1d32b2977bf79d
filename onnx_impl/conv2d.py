"""``conv2d``, ``xcorr2d`` and ``xcorr2d_depthwise`` as ONNX graphs.

conv2d: float32 is one ``Conv`` node (asymmetric ``pads`` carry ``padding="same"``).
onnxruntime has no float64 ``Conv``, so float64 is composite, tap by tap: a strided
``Slice`` of the padded input per kernel tap, contracted with that tap's weights by one
``MatMul`` per tap, ``[groups, O/groups, C/groups] x [groups, C/groups, N*oh*ow]`` (a
batch of per-group products: groups never meet, so an infinite input cannot leak
``inf * 0`` into another group), summed in a running total. Nothing larger than one
tap's slice is held.

xcorr2d / xcorr2d_depthwise: a template per sample rules out ``Conv`` (its weight has no
batch axis, and folding the batch into groups would fix the batch size), so the
correlation is computed as the reference computes it. When every value is finite, with
the FFT (``DFT`` along both spatial axes at the next powers of two, where circular
correlation does not wrap into the valid part; the product with the template's
conjugate spectrum; the inverse). Otherwise, so that a NaN or an infinity lands only
where the definition puts it, the direct sum over the template's taps in a ``Loop``
(one ``[N, C, oh, ow]`` product per tap). An ``If`` on the inputs picks the branch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference.common import Geometry, shape_of
from reference.conv2d import conv2d_signature, xcorr_signature

from . import graph as G
from .runtime import Spec, arrays, batched, run

# ----------------------------------------------------------------------------- conv2d


@dataclass(frozen=True)
class Conv2dSpec(Spec):
    input: tuple
    weight: tuple
    bias: bool
    geometry: Geometry
    groups: int

    op = "conv2d"

    def arguments(self):
        return [("input", self.input), ("weight", self.weight)] + (
            [("bias", (self.weight[0],))] if self.bias else [])

    def results(self):
        return [("output", (None, self.weight[0], *self.geometry.out_size), self.dtype)]

    def build(self, g, input, weight, bias=None):
        if np.dtype(self.dtype) == np.float32:
            return (conv_node(g, input, weight, bias, self.geometry, self.groups),)
        return (conv_by_taps(g, input, weight, bias, self.geometry, self.groups, self.weight),)


def conv_node(g, input, weight, bias, geometry: Geometry, groups: int):
    """One ``Conv`` node (float32: onnxruntime has no float64 kernel)."""
    return g.op("Conv", input, weight, bias, kernel_shape=list(geometry.kernel),
                strides=list(geometry.stride), dilations=list(geometry.dilation),
                pads=[*geometry.pad_before, *geometry.pad_after], group=groups)


def conv_by_taps(g, input, weight, bias, geometry: Geometry, groups: int, weight_shape,
                 tap_scale=None):
    """The composite convolution: per tap a strided slice and one grouped MatMul, in the
    batch-last layout (:func:`graph.batch_last`).

    ``tap_scale(i, j)``, when given, returns a value ``[1, N, oh, ow]`` (batch last) that
    multiplies what tap ``(i, j)`` reads before the product, or None for no scaling: a
    convolution whose taps are weighted per output position."""
    out_channels, group_in = weight_shape[:2]
    positions = geometry.out_size[0] * geometry.out_size[1]
    batch = G.batch_size(g, input)
    xpad = G.batch_last(g, G.pad_spatial(g, input, geometry.pad_before, geometry.pad_after))
    total = None
    for i, j in geometry.taps():
        cols = G.tap(g, xpad, geometry, i, j)  # [C, N, oh, ow]
        scale = None if tap_scale is None else tap_scale(i, j)
        if scale is not None:
            cols = g.op("Mul", cols, scale)
        cols = G.merge_batch(g, cols, [groups, group_in], batch, positions)  # [G, C/G, N*P]
        w_tap = g.op("Slice", weight, G.ints(g, [i, j]), G.ints(g, [i + 1, j + 1]),
                     G.ints(g, [2, 3]))
        w_tap = G.reshape(g, w_tap, [groups, out_channels // groups, group_in])
        total = G.accumulate(g, total, g.op("MatMul", w_tap, cols))  # [G, O/G, N*P]
    out = G.batch_first(g, total, out_channels, batch, geometry.out_size)
    return G.add_bias(g, out, bias)


def conv2d_plan(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    tensors, dtype = arrays("conv2d", input=input, weight=weight, bias=bias)
    x, w, b = tensors.values()
    sig = conv2d_signature(x.shape, w.shape, shape_of(b), stride, padding, dilation, groups)
    spec = Conv2dSpec(dtype, batched(x.shape), w.shape, b is not None, sig.geometry, sig.groups)
    return spec, tensors


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           runtime="onnxruntime"):
    """2-D cross-correlation, ``F.conv2d`` semantics, as an ONNX graph.

    Args:
        input: ``[N, C, H, W]`` float32 or float64 array.
        weight: ``[O, C/groups, kh, kw]``; bias ``[O]`` or None (same dtype).
        stride, dilation: int or a sequence of one or two ints.
        padding: int, a sequence of one or two ints, ``"valid"`` or ``"same"`` (stride 1;
            an odd total puts the extra row/column at the bottom/right).
        groups: channel groups.
        runtime: ``"onnxruntime"`` or ``"reference"`` (``onnx.reference``).

    Returns:
        ``[N, O, oh, ow]`` NumPy array in the input dtype.
    """
    return run(*conv2d_plan(input, weight, bias, stride, padding, dilation, groups), runtime)


# ----------------------------------------------------------------------------- xcorr


@dataclass(frozen=True)
class XcorrSpec(Spec):
    search: tuple
    template: tuple
    per_channel: bool

    @property
    def op(self):
        return "xcorr2d_depthwise" if self.per_channel else "xcorr2d"

    @property
    def out_size(self):
        return self.search[2] - self.template[2] + 1, self.search[3] - self.template[3] + 1

    def arguments(self):
        return [("search", self.search), ("template", self.template)]

    def results(self):
        channels = self.search[1] if self.per_channel else 1
        return [("output", (None, channels, *self.out_size), self.dtype)]

    def build(self, g, search, template):
        finite = all_finite(g, search, template)
        fft = lambda b: self._by_fft(b, search, template)  # noqa: E731
        direct = lambda b: self._by_taps(b, search, template)  # noqa: E731
        return (g.if_(finite, fft, direct),)

    def _finish(self, g, per_channel_maps):
        if self.per_channel:
            return per_channel_maps
        return g.op("ReduceSum", per_channel_maps, G.ints(g, [1]), keepdims=1)

    def _by_taps(self, g, search, template):
        """``out += search[..., i:i+oh, j:j+ow] * template[..., i, j]`` over the taps
        (row-major, as the reference), in a Loop: one product per tap in memory."""
        (oh, ow), width = self.out_size, self.template[3]
        trips = self.template[2] * width
        size = g.op("Concat", g.op("Slice", g.op("Shape", search), G.ints(g, [0]),
                                   G.ints(g, [2])), G.ints(g, [oh, ow]), axis=0)
        zeros = g.op("ConstantOfShape", size, value=G.scalar_tensor(0.0, g.dtype))

        def body(b, iteration, total):
            row = b.op("Div", iteration, b.const(width, np.int64))
            col = b.op("Mod", iteration, b.const(width, np.int64))
            start = b.op("Concat", b.op("Unsqueeze", row, G.ints(b, [0])),
                         b.op("Unsqueeze", col, G.ints(b, [0])), axis=0)
            window = b.op("Slice", search, start, b.op("Add", start, G.ints(b, [oh, ow])),
                          G.ints(b, [2, 3]))
            weight = b.op("Slice", template, start, b.op("Add", start, G.ints(b, [1, 1])),
                          G.ints(b, [2, 3]))
            return b.op("Add", total, b.op("Mul", window, weight))

        return self._finish(g, g.loop(trips, zeros, body))

    def _by_fft(self, g, search, template):
        """Circular correlation at sizes >= the search's: its valid part is exact."""
        (_, _, height, width), (oh, ow) = self.search, self.out_size
        size = (_power_of_two(height), _power_of_two(width))
        spectra = []
        for x, (h, w) in ((search, self.search[2:]), (template, self.template[2:])):
            x = G.pad_spatial(g, x, (0, 0), (size[0] - h, size[1] - w))
            x = g.op("Unsqueeze", x, G.ints(g, [4]))  # real signal: [..., 1]
            x = g.op("DFT", x, None, g.const(3, np.int64), onesided=0)
            spectra.append(g.op("DFT", x, None, g.const(2, np.int64)))
        sr, si = g.op("Split", spectra[0], axis=4, num_outputs=2, outputs=2)
        tr, ti = g.op("Split", spectra[1], axis=4, num_outputs=2, outputs=2)
        real = g.op("Add", g.op("Mul", sr, tr), g.op("Mul", si, ti))  # search * conj(template)
        imag = g.op("Sub", g.op("Mul", si, tr), g.op("Mul", sr, ti))
        product = g.op("Concat", real, imag, axis=4)
        if not self.per_channel:  # sum the channels in the frequency domain: one inverse
            product = g.op("ReduceSum", product, G.ints(g, [1]), keepdims=1)
        product = g.op("DFT", product, None, g.const(2, np.int64), inverse=1)
        product = g.op("DFT", product, None, g.const(3, np.int64), inverse=1)
        real = g.op("Slice", product, G.ints(g, [0, 0, 0]), G.ints(g, [oh, ow, 1]),
                    G.ints(g, [2, 3, 4]))
        return g.op("Squeeze", real, G.ints(g, [4]))


def _power_of_two(n: int) -> int:
    """The smallest power of two >= n: onnxruntime's DFT is a radix-2 FFT only there."""
    return 1 << max(0, int(n) - 1).bit_length()


def all_finite(g, *values):
    """A bool scalar: no NaN or infinity in any of ``values`` (``x * 0`` is NaN exactly
    there, and a sum of zeros and NaNs is NaN; an empty tensor sums to 0)."""
    total = None
    for value in values:
        total = G.accumulate(g, total, g.op("ReduceSum", g.op("Mul", value, g.const(0.0)),
                                            keepdims=0))
    return g.op("Not", g.op("IsNaN", total))


def _xcorr_plan(op, search, template):
    tensors, dtype = arrays(op, search=search, template=template)
    s, t = tensors.values()
    xcorr_signature(s.shape, t.shape, op)
    return XcorrSpec(dtype, batched(s.shape), batched(t.shape), op == "xcorr2d_depthwise"), tensors


def xcorr2d_plan(search, template):
    return _xcorr_plan("xcorr2d", search, template)


def xcorr2d_depthwise_plan(search, template):
    return _xcorr_plan("xcorr2d_depthwise", search, template)


def xcorr2d(search, template, *, runtime="onnxruntime"):
    """Per-sample correlation summed over channels (SiamFC), as an ONNX graph.

    ``search [N, C, H, W]``, ``template [N, C, h, w]`` (float32 or float64) ->
    ``[N, 1, H-h+1, W-w+1]`` in their dtype.
    """
    return run(*xcorr2d_plan(search, template), runtime)


def xcorr2d_depthwise(search, template, *, runtime="onnxruntime"):
    """Per-sample, per-channel correlation (SiamRPN++), as an ONNX graph.

    ``search [N, C, H, W]``, ``template [N, C, h, w]`` -> ``[N, C, H-h+1, W-w+1]``.
    """
    return run(*xcorr2d_depthwise_plan(search, template), runtime)

