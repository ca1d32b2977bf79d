"""The NumPy reference: the definition every backend of crossconv is tested against.

The contract it implements is in docs/: the shared conventions in docs/index.md, one page
per operation (docs/conv2d.md, docs/tanprod.md, docs/conv2_5d.md, docs/deform.md,
docs/pool.md, docs/depthaware.md).

Every operation accepts NumPy arrays (``numpy.ndarray``) of float32 or float64 for its
tensor arguments (anything else, a list or another framework's tensor included, is a
``TypeError`` naming the argument), computes in float64 and returns float64.
``<op>_vjp(grad_output, <the op's own arguments>)`` returns a dict mapping each
differentiable argument's name to its gradient (optional arguments that were None are
absent). ``reference.common`` holds the argument checks every backend shares
(docs/index.md, "What bad input gets").
"""

from .conv2_5d import conv2_5d, conv2_5d_vjp
from .conv2d import (
    conv2d,
    conv2d_vjp,
    xcorr2d,
    xcorr2d_depthwise,
    xcorr2d_depthwise_vjp,
    xcorr2d_vjp,
)
from .deform import deform_conv2d, deform_conv2d_vjp
from .depthaware import (
    depthaware_avg_pool2d,
    depthaware_avg_pool2d_vjp,
    depthaware_conv2d,
    depthaware_conv2d_vjp,
)
from .pool import avg_pool2d, avg_pool2d_vjp, max_pool2d, max_pool2d_vjp
from .tanprod import tanprod_conv2d, tanprod_conv2d_vjp

__all__ = [
    "avg_pool2d",
    "avg_pool2d_vjp",
    "conv2_5d",
    "conv2_5d_vjp",
    "conv2d",
    "conv2d_vjp",
    "deform_conv2d",
    "deform_conv2d_vjp",
    "depthaware_avg_pool2d",
    "depthaware_avg_pool2d_vjp",
    "depthaware_conv2d",
    "depthaware_conv2d_vjp",
    "max_pool2d",
    "max_pool2d_vjp",
    "tanprod_conv2d",
    "tanprod_conv2d_vjp",
    "xcorr2d",
    "xcorr2d_depthwise",
    "xcorr2d_depthwise_vjp",
    "xcorr2d_vjp",
]
