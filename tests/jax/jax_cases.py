"""Small fixed calls of every op, shared by the JAX tests.

Each builder returns a :class:`crossconv.cases.Case` in the dtype asked for, with values
where the op is not trivial (taps read the input, deform samples land inside the image,
conv2_5d centres have positive depth) and, with ``smooth=True``, away from the kinks that
finite differences cannot cross (deform sample points off the integer grid, distinct
pooling values, depths off the bin edges).
"""

from __future__ import annotations

import jax
import numpy as np

from crossconv.cases import Case
from crossconv.frameworks import JaxAdapter

OPS = ("conv2d", "xcorr2d", "xcorr2d_depthwise", "tanprod_conv2d", "conv2_5d", "deform_conv2d",
       "max_pool2d", "avg_pool2d")
#: The ops whose gradient is a jax.custom_vjp (reverse mode only).
CUSTOM_VJP = ("tanprod_conv2d", "conv2_5d", "deform_conv2d", "max_pool2d")
#: Arguments that carry no gradient.
NONDIFFERENTIABLE = {"conv2_5d": ("depth",)}


def quick_jit(fn, **kwargs):
    """``jax.jit`` with the harness's quick XLA:CPU compile settings (same results)."""
    return jax.jit(fn, compiler_options=JaxAdapter.QUICK_COMPILE, **kwargs)


def _cast(dtype, **arrays):
    return {k: None if v is None else np.asarray(v, dtype) for k, v in arrays.items()}


def conv2d(rng, dtype, smooth=False):
    tensors = _cast(dtype, input=rng.standard_normal((2, 4, 7, 6)),
                    weight=rng.standard_normal((6, 2, 3, 3)), bias=rng.standard_normal(6))
    return Case("conv2d", tensors, dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2))


def xcorr2d(rng, dtype, smooth=False, op="xcorr2d"):
    tensors = _cast(dtype, search=rng.standard_normal((2, 3, 9, 8)),
                    template=rng.standard_normal((2, 3, 4, 3)))
    return Case(op, tensors, {})


def xcorr2d_depthwise(rng, dtype, smooth=False):
    return xcorr2d(rng, dtype, smooth, op="xcorr2d_depthwise")


def tanprod_conv2d(rng, dtype, smooth=False):
    x = rng.uniform(-0.6, 0.6, (2, 2, 6, 5))
    w = rng.uniform(-0.6, 0.6, (3, 2, 2, 3))
    x[1, 0, 2, 3] = -w[2, 0, 1, 1]  # a zero factor: tan(x + w) = 0 at output (1, 2, ., .)
    tensors = _cast(dtype, input=x, weight=w, bias=rng.standard_normal(3))
    return Case("tanprod_conv2d", tensors, dict(stride=1, padding=1, dilation=(2, 1)))


def conv2_5d(rng, dtype, smooth=False):
    if smooth:  # depths on no bin edge: the masks do not move under small perturbations
        depth = rng.uniform(0.5, 3.0, (2, 1, 7, 6))
    else:  # quarters: taps on bin edges, zero and negative centres
        depth = rng.integers(-1, 16, (2, 1, 7, 6)) * 0.25
        depth[:, :, 1, 1] = 1.5
    tensors = _cast(dtype, input=rng.standard_normal((2, 3, 7, 6)), depth=depth,
                    weight=rng.standard_normal((3, 2, 3, 3, 3)), bias=rng.standard_normal(2))
    return Case("conv2_5d", tensors, dict(stride=1, padding=1, focal=2.0, pixel_size=1.0))


def deform_conv2d(rng, dtype, smooth=False):
    n, c, h, w, go = 2, 4, 6, 5, 2
    offset = rng.integers(-1, 2, (n, 2 * go * 9, h, w)) + rng.uniform(0.1, 0.9, (n, 2 * go * 9, h, w))
    if not smooth:  # integer offsets and points exactly on the border rows/columns
        offset[:, ::5] = np.round(offset[:, ::5])
        offset[:, 1, 0, :] = -1.0  # tap (0, 0), dx: x = -2 + ... lands on -1, -1, ...
    tensors = _cast(dtype, input=rng.standard_normal((n, c, h, w)), offset=offset,
                    weight=rng.standard_normal((4, 2, 3, 3)), bias=rng.standard_normal(4),
                    mask=rng.uniform(0.0, 1.0, (n, go * 9, h, w)))
    return Case("deform_conv2d", tensors, dict(stride=1, padding=1, dilation=1))


def max_pool2d(rng, dtype, smooth=False):
    if smooth:
        x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) * 0.1
    else:
        x = rng.choice([-1.0, 0.0, 2.0], (2, 3, 7, 6))  # ties everywhere
    return Case("max_pool2d", _cast(dtype, input=x),
                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, return_indices=True))


def avg_pool2d(rng, dtype, smooth=False):
    return Case("avg_pool2d", _cast(dtype, input=rng.standard_normal((2, 3, 7, 6))),
                dict(kernel_size=(3, 2), stride=(2, 1), padding=1, ceil_mode=True,
                     count_include_pad=False, divisor_override=None))


def case(op: str, dtype=np.float32, seed: int = 0, smooth: bool = False) -> Case:
    return globals()[op](np.random.default_rng(seed), dtype, smooth)
