"""The checks every test and the CLI run, one case at a time.

Each returns the worst error as a fraction of its tolerance (<= 1) and raises
``AssertionError`` with the case's description when a check fails.

- :func:`check_oracle`: the reference against its loop oracle (forward and VJP).
- :func:`check_finite_differences`: the reference VJP against central differences.
- :func:`check_forward` / :func:`check_vjp`: a backend against the reference (the
  comparisons themselves are :mod:`crossconv.measure`'s, as in the CLI).
- :func:`check_empty_batch`: a backend on an empty batch (N = 0), forward and VJP.
"""

from __future__ import annotations

import numpy as np

from . import frameworks, measure
from .cases import Case, as_outputs
from .compare import assert_close, assert_nontrivial
from .measure import cotangent, present
from .registry import OPS, ORACLE, Implementation

#: Central differences with step h (scaled by the argument's magnitude): truncation error
#: ~h^2 and rounding ~1e-16/h, both far below FD_TOLERANCE, which is relative to the
#: sum of |terms| of the directional derivative; a wrong gradient misses by O(1).
FD_STEP = 1e-6
FD_TOLERANCE = 1e-6


def _vjp(vjp_fn, grad_output, case: Case):
    return case.call(lambda **kw: vjp_fn(grad_output, **kw))


def check_oracle(case: Case) -> float:
    """Reference vs the naive loop oracle: forward (indices exactly) and VJP, 1e-12."""
    op = OPS[case.op]
    expected = as_outputs(case.call(op.oracle))
    actual = as_outputs(case.call(op.reference))
    what = f"reference {op.name} vs oracle on {case.describe()}"
    assert_nontrivial(expected[0], what)
    worst = assert_close(actual[0], expected[0], ORACLE, what)
    for a, e in zip(actual[1:], expected[1:]):
        if not np.array_equal(a, e):
            raise AssertionError(f"{what}: indices differ")
    grad = cotangent(case, expected[0].shape)
    expected_grads = _vjp(op.oracle_vjp, grad, case)
    actual_grads = _vjp(op.reference_vjp, grad, case)
    if sorted(actual_grads) != sorted(expected_grads):
        raise AssertionError(f"{what}: VJP keys {sorted(actual_grads)} != {sorted(expected_grads)}")
    for name, e in expected_grads.items():
        worst = max(worst, assert_close(actual_grads[name], e, ORACLE, f"{what}, d/d{name}"))
    return worst


def check_finite_differences(case: Case) -> float:
    """Reference VJP vs central differences, one random direction per argument (float64)."""
    op = OPS[case.op]
    f = lambda c: as_outputs(c.call(op.reference))[0]  # noqa: E731
    rng = np.random.default_rng(case.seed + 2)
    out = f(case)
    grad = rng.standard_normal(out.shape)
    grads = _vjp(op.reference_vjp, grad, case)
    expected_keys = present(case, op.differentiable)
    if sorted(grads) != sorted(expected_keys):
        raise AssertionError(f"{op.name} VJP returned {sorted(grads)}, expected {expected_keys}")
    worst = 0.0
    for name in expected_keys:
        what = f"reference {op.name} d/d{name} vs finite differences on {case.describe()}"
        x = case.tensors[name].astype(np.float64)
        direction = rng.standard_normal(x.shape)
        step = FD_STEP * max(1.0, float(np.abs(x).max()))
        plus = f(case.with_tensor(name, x + step * direction))
        minus = f(case.with_tensor(name, x - step * direction))
        numeric = np.sum(grad * (plus - minus)) / (2 * step)
        analytic = np.sum(grads[name] * direction)
        if name not in op.vanishing:
            assert_nontrivial(grads[name], what)
        terms = np.sum(np.abs(grads[name] * direction))
        rounding = 1e-15 * np.sum(np.abs(grad * out)) / step
        ratio = abs(numeric - analytic) / (FD_TOLERANCE * terms + rounding)
        if not ratio <= 1:
            raise AssertionError(
                f"{what}: directional derivative {analytic!r} but finite differences give "
                f"{numeric!r} ({ratio:.3g}x the tolerance)"
            )
        worst = max(worst, ratio)
    return worst


def _raise_on_failure(comparisons, impl: Implementation, case: Case) -> float:
    """The worst ratio of ``comparisons``; ``AssertionError`` naming the case on a failure."""
    for comparison in comparisons:
        if not comparison.passed:
            raise AssertionError(f"{impl.name} {case.op} {comparison.check} on {case.describe()}: "
                                 f"{comparison.describe()}")
    return max((c.ratio for c in comparisons), default=0.0)


def check_forward(impl: Implementation, case: Case, device: str = "cpu") -> float:
    """Backend forward vs the float64 reference on the same (possibly float32) inputs."""
    adapter, fn = frameworks.load(impl, device)
    return _raise_on_failure(measure.measure_forward(adapter, fn, case, impl.extra), impl, case)


def check_vjp(impl: Implementation, case: Case, device: str = "cpu") -> float:
    """Backend gradients vs the reference VJP, for every differentiable argument given."""
    adapter, fn = frameworks.load(impl, device)
    return _raise_on_failure(measure.measure_vjp(adapter, fn, case, impl.extra), impl, case)


def check_empty_batch(impl: Implementation, case: Case, device: str = "cpu") -> float:
    """``case`` with N = 0 (torch and torchvision allow it): the backend's output and
    gradients have the reference's shapes and dtype, and the parameters' gradients are
    exactly zero (there is nothing to sum)."""
    op = OPS[impl.op]
    empty = case.with_batch(0)
    adapter, fn = frameworks.load(impl, device)
    what = f"{impl.name} {op.name} on an empty batch, {empty.describe()}"
    expected = as_outputs(empty.call(op.reference))
    actual = adapter.forward(fn, empty, impl.extra)
    for a, e in zip(actual, expected, strict=True):
        if a.shape != e.shape:
            raise AssertionError(f"{what}: output shape {a.shape}, expected {e.shape}")
    if actual[0].dtype != case.dtype:
        raise AssertionError(f"{what}: returned {actual[0].dtype}, expected {case.dtype}")
    if not impl.grad:
        return 0.0
    grad = np.zeros(expected[0].shape)
    expected_grads = _vjp(op.reference_vjp, grad, empty)
    wrt = present(empty, op.differentiable)
    actual_grads = adapter.vjp(fn, empty, grad, wrt, impl.extra)
    for name in wrt:
        a, e = actual_grads[name], expected_grads[name]
        if a is None and e.size:
            raise AssertionError(f"{what}: no gradient for {name}")
        if a is not None and (a.shape != e.shape or np.any(a != 0)):
            raise AssertionError(f"{what}: d/d{name} should be zeros of shape {e.shape}")
    return 0.0
