"""The ops the JAX tests cover, and one small fixed call of each: every op of the
registry, with its sample call (``crossconv/cases/<file>.py``, ``<op>_sample``): values
where the op is not trivial and, with ``smooth=True``, away from the kinks that finite
differences cannot cross.
"""

from __future__ import annotations

import jax
import numpy as np

from crossconv.cases import Case
from crossconv.frameworks import JaxAdapter
from crossconv.registry import OPS as REGISTRY

OPS = tuple(REGISTRY)
#: The ops whose gradient is a jax.custom_vjp in jax_impl (reverse mode only).
CUSTOM_VJP = ("tanprod_conv2d", "conv2_5d", "deform_conv2d", "max_pool2d", "depthaware_conv2d",
              "depthaware_avg_pool2d")
#: Arguments that carry no gradient.
NONDIFFERENTIABLE = {name: op.nondifferentiable for name, op in REGISTRY.items()
                     if op.nondifferentiable}


def quick_jit(fn, **kwargs):
    """``jax.jit`` with the harness's quick XLA:CPU compile settings (same results)."""
    return jax.jit(fn, compiler_options=JaxAdapter.QUICK_COMPILE, **kwargs)


def case(op: str, dtype=np.float32, seed: int = 0, smooth: bool = False) -> Case:
    return REGISTRY[op].sample(np.dtype(dtype).name, seed, smooth)
