"""Naive loop-by-loop oracles for the crossconv operations (see docs/), one file per op.

Every function here is a literal transcription of a formula in docs/: plain Python
``for`` loops over every index, scalar ``math`` functions, and NumPy used only to
allocate and hold arrays. They are deliberately slow and deliberately independent of any
vectorised implementation, so that the vectorised NumPy reference (and through it every
backend) can be tested against them to ~1e-12 on tiny shapes. Inputs are assumed to be
valid (no argument checking); everything is computed in float64 and returned as float64
(pooling indices as int64).

The files carry the reference's names (``conv2d.py`` holds conv2d and the two
correlations, ``tanprod.py``, ``conv2_5d.py``, ``deform.py``, ``pool.py``,
``depthaware.py``), so an op's
definition (``reference/<file>``) and its literal oracle (``crossconv/oracles/<file>``)
are found by the same name; ``common.py`` holds the scalar helpers they share.

Each operation ``op`` has ``oracle_op`` and ``oracle_op_vjp(grad_output, <the op's own
arguments>)`` returning a dict from differentiable argument name to its gradient
(optional arguments that are ``None`` are absent). ``seed_customconv_2d`` transcribes the
structure of the Torch7 ``nn.CustomConv`` module of the Torch7 question.
"""

from .conv2_5d import oracle_conv2_5d, oracle_conv2_5d_vjp
from .conv2d import (
    oracle_conv2d,
    oracle_conv2d_vjp,
    oracle_xcorr2d,
    oracle_xcorr2d_depthwise,
    oracle_xcorr2d_depthwise_vjp,
    oracle_xcorr2d_vjp,
)
from .deform import oracle_deform_conv2d, oracle_deform_conv2d_vjp
from .depthaware import (
    oracle_depthaware_avg_pool2d,
    oracle_depthaware_avg_pool2d_vjp,
    oracle_depthaware_conv2d,
    oracle_depthaware_conv2d_vjp,
)
from .pool import oracle_avg_pool2d, oracle_avg_pool2d_vjp, oracle_max_pool2d, oracle_max_pool2d_vjp
from .tanprod import oracle_tanprod_conv2d, oracle_tanprod_conv2d_vjp, seed_customconv_2d

__all__ = [
    "oracle_conv2d",
    "oracle_conv2d_vjp",
    "oracle_xcorr2d",
    "oracle_xcorr2d_vjp",
    "oracle_xcorr2d_depthwise",
    "oracle_xcorr2d_depthwise_vjp",
    "oracle_tanprod_conv2d",
    "oracle_tanprod_conv2d_vjp",
    "oracle_conv2_5d",
    "oracle_conv2_5d_vjp",
    "oracle_deform_conv2d",
    "oracle_deform_conv2d_vjp",
    "oracle_depthaware_conv2d",
    "oracle_depthaware_conv2d_vjp",
    "oracle_depthaware_avg_pool2d",
    "oracle_depthaware_avg_pool2d_vjp",
    "oracle_max_pool2d",
    "oracle_max_pool2d_vjp",
    "oracle_avg_pool2d",
    "oracle_avg_pool2d_vjp",
    "seed_customconv_2d",
]
