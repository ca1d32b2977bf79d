"""The anchors: torch / torchvision functions under the contract's names and signatures.

The contract (docs/index.md) follows ``torch.nn.functional`` (conv2d, pooling) and ``torchvision.ops``
(deform_conv2d); the per-sample correlations are the grouped-convolution trick used with
SiamFC / SiamRPN++ (fold the batch into channels, one group per sample or per channel).
Registered as the ``torch-anchor`` backend, they run through the same parity tests as
every backend, which is how the reference is held to the frameworks it follows.
"""

import warnings

import torch
import torch.nn.functional as F
import torchvision.ops

max_pool2d = F.max_pool2d
avg_pool2d = F.avg_pool2d


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    with warnings.catch_warnings():  # padding="same" with an even kernel: a copy, not an error
        warnings.filterwarnings("ignore", "Using padding='same'", UserWarning)
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)


def xcorr2d(search, template):
    n, c, h, w = search.shape
    out = F.conv2d(search.reshape(1, n * c, h, w), template, groups=n)
    return out.reshape(n, 1, *out.shape[2:])


def xcorr2d_depthwise(search, template):
    n, c, h, w = search.shape
    kernels = template.reshape(n * c, 1, *template.shape[2:])
    out = F.conv2d(search.reshape(1, n * c, h, w), kernels, groups=n * c)
    return out.reshape(n, c, *out.shape[2:])


def deform_conv2d(input, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None):
    return torchvision.ops.deform_conv2d(
        input, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask
    )


__all__ = ["avg_pool2d", "conv2d", "deform_conv2d", "max_pool2d", "torch", "xcorr2d",
           "xcorr2d_depthwise"]
