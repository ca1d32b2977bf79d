"""Modules for the custom ops: :class:`TanProdConv2d`, :class:`Conv2_5d`,
:class:`DeformConv2d`, :class:`DeformableConv2d`, :class:`DepthAwareConv2d` and
:class:`DepthAwareAvgPool2d`.

torch conventions throughout: ``kernel_size``/``stride``/``padding``/``dilation`` as an
int or a pair, ``reset_parameters`` with ``nn.Conv2d``'s kaiming-uniform initialisation,
``extra_repr``, ``device``/``dtype`` factory arguments, and unbatched ``[C, H, W]``
input besides ``[N, C, H, W]`` (every per-sample tensor argument then drops its batch
axis too, and so does the output).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import init

from reference.common import (
    check_flag,
    nonnegative_pair,
    positive_finite_float,
    positive_int,
    positive_pair,
)
from reference.depthaware import similarity_alpha

from .conv2_5d import conv2_5d
from .deform import deform_conv2d
from .depthaware import depthaware_avg_pool2d, depthaware_conv2d
from .tanprod import tanprod_conv2d


def _window(module, op, kernel_size, stride, padding, dilation):
    module.kernel_size = positive_pair(kernel_size, "kernel_size", op)
    module.stride = positive_pair(stride, "stride", op)
    module.padding = nonnegative_pair(padding, "padding", op)
    module.dilation = positive_pair(dilation, "dilation", op)


def _window_repr(module) -> str:
    text = (f"{module.in_channels}, {module.out_channels}, kernel_size={module.kernel_size}, "
            f"stride={module.stride}")
    if module.padding != (0, 0):
        text += f", padding={module.padding}"
    if module.dilation != (1, 1):
        text += f", dilation={module.dilation}"
    if getattr(module, "groups", 1) != 1:
        text += f", groups={module.groups}"
    if module.bias is None:
        text += ", bias=False"
    return text


def _init_like_conv2d(weight, bias):
    """``nn.Conv2d.reset_parameters`` for a ``[O, C/groups, kh, kw]`` weight."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)


def _call_batched(op, input, *per_sample):
    """Run ``op`` on 4-D tensors; a 3-D ``[C, H, W]`` input (and its per-sample tensors)
    gets a batch axis of one, removed from the result."""
    if input.dim() != 3:
        return op(input, *per_sample)
    added = [None if t is None else t.unsqueeze(0) for t in per_sample]
    return op(input.unsqueeze(0), *added).squeeze(0)


def _bias(module, bias, out_channels, factory):
    if bias:
        module.bias = nn.Parameter(torch.empty(out_channels, **factory))
    else:
        module.register_parameter("bias", None)


def _channels(module, in_channels, out_channels, op):
    module.in_channels = positive_int(in_channels, "in_channels", op)
    module.out_channels = positive_int(out_channels, "out_channels", op)


class TanProdConv2d(nn.Module):
    """``tanprod_conv2d`` as a layer: ``out = bias + prod tan(x + w)`` over each window.

    Shapes: input ``[N, C_in, H, W]`` or ``[C_in, H, W]``; weight ``[C_out, C_in, kh, kw]``;
    bias ``[C_out]``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, device=None, dtype=None):
        super().__init__()
        op = "TanProdConv2d"
        _channels(self, in_channels, out_channels, op)
        _window(self, op, kernel_size, stride, padding, dilation)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty((out_channels, in_channels, *self.kernel_size),
                                               **factory))
        _bias(self, bias, out_channels, factory)
        self.reset_parameters()

    def reset_parameters(self):
        _init_like_conv2d(self.weight, self.bias)

    def forward(self, input):
        def op(x):
            return tanprod_conv2d(x, self.weight, self.bias, stride=self.stride,
                                  padding=self.padding, dilation=self.dilation)

        return _call_batched(op, input)

    def extra_repr(self):
        return _window_repr(self)


class Conv2_5d(nn.Module):
    """``conv2_5d`` as a layer: one kernel per depth bin around each window's centre depth.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, bias: as
            ``nn.Conv2d`` (kh and kw odd: the window needs a centre).
        bins: number of depth bins B (default: the kernel height, the paper's k).
        focal: default focal length in pixels; ``forward`` may pass one per call.
        pixel_size: feature stride x dilation of this layer's input.

    Shapes: input ``[N, C_in, H, W]`` or ``[C_in, H, W]``; depth ``[N, 1, H, W]`` or
    ``[1, H, W]``; weight ``[B, C_out, C_in, kh, kw]``; bias ``[C_out]``. Each bin's
    kernel is initialised like an ``nn.Conv2d`` weight. Depth gets no gradient.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, bins=None, focal=1.0, pixel_size=1.0, device=None, dtype=None):
        super().__init__()
        op = "Conv2_5d"
        _channels(self, in_channels, out_channels, op)
        _window(self, op, kernel_size, stride, padding, dilation)
        if self.kernel_size[0] % 2 == 0 or self.kernel_size[1] % 2 == 0:
            raise ValueError(f"{op}: kernel_size must be odd (the window needs a centre), "
                             f"got kernel_size={kernel_size!r}")
        self.bins = positive_int(self.kernel_size[0] if bins is None else bins, "bins", op)
        self.focal = positive_finite_float(focal, "focal", op)
        self.pixel_size = positive_finite_float(pixel_size, "pixel_size", op)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(
            (self.bins, out_channels, in_channels, *self.kernel_size), **factory))
        _bias(self, bias, out_channels, factory)
        self.reset_parameters()

    def reset_parameters(self):
        for kernel in self.weight:
            init.kaiming_uniform_(kernel, a=math.sqrt(5))
        if self.bias is not None:
            _, c, kh, kw = self.weight.shape[1:]
            bound = 1 / math.sqrt(c * kh * kw)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input, depth, focal=None):
        """``focal``: this call's focal length in pixels (default: the layer's)."""
        focal = self.focal if focal is None else focal

        def op(x, z):
            return conv2_5d(x, z, self.weight, self.bias, stride=self.stride,
                            padding=self.padding, dilation=self.dilation, focal=focal,
                            pixel_size=self.pixel_size)

        return _call_batched(op, input, depth)

    def extra_repr(self):
        return (_window_repr(self) + f", bins={self.bins}, focal={self.focal}, "
                f"pixel_size={self.pixel_size}")


