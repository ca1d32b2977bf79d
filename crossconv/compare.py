"""Comparing a result with the float64 reference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """Elementwise ``|actual - expected| <= rtol*|expected| + atol*max|expected|``.

    The ``atol`` term is relative to the largest finite expected value, so it is a
    fraction of the output's scale: it covers cancellation in long sums (an output near
    zero made of large terms) without letting a wrong result through on small outputs.
    NaN must meet NaN and an infinity the same infinity.
    """

    rtol: float
    atol: float


def mismatch(actual, expected, tol: Tolerance) -> float:
    """Worst ratio of error to allowance over all elements: <= 1 passes."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise AssertionError(f"shape {a.shape} != expected {e.shape}")
    if a.size == 0:
        return 0.0
    if not np.array_equal(np.isnan(a), np.isnan(e)):
        return np.inf
    infinite = np.isinf(e)
    if not np.array_equal(a[infinite], e[infinite]) or np.isinf(a[~infinite]).any():
        return np.inf
    finite = np.isfinite(e)
    if not finite.any():
        return 0.0
    a, e = a[finite], e[finite]
    allowance = tol.rtol * np.abs(e) + tol.atol * np.abs(e).max()
    error = np.abs(a - e)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(error == 0, 0.0, error / allowance)
    return float(ratio.max())


def assert_close(actual, expected, tol: Tolerance, what: str) -> float:
    """Raise ``AssertionError`` naming ``what`` unless ``actual`` matches; return the ratio."""
    ratio = mismatch(actual, expected, tol)
    if ratio > 1:
        a = np.asarray(actual, dtype=np.float64)
        e = np.asarray(expected, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            diff = np.abs(a - e)
        worst = np.unravel_index(np.nanargmax(np.where(np.isnan(diff), np.inf, diff)), e.shape)
        raise AssertionError(
            f"{what}: mismatch {ratio:.3g}x the tolerance (rtol={tol.rtol:g}, "
            f"atol={tol.atol:g} of max|expected|); worst at {tuple(map(int, worst))}: "
            f"{a[worst]!r} vs expected {e[worst]!r}"
        )
    return ratio


def assert_nontrivial(expected, what: str) -> None:
    """A comparison proves nothing on an all-zero expected result."""
    e = np.asarray(expected, dtype=np.float64)
    if not (e != 0).any():
        raise AssertionError(f"{what}: the expected result is trivially zero; the case tests nothing")
