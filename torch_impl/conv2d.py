"""``conv2d``, ``xcorr2d`` and ``xcorr2d_depthwise`` through torch's own convolution (docs/conv2d.md).

These hold torch itself to the reference: after the shared checks
(:mod:`reference.common`), each is one ``F.conv2d`` call. The per-sample correlations
use the grouped-convolution trick of SiamFC / SiamRPN++: the batch is folded into the
channels and every sample (``xcorr2d``) or sample-channel (``xcorr2d_depthwise``) is its
own group.

Where ``F.conv2d`` departs from the contract, ``conv2d`` steps around it (docs/torch.md):

- Zero padding is ``0 * w`` for every tap that lands on it, so a NaN or inf weight there
  makes the output NaN. torch's CPU convolution skips padded taps for batches of two or
  more, so ``conv2d`` pads explicitly when a weight is not finite (checked with one
  reduction over the weights), and always when it cannot read the weights (under
  ``torch.compile``, ``torch.export``, ``torch.jit.trace``, the ``torch.func`` transforms
  and on fake or meta tensors).
- No input channels: a ``ValueError`` naming the tensor, as in every backend (the shared
  checks refuse an empty axis other than the batch); torch returns an output with no
  channels at all (and raises for no output channels, or per-sample correlations of no
  channels).
- float16/bfloat16 on the CPU are convolved in float32 and rounded once: oneDNN's
  bfloat16 convolution returns wrong values for some strided windows on CPUs with
  bfloat16 instructions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import is_fake

from reference.conv2d import conv2d_signature, xcorr_signature

from . import geometry
from .common import LOW_PRECISION, check_tensors, empty_sums, shape


def _weights_finite(weight: torch.Tensor) -> bool:
    """Whether every weight is finite; False where the values cannot be read without a
    data-dependent branch in a trace (the caller then pays for the explicit pad)."""
    if (torch.compiler.is_compiling() or torch.jit.is_tracing() or weight.device.type == "meta"
            or is_fake(weight) or torch._C._functorch.is_functorch_wrapped_tensor(weight)):
        return False
    return bool(torch.isfinite(weight).all())


def _convolve(input, weight, bias, stride, padding, dilation, groups):
    """``F.conv2d``, low precision computed in float32 on the CPU."""
    dtype = input.dtype
    if dtype in LOW_PRECISION and input.device.type == "cpu":
        up = [None if t is None else t.float() for t in (input, weight, bias)]
        return F.conv2d(*up, stride, padding, dilation, groups).to(dtype)
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation, ``F.conv2d`` semantics.

    Args:
        input: ``[N, C, H, W]``; weight ``[O, C/groups, kh, kw]``; bias ``[O]`` or None.
        stride, dilation: int or a sequence of one or two ints.
        padding: int, a sequence of one or two ints, ``"valid"`` or ``"same"`` (stride 1;
            an odd total puts the extra row/column at the bottom/right).
        groups: channel groups.

    Returns:
        ``[N, O, oh, ow]`` in the input dtype. A NaN or inf weight that meets zero
        padding gives NaN there (``0 * inf`` is NaN).
    """
    check_tensors("conv2d", input=input, weight=weight, bias=bias)
    weight_shape = shape(weight)
    sig = conv2d_signature(shape(input), weight_shape, shape(bias), stride, padding, dilation,
                           groups)
    g = sig.geometry
    pads = (*g.pad_before, *g.pad_after)
    # "same" with an even span pads unevenly, which F.conv2d cannot; a non-finite weight
    # must meet the padding's zeros, which F.conv2d skips.
    if g.pad_before != g.pad_after or (any(pads) and not _weights_finite(weight)):
        input = geometry.pad(input, g)
        padding = (0, 0)
    else:
        padding = g.pad_before
    return _convolve(input, weight, bias, g.stride, padding, g.dilation, sig.groups)


def _correlate(search, template, op, per_channel):
    check_tensors(op, search=search, template=template)
    search_shape = shape(search)
    out_shape = xcorr_signature(search_shape, shape(template), op)
    n, c, h, w = search_shape
    if n == 0:  # an empty batch: no groups to form, empty sums
        return empty_sums(out_shape, search, template)
    if per_channel:
        kernels = template.reshape(n * c, 1, *shape(template)[2:])
        out = _convolve(search.reshape(1, n * c, h, w), kernels, None, 1, 0, 1, n * c)
    else:
        out = _convolve(search.reshape(1, n * c, h, w), template, None, 1, 0, 1, n)
    return out.reshape(out_shape)


def xcorr2d(search, template):
    """Per-sample correlation summed over channels (SiamFC).

    ``search [N, C, H, W]``, ``template [N, C, h, w]`` -> ``[N, 1, H-h+1, W-w+1]``.
    """
    return _correlate(search, template, "xcorr2d", per_channel=False)


def xcorr2d_depthwise(search, template):
    """Per-sample, per-channel correlation (SiamRPN++).

    ``search [N, C, H, W]``, ``template [N, C, h, w]`` -> ``[N, C, H-h+1, W-w+1]``.
    """
    return _correlate(search, template, "xcorr2d_depthwise", per_channel=True)
