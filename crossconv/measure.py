"""One implementation on one case against the float64 reference, as data.

The parity tests, ``crossconv crosscheck`` and ``crossconv verify`` all compare through
here. An implementation is a framework adapter (:mod:`crossconv.frameworks`, or
``crossconv.verify``'s NumPy adapter) and a function; each measurement returns one
:class:`Comparison` per output or gradient, carrying the worst element (its index and
both values) whether it passed or not, so a report can show how close a pass was and
exactly where a failure is. A function that raises on a valid call is a failed
comparison, not an error of the harness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .cases import Case, as_outputs
from .compare import Tolerance, Worst, describe_mismatch, worst_element
from .registry import OPS


@dataclass(frozen=True)
class Comparison:
    """One output (``check`` is "forward", "indices" or "d/d<argument>") of one case.

    ``problem`` says why it failed beyond the numbers: a wrong dtype, shape or number of
    outputs, a missing gradient, an exception, or a case whose expected result is all
    zeros (it would test nothing).
    """

    check: str
    worst: Worst
    tolerance: Tolerance | None = None
    problem: str = ""

    @property
    def ratio(self) -> float:
        return math.inf if self.problem else self.worst.ratio

    @property
    def passed(self) -> bool:
        return bool(self.ratio <= 1)

    def describe(self) -> str:
        if self.problem:
            return self.problem
        return describe_mismatch(self.worst, self.tolerance)


def failure(check: str, problem: str, tolerance: Tolerance | None = None) -> Comparison:
    return Comparison(check, Worst(math.inf), tolerance, problem)


def compare(check: str, actual, expected, tolerance: Tolerance) -> Comparison:
    try:
        return Comparison(check, worst_element(actual, expected, tolerance), tolerance)
    except AssertionError as error:  # a shape mismatch
        return failure(check, str(error), tolerance)


def raised(check: str, error: BaseException) -> Comparison:
    return failure(check, f"raised {type(error).__name__}: {error}")


def trivially_zero(expected) -> bool:
    return not (np.asarray(expected, dtype=np.float64) != 0).any()


TRIVIAL = "the expected result is trivially zero; the case tests nothing"


def cotangent(case: Case, shape) -> np.ndarray:
    """The ``grad_output`` a check uses for ``case``: representable in the case's dtype."""
    rng = np.random.default_rng(case.seed + 1)
    return rng.standard_normal(shape).astype(case.dtype).astype(np.float64)


def present(case: Case, names) -> list[str]:
    return [name for name in names if case.tensors.get(name) is not None]


def reference_outputs(case: Case) -> tuple[np.ndarray, ...]:
    with np.errstate(all="ignore"):  # non-finite inputs are cases, not accidents
        return as_outputs(case.call(OPS[case.op].reference))


def reference_vjp(case: Case, grad_output) -> dict[str, np.ndarray]:
    vjp = OPS[case.op].reference_vjp
    with np.errstate(all="ignore"):
        return case.call(lambda **kw: vjp(grad_output, **kw))


def measure_forward(adapter, fn, case: Case, extra=None, expected=None,
                    float64_ok: bool = False) -> list[Comparison]:
    """``fn``'s outputs on ``case`` against ``expected`` (default: the reference's).

    The first output is compared with the op's tolerance for the case's dtype, further
    outputs (pooling indices) exactly. The result must have the input's dtype, or
    float64 when ``float64_ok`` (a NumPy implementation, as the reference).
    """
    op = OPS[case.op]
    expected = reference_outputs(case) if expected is None else as_outputs(expected)
    tolerance = op.tolerance[np.dtype(case.dtype).name]
    if trivially_zero(expected[0]):
        return [failure("forward", TRIVIAL, tolerance)]
    try:
        actual = tuple(np.asarray(a) for a in adapter.forward(fn, case, extra or {}))
    except Exception as error:  # noqa: BLE001 - the implementation's failure, reported
        return [raised("forward", error)]
    if len(actual) != len(expected):
        return [failure("forward", f"{len(actual)} outputs, expected {len(expected)}", tolerance)]
    allowed = {case.dtype} | ({np.dtype(np.float64)} if float64_ok else set())
    if actual[0].dtype not in allowed:
        return [failure("forward", f"returned {actual[0].dtype}, expected the input's {case.dtype}",
                        tolerance)]
    comparisons = [compare("forward", actual[0], expected[0], tolerance)]
    for a, e in zip(actual[1:], expected[1:]):
        comparisons.append(_exactly("indices", a, e))
    return comparisons


def _exactly(check: str, actual, expected) -> Comparison:
    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape:
        return failure(check, f"shape {a.shape} != expected {e.shape}")
    differ = np.argwhere(a != e)
    if not len(differ):
        return Comparison(check, Worst(0.0))
    index = tuple(int(i) for i in differ[0])
    return Comparison(check, Worst(math.inf, index, float(a[index]), float(e[index])),
                      problem=f"{check} differ at {index}: {a[index]!r} vs expected {e[index]!r}")


def measure_vjp(adapter, fn, case: Case, extra=None) -> list[Comparison]:
    """Gradients of ``fn`` (the adapter's autodiff, or its VJP) against the reference VJP
    for every differentiable argument given; a non-differentiable argument (conv2_5d's
    depth) must get no gradient or zeros."""
    op = OPS[case.op]
    grad = cotangent(case, reference_outputs(case)[0].shape)
    expected = reference_vjp(case, grad)
    wrt = present(case, op.differentiable)
    zero = present(case, op.nondifferentiable)
    tolerance = op.grad_tolerance[np.dtype(case.dtype).name]
    try:
        actual = adapter.vjp(fn, case, grad, wrt + zero, extra or {})
    except Exception as error:  # noqa: BLE001 - the implementation's failure, reported
        return [raised("gradients", error)]
    comparisons = []
    for name in wrt:
        check = f"d/d{name}"
        if trivially_zero(expected[name]) and name not in op.vanishing:
            comparisons.append(failure(check, TRIVIAL, tolerance))
        elif actual.get(name) is None:
            comparisons.append(failure(check, "no gradient", tolerance))
        else:
            comparisons.append(compare(check, actual[name], expected[name], tolerance))
    for name in zero:
        if actual.get(name) is not None and np.any(np.asarray(actual[name]) != 0):
            comparisons.append(failure(f"d/d{name}",
                                       f"{name} is not differentiable, got a non-zero gradient"))
    return comparisons


def worst(comparisons) -> Comparison:
    """The comparison with the largest ratio (failures first)."""
    return max(comparisons, key=lambda c: c.ratio)
