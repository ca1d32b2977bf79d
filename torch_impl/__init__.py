"""PyTorch backend of crossconv: every operation of the contract (docs/index.md) as a torch op.

``conv2d``, ``xcorr2d``, ``xcorr2d_depthwise``, ``max_pool2d`` and ``avg_pool2d`` run
torch's own operators after the shared argument checks. ``tanprod_conv2d``, ``conv2_5d``,
``deform_conv2d``, ``depthaware_conv2d`` and ``depthaware_avg_pool2d`` are custom
operators (``torch.ops.crossconv.*``, built by :mod:`torch_impl.custom_op`) with fake
implementations, registered autograd and vmap rules, so they work under
``torch.compile``, ``torch.export`` and ``torch.func``. Modules live in
:mod:`torch_impl.nn`. See docs/torch.md.
"""

from . import nn
from .conv2_5d import conv2_5d
from .conv2d import conv2d, xcorr2d, xcorr2d_depthwise
from .deform import deform_conv2d
from .depthaware import depthaware_avg_pool2d, depthaware_conv2d
from .pool import avg_pool2d, max_pool2d
from .tanprod import tanprod_conv2d

__all__ = [
    "avg_pool2d",
    "conv2_5d",
    "conv2d",
    "deform_conv2d",
    "depthaware_avg_pool2d",
    "depthaware_conv2d",
    "max_pool2d",
    "nn",
    "tanprod_conv2d",
    "xcorr2d",
    "xcorr2d_depthwise",
]