class _DeformWeights(nn.Module):
    """The parameters of ``torchvision.ops.DeformConv2d`` (same names and shapes)."""

    def __init__(self, op, in_channels, out_channels, kernel_size, stride, padding, dilation,
                 groups, bias, device, dtype):
        super().__init__()
        _channels(self, in_channels, out_channels, op)
        _window(self, op, kernel_size, stride, padding, dilation)
        self.groups = positive_int(groups, "groups", op)
        if in_channels % groups:
            raise ValueError(f"{op}: in_channels must be divisible by groups, got "
                             f"in_channels={in_channels}, groups={groups}")
        if out_channels % groups:
            raise ValueError(f"{op}: out_channels must be divisible by groups, got "
                             f"out_channels={out_channels}, groups={groups}")
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(
            (out_channels, in_channels // groups, *self.kernel_size), **factory))
        _bias(self, bias, out_channels, factory)

    def reset_parameters(self):
        _init_like_conv2d(self.weight, self.bias)

    def _deform(self, input, offset, mask):
        def op(x, off, m):
            return deform_conv2d(x, off, self.weight, self.bias, stride=self.stride,
                                 padding=self.padding, dilation=self.dilation, mask=m)

        return _call_batched(op, input, offset, mask)

    def extra_repr(self):
        return _window_repr(self)


class DeformConv2d(_DeformWeights):
    """``deform_conv2d`` as a layer; state dicts load to and from
    ``torchvision.ops.DeformConv2d`` (parameters ``weight [C_out, C_in/groups, kh, kw]``
    and ``bias [C_out]``).

    ``forward(input, offset, mask=None)``: input ``[N, C_in, H, W]``, offset ``[N,
    2*Go*kh*kw, oh, ow]``, mask ``[N, Go*kh*kw, oh, ow]``; or all three without the batch
    axis.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, device=None, dtype=None):
        super().__init__("DeformConv2d", in_channels, out_channels, kernel_size, stride,
                         padding, dilation, groups, bias, device, dtype)
        self.reset_parameters()

    def forward(self, input, offset, mask=None):
        return self._deform(input, offset, mask)


class DeformableConv2d(_DeformWeights):
    """A deformable convolution that predicts its own offsets (and mask) from its input,
    the block of the deformable-convolution article.

    ``offset_conv``, an ``nn.Conv2d`` with this layer's kernel size, stride, padding and
    dilation (so its output has the deformable convolution's output size), maps the
    input to ``2*offset_groups*kh*kw`` offset channels, interleaved ``(dy, dx)`` per tap,
    followed with ``with_mask`` by ``offset_groups*kh*kw`` mask logits; the mask is
    ``2 * sigmoid(logits)``. ``offset_conv`` starts at zero, so offsets start at 0 and the
    mask at exactly 1: the layer starts as a plain convolution (``nn.Conv2d`` with the same
    weight and bias).

    ``forward(input)``: ``[N, C_in, H, W]`` or ``[C_in, H, W]``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, *, offset_groups=1, with_mask=False, device=None,
                 dtype=None):
        op = "DeformableConv2d"
        super().__init__(op, in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, device, dtype)
        self.offset_groups = positive_int(offset_groups, "offset_groups", op)
        if in_channels % offset_groups:
            raise ValueError(f"{op}: in_channels must be divisible by offset_groups, got "
                             f"in_channels={in_channels}, offset_groups={offset_groups}")
        self.with_mask = bool(with_mask)
        taps = offset_groups * self.kernel_size[0] * self.kernel_size[1]
        self.offset_conv = nn.Conv2d(in_channels, (3 if with_mask else 2) * taps,
                                     self.kernel_size, self.stride, self.padding, self.dilation,
                                     device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        init.zeros_(self.offset_conv.weight)
        init.zeros_(self.offset_conv.bias)

    def forward(self, input):
        predicted = self.offset_conv(input)
        taps = 2 * self.offset_groups * self.kernel_size[0] * self.kernel_size[1]
        offset = predicted.narrow(-3, 0, taps)
        mask = None
        if self.with_mask:
            mask = 2 * torch.sigmoid(predicted.narrow(-3, taps, predicted.shape[-3] - taps))
        return self._deform(input, offset, mask)

    def extra_repr(self):
        return (_window_repr(self) + f", offset_groups={self.offset_groups}, "
                f"with_mask={self.with_mask}")


class DepthAwareConv2d(nn.Module):
    """``depthaware_conv2d`` as a layer: a convolution whose taps are weighted by their
    depth similarity to the window's centre, ``F = exp(-alpha * |depth[centre] -
    depth[tap]|)`` (docs/depthaware.md).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, bias: as
            ``nn.Conv2d`` (no groups; even kernels take the upper-left of the middle
            pixels as the centre).
        alpha: the similarity scale, a plain attribute (not a parameter): a finite float
            >= 0, 0 making the layer a plain convolution.

    ``forward(input, depth)``: input ``[N, C_in, H, W]`` and depth ``[N, 1, H, W]``, or
    both without the batch axis. Parameters ``weight [C_out, C_in, kh, kw]`` and ``bias
    [C_out]``, initialised as ``nn.Conv2d``'s. Depth gets a gradient.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, alpha=1.0, device=None, dtype=None):
        super().__init__()
        op = "DepthAwareConv2d"
        _channels(self, in_channels, out_channels, op)
        _window(self, op, kernel_size, stride, padding, dilation)
        self.alpha = similarity_alpha(alpha, op)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty((out_channels, in_channels, *self.kernel_size),
                                               **factory))
        _bias(self, bias, out_channels, factory)
        self.reset_parameters()

    def reset_parameters(self):
        _init_like_conv2d(self.weight, self.bias)

    def forward(self, input, depth):
        def op(x, z):
            return depthaware_conv2d(x, z, self.weight, self.bias, stride=self.stride,
                                     padding=self.padding, dilation=self.dilation,
                                     alpha=self.alpha)

        return _call_batched(op, input, depth)

    def extra_repr(self):
        return _window_repr(self) + f", alpha={self.alpha}"


class DepthAwareAvgPool2d(nn.Module):
    """``depthaware_avg_pool2d`` as a layer: an average of each window's cells weighted by
    their depth similarity to the window's centre (docs/depthaware.md).

    Args:
        kernel_size: int or ``(h, w)``.
        stride: int, ``(h, w)``, or None (= kernel_size, as ``nn.AvgPool2d``).
        padding: at most half the kernel size.
        alpha: the similarity scale (plain attribute), finite and >= 0; 0 is
            ``nn.AvgPool2d``.
        count_include_pad: divide by ``kh*kw - sum(1 - F)`` (padded cells count 1) or by
            ``sum F`` over the image's cells.

    ``forward(input, depth)``: input ``[N, C, H, W]`` and depth ``[N, 1, H, W]``, or both
    without the batch axis. No parameters; depth gets a gradient.
    """

    def __init__(self, kernel_size, stride=None, padding=0, alpha=1.0, count_include_pad=True):
        super().__init__()
        op = "DepthAwareAvgPool2d"
        self.kernel_size = positive_pair(kernel_size, "kernel_size", op)
        no_stride = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
        self.stride = self.kernel_size if no_stride else positive_pair(stride, "stride", op)
        self.padding = nonnegative_pair(padding, "padding", op)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{op}: padding must be at most half of kernel_size, got "
                             f"padding={padding!r} for kernel_size={kernel_size!r}")
        self.alpha = similarity_alpha(alpha, op)
        self.count_include_pad = check_flag(count_include_pad, "count_include_pad", op)

    def forward(self, input, depth):
        def op(x, z):
            return depthaware_avg_pool2d(x, z, self.kernel_size, stride=self.stride,
                                         padding=self.padding, alpha=self.alpha,
                                         count_include_pad=self.count_include_pad)

        return _call_batched(op, input, depth)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"alpha={self.alpha}, count_include_pad={self.count_include_pad}")


__all__ = ["Conv2_5d", "DeformConv2d", "DeformableConv2d", "DepthAwareAvgPool2d",
           "DepthAwareConv2d", "TanProdConv2d"]
