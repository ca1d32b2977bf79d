"""The window geometry (``reference.common.Geometry``) on torch tensors: the one place
torch_impl pads an input, takes the strided view a kernel tap reads, undoes the padding
and places the taps.

``tap(pad(x, g), g, i, j)[..., y, x] == xpad[..., y*sh + i*dh, x*sw + j*dw]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reference.depthaware import conv_centres as reference_conv_centres
from reference.depthaware import pool_centres as reference_pool_centres


def padded_size(geometry) -> tuple[int, int]:
    """``(Hp, Wp)``: the input's spatial size with both paddings."""
    (h, w), (top, left), (bottom, right) = (geometry.in_size, geometry.pad_before,
                                            geometry.pad_after)
    return h + top + bottom, w + left + right


def pad(x: torch.Tensor, geometry, value: float = 0.0) -> torch.Tensor:
    """``x [..., H, W]`` padded to ``[..., Hp, Wp]`` with ``value``."""
    (top, left), (bottom, right) = geometry.pad_before, geometry.pad_after
    return F.pad(x, (left, right, top, bottom), value=value)


def unpad(xpad: torch.Tensor, geometry) -> torch.Tensor:
    """The ``[..., H, W]`` view of the input inside ``xpad [..., Hp, Wp]``."""
    (top, left), (h, w) = geometry.pad_before, geometry.in_size
    return xpad[..., top : top + h, left : left + w]


def tap(xpad: torch.Tensor, geometry, i: int, j: int) -> torch.Tensor:
    """The ``[..., oh, ow]`` view of what tap ``(i, j)`` reads at every output position."""
    (sh, sw), (dh, dw), (oh, ow) = geometry.stride, geometry.dilation, geometry.out_size
    return xpad[..., i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                j * dw : j * dw + sw * (ow - 1) + 1 : sw]


def positions(geometry, axis: int, taps: torch.Tensor) -> torch.Tensor:
    """``[len(taps), out]``: the unpadded input coordinate along ``axis`` (0 rows, 1
    columns) that each of ``taps`` (kernel indices along that axis) reads at every
    output position."""
    out = torch.arange(geometry.out_size[axis], device=taps.device)
    return (out[None] * geometry.stride[axis] - geometry.pad_before[axis]
            + taps[:, None] * geometry.dilation[axis])


def taps(xpad: torch.Tensor, geometry) -> torch.Tensor:
    """The ``[..., kh, kw, oh, ow]`` view of what every tap reads at every output
    position, ``taps(xpad, g)[..., i, j, :, :] == tap(xpad, g, i, j)``: the unfolded
    input as a strided view of ``xpad [..., Hp, Wp]``, nothing copied."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = (geometry.kernel, geometry.stride,
                                              geometry.dilation, geometry.out_size)
    row, col = xpad.stride(-2), xpad.stride(-1)
    return xpad.as_strided((*xpad.shape[:-2], kh, kw, oh, ow),
                           (*xpad.stride()[:-2], dh * row, dw * col, sh * row, sw * col),
                           xpad.storage_offset())


def add_to_taps(grad_pad: torch.Tensor, values: torch.Tensor, geometry,
                rows: slice = slice(None), weights: torch.Tensor | None = None,
                first: tuple[int, int] = (0, 0)) -> None:
    """The adjoint of :func:`taps`: ``grad_pad [..., Hp, Wp] += values [..., kh, kw, r,
    ow]`` (times ``weights``, broadcast like ``values``, if given) at the cells each tap
    reads; one add per tap, so a cell read by several taps gets every share. ``rows``:
    the output rows ``values`` holds (default: all); ``first``: the tap ``values[...,
    0, 0, :, :]`` holds, when ``values`` holds a block of the window's taps (default:
    all of them, from ``(0, 0)``)."""
    for a in range(values.shape[-4]):
        for b in range(values.shape[-3]):
            view = tap(grad_pad, geometry, first[0] + a, first[1] + b)[..., rows, :]
            if weights is None:
                view.add_(values[..., a, b, :, :])
            else:
                view.addcmul_(values[..., a, b, :, :], weights[..., a, b, :, :])


def in_input(geometry, device=None) -> torch.Tensor:
    """``[kh, kw, oh, ow]`` bool: does each tap of each window land inside the unpadded
    input?"""
    inside = []
    for axis in (0, 1):
        p = positions(geometry, axis, torch.arange(geometry.kernel[axis], device=device))
        inside.append((p >= 0) & (p < geometry.in_size[axis]))
    return inside[0][:, None, :, None] & inside[1][None, :, None, :]


def conv_centres(geometry, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Input row of every output row's window centre ``[oh]``, and column of every output
    column's ``[ow]`` (unpadded coordinates, possibly outside the input): the depth-aware
    convolution's centres, the reference's (``reference.depthaware.conv_centres``)."""
    return tuple(torch.as_tensor(c, device=device) for c in reference_conv_centres(geometry))


def pool_centres(geometry, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Input row ``[oh]`` / column ``[ow]`` of every pooling window's centre, always inside
    the input: the reference's (``reference.depthaware.pool_centres``)."""
    return tuple(torch.as_tensor(c, device=device) for c in reference_pool_centres(geometry))


def centre_cells(geometry, centres) -> tuple[torch.Tensor, torch.Tensor]:
    """``(flat [oh, ow], inside [oh, ow])``: each window centre's flat index ``row*W + col``
    into the unpadded input (clamped into it), and whether the centre lies inside."""
    (rows, cols), (h, w) = centres, geometry.in_size
    inside = (((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :])
    flat = rows.clamp(0, h - 1)[:, None] * w + cols.clamp(0, w - 1)[None, :]
    return flat, inside


def add_to_centres(grad: torch.Tensor, values: torch.Tensor, geometry, centres) -> None:
    """The adjoint of reading each window's centre: ``grad [N, H, W] += values [N, oh, ow]``
    at the centre cells inside the input (windows sharing a centre all add to it)."""
    flat, inside = centre_cells(geometry, centres)
    grad.view(grad.shape[0], grad.shape[1] * grad.shape[2]).index_add_(1, flat[inside],
                                                                   values[:, inside])
