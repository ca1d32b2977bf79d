"""Dtypes of verify's cases, half precision included, and their tolerances.

A case's arrays are NumPy float32 or float64. A half-precision case (``float16``,
``bfloat16``) keeps float32 arrays whose values are exactly representable in that dtype
(NumPy has no bfloat16): the function under test gets them converted without loss, and the
reference computes in float64 from the very same values.

Tolerance for a half dtype (docs/verify.md derives it): with ``u`` the dtype's unit
roundoff (``eps / 2``: 2**-11 for float16, 2**-8 for bfloat16) and ``K`` the number of
terms reduced into one output element, an element passes when

    |actual - expected| <= 2u |expected| + (u + K 2**-24) max|expected|

that is: the result rounded to the half dtype once (``u |expected|``, doubled for a second
rounding such as a bias added after the sum), one more half rounding at the output's scale,
and a reduction of K terms carried in float32 (``K 2**-24``, the float32 bound of a
K-term sum). A kernel that rounds its running sum to half precision after each term is
off by about ``sqrt(K) u`` of the output's scale and fails from K ~ 10 on.
"""

from __future__ import annotations

import math

import numpy as np

from ..cases import Case
from ..compare import Tolerance
from ..registry import OPS

HALF = ("float16", "bfloat16")
FLOATS = ("float32", "float64")
ALL = FLOATS + HALF

#: Unit roundoff (half of machine epsilon) of each half dtype.
UNIT_ROUNDOFF = {"float16": 2.0**-11, "bfloat16": 2.0**-8}
FLOAT32_UNIT_ROUNDOFF = 2.0**-24


def half_limits(op: str, user_limits: dict) -> dict:
    """Half-precision draws are finite unless the user asks otherwise: they test accuracy,
    and NaN/inf propagation is checked in float32 and float64 (torch's CPU bfloat16
    convolution, for one, puts NaN into outputs that never read a -inf input)."""
    from .. import strategy_options

    keys = strategy_options.options(op)
    return {key: False for key in ("nonfinite", "nonfinite_offsets")
            if key in keys and key not in user_limits}


def storage(dtype: str) -> str:
    """The NumPy dtype that holds a case of ``dtype``."""
    return "float32" if dtype in HALF else dtype


def round_to(values, dtype: str) -> np.ndarray:
    """``values`` rounded to ``dtype`` (to nearest, ties to even), as float32 for a half dtype."""
    values = np.asarray(values)
    if dtype == "float16":
        with np.errstate(over="ignore"):
            return values.astype(np.float16).astype(np.float32)
    if dtype == "bfloat16":
        bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
        rounded = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)
        rounded = np.where(np.isnan(values), bits | np.uint32(0x00400000), rounded)
        return rounded.astype(np.uint32).view(np.float32).reshape(np.shape(values))
    return values.astype(dtype)


def as_dtype(case: Case, dtype: str) -> Case:
    """``case`` with every tensor in ``dtype`` (rounded to a half dtype, held as float32)."""
    tensors = {k: None if v is None else round_to(v, dtype) for k, v in case.tensors.items()}
    return Case(case.op, tensors, case.params, case.seed)


def cotangent(case: Case, shape, dtype: str) -> np.ndarray:
    """The ``grad_output`` for ``case``: standard normal, representable in ``dtype``
    (as :func:`crossconv.measure.cotangent` for float32/float64)."""
    rng = np.random.default_rng(case.seed + 1)
    return round_to(rng.standard_normal(shape), dtype).astype(np.float64)


def reduction_length(case: Case, check: str, out_shape) -> int:
    """How many terms are summed into one element of output ``check`` ("forward" or
    "d/d<argument>") of ``case``, whose output has shape ``out_shape``: the K of the
    half-precision tolerance (each op's ``<op>_reduction`` in its cases file)."""
    return OPS[case.op].reduction(case, check, out_shape)


def tolerance(case: Case, dtype: str, check: str, out_shape) -> Tolerance:
    """The tolerance for output ``check`` ("forward", "indices" or "d/d<argument>") of
    ``case`` run in ``dtype``; ``out_shape`` is the shape of the op's output."""
    op = OPS[case.op]
    if dtype not in HALF:
        table = op.tolerance if check in ("forward", "indices") else op.grad_tolerance
        return table[dtype]
    u = UNIT_ROUNDOFF[dtype]
    k = reduction_length(case, check, out_shape)
    if case.op == "tanprod_conv2d":  # a product: every factor carries its own rounding
        return Tolerance(rtol=2 * u * (k + 1), atol=u + k * FLOAT32_UNIT_ROUNDOFF)
    return Tolerance(rtol=2 * u, atol=u + k * FLOAT32_UNIT_ROUNDOFF)


def bits_equal(a, b) -> bool:
    """Bitwise equality, every NaN equal to every NaN."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if not np.array_equal(nan_a, nan_b):
        return False
    return np.where(nan_a, 0, a).tobytes() == np.where(nan_b, 0, b).tobytes()


def largest_difference(a, b) -> tuple[float, tuple[int, ...] | None]:
    """The largest ``|a - b|`` (inf where the NaN patterns differ) and its index."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf, None
    with np.errstate(invalid="ignore"):
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        difference = np.where(same, 0.0, np.abs(a - b))
        difference = np.where(np.isnan(difference), np.inf, difference)
        if not difference.any():  # equal values in different bits: -0.0 and 0.0
            difference = np.where(np.signbit(a) != np.signbit(b), np.finfo(np.float64).tiny, 0.0)
    if difference.size == 0:
        return 0.0, None
    index = np.unravel_index(int(np.argmax(difference)), difference.shape)
    return float(difference[index]), tuple(int(i) for i in index)
