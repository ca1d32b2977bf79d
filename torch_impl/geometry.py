"""The window geometry (``reference.common.Geometry``) on torch tensors: the one place
torch_impl pads an input, takes the strided view a kernel tap reads, undoes the padding
and places the taps.

``tap(pad(x, g), g, i, j)[..., y, x] == xpad[..., y*sh + i*dh, x*sw + j*dw]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
