"""``conv2d``, ``xcorr2d`` and ``xcorr2d_depthwise`` through torch's own convolution (docs/conv2d.md).

These hold torch itself to the reference: after the shared checks
(:mod:`reference.common`), each is one ``F.conv2d`` call. The per-sample correlations
use the grouped-convolution trick of SiamFC / SiamRPN++: the batch is folded into the
channels and every sample (``xcorr2d``) or sample-channel (``xcorr2d_depthwise``) is its
own group.
"""

from __future__ import annotations

import torch.nn.functional as F

from reference.common import conv2d_signature, shape_of, xcorr_signature

from .common import check_tensors


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation, ``F.conv2d`` semantics.

    Args:
        input: ``[N, C, H, W]``; weight ``[O, C/groups, kh, kw]``; bias ``[O]`` or None.
        stride, dilation: int or a sequence of one or two ints.
        padding: int, a sequence of one or two ints, ``"valid"`` or ``"same"`` (stride 1;
            an odd total puts the extra row/column at the bottom/right).
        groups: channel groups.

    Returns:
        ``[N, O, oh, ow]`` in the input dtype.
    """
    check_tensors("conv2d", input=input, weight=weight, bias=bias)
    sig = conv2d_signature(input.shape, weight.shape, shape_of(bias), stride, padding, dilation,
                           groups)
    g = sig.geometry
    if g.pad_before != g.pad_after:  # "same" with an even span: pad explicitly, as torch does
        (top, left), (bottom, right) = g.pad_before, g.pad_after
        input = F.pad(input, (left, right, top, bottom))
        padding = (0, 0)
    else:
        padding = g.pad_before
    return F.conv2d(input, weight, bias, g.stride, padding, g.dilation, sig.groups)


def _correlate(search, template, op, per_channel):
    check_tensors(op, search=search, template=template)
    out_shape = xcorr_signature(search.shape, template.shape, op)
    n, c, h, w = search.shape
    if n == 0:  # no groups to form; an empty result that stays in the autograd graph
        return (search.sum() + template.sum()).expand(out_shape).clone()
    if per_channel:
        kernels = template.reshape(n * c, 1, *template.shape[2:])
        out = F.conv2d(search.reshape(1, n * c, h, w), kernels, groups=n * c)
    else:
        out = F.conv2d(search.reshape(1, n * c, h, w), template, groups=n)
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
