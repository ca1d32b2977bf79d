"""Implementations with one planted mistake each, for ``crossconv verify`` to catch.

Each is a NumPy implementation with the op's signature that is right except for one
classic slip (``docs/verify.md`` shows verify's output on each):

- :func:`deform_conv2d_swapped_offsets`: reads each offset pair as (dx, dy).
- :func:`max_pool2d_ignoring_ceil_mode`: always floors the output size.
- :func:`conv2_5d_closed_bins`: bin intervals ``[e_l, e_l+1]`` closed on both ends (the
  official 2.5D code's choice), so a tap on an edge counts in two bins.
- :func:`conv2d_same_padding_off_by_one`: ``padding="same"`` with the odd extra row and
  column on the top/left instead of the bottom/right.
"""

import numpy as np

import reference
from reference.common import conv2_5d_signature, float_arrays, shape_of


def deform_conv2d_swapped_offsets(input, offset, weight, bias=None, stride=1, padding=0, dilation=1,
                                  mask=None):
    n, channels, oh, ow = np.shape(offset)
    pairs = np.asarray(offset).reshape(n, channels // 2, 2, oh, ow)
    swapped = pairs[:, :, ::-1].reshape(n, channels, oh, ow)  # the mistake: (dx, dy)
    return reference.deform_conv2d(input, swapped, weight, bias, stride=stride, padding=padding,
                                   dilation=dilation, mask=mask)


def max_pool2d_ignoring_ceil_mode(input, kernel_size, stride=None, padding=0, dilation=1,
                                  ceil_mode=False, return_indices=False):
    return reference.max_pool2d(input, kernel_size, stride=stride, padding=padding,
                                dilation=dilation, ceil_mode=False,  # the mistake
                                return_indices=return_indices)


def conv2_5d_closed_bins(input, depth, weight, bias=None, stride=1, padding=0, dilation=1,
                         focal=1.0, pixel_size=1.0):
    x, z, w, b = float_arrays("conv2_5d", input=input, depth=depth, weight=weight, bias=bias)
    geometry = conv2_5d_signature(x.shape, z.shape, w.shape, shape_of(b), stride, padding, dilation,
                                  focal, pixel_size).geometry
    xpad, zpad = geometry.pad(x), geometry.pad(z)
    kh, kw = geometry.kernel
    bins = w.shape[0]
    centre = geometry.tap(zpad, kh // 2, kw // 2)[:, 0]
    s = centre * pixel_size / focal
    out = np.zeros((x.shape[0], w.shape[1], *geometry.out_size))
    for i, j in geometry.taps():
        tap_depth = geometry.tap(zpad, i, j)[:, 0]
        for l in range(bins):
            lower = centre + (l - bins / 2) * s
            upper = centre + (l + 1 - bins / 2) * s
            m = (lower <= tap_depth) & (tap_depth <= upper)  # the mistake: closed on the right
            out += np.einsum("ncyx,oc->noyx", geometry.tap(xpad, i, j) * m[:, None], w[l, :, :, i, j])
    return out if b is None else out + b[None, :, None, None]


def conv2d_same_padding_off_by_one(input, weight, bias=None, stride=1, padding=0, dilation=1,
                                   groups=1):
    if padding == "same":
        kh, kw = np.shape(weight)[2:]
        dh, dw = (dilation, dilation) if np.ndim(dilation) == 0 else tuple(dilation)[-2:]
        total_h, total_w = dh * (kh - 1), dw * (kw - 1)
        top, left = total_h - total_h // 2, total_w - total_w // 2  # the mistake: extra on top/left
        widths = ((0, 0), (0, 0), (top, total_h - top), (left, total_w - left))
        input, padding = np.pad(np.asarray(input), widths), 0
    return reference.conv2d(input, weight, bias, stride=stride, padding=padding, dilation=dilation,
                            groups=groups)
