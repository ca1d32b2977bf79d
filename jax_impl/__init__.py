"""JAX backend of crossconv: every operation of docs/ in XLA (Pallas kernels through
``impl="pallas"``), working under ``jax.jit``, ``jax.grad``/``jax.vjp`` and ``jax.vmap``.

Tensor arguments are arrays; every other argument (stride, padding, groups, ...) is a
static Python value, checked at trace time by the reference's shared checks. See
docs/jax.md.
"""

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
    "tanprod_conv2d",
    "xcorr2d",
    "xcorr2d_depthwise",
]
