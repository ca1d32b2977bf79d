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


@dataclass(frozen=True)
class Worst:
    """The worst element of a comparison: its ratio of error to allowance (<= 1 passes),
    its index and both values (None for an empty result)."""

    ratio: float
    index: tuple[int, ...] | None = None
    actual: float | None = None
    expected: float | None = None


def ratios(actual, expected, tol: Tolerance) -> np.ndarray:
    """Elementwise error / allowance: 0 where equal (NaN meeting NaN included), inf where
    the NaN/Inf pattern differs or an allowance of 0 is exceeded."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise AssertionError(f"shape {a.shape} != expected {e.shape}")
    finite = np.isfinite(e)
    scale = np.abs(e[finite]).max() if finite.any() else 0.0
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        error = np.abs(a - e)
        allowance = tol.rtol * np.abs(e) + tol.atol * scale
        ratio = np.where(error == 0, 0.0, error / np.where(allowance > 0, allowance, 0.0))
    same_special = (np.isnan(a) & np.isnan(e)) | (np.isinf(e) & (a == e))
    ratio = np.where(same_special, 0.0, ratio)
    wrong_special = (np.isnan(a) != np.isnan(e)) | (np.isinf(e) & (a != e)) | (np.isinf(a) & finite)
    return np.where(wrong_special | np.isnan(ratio), np.inf, ratio)


def worst_element(actual, expected, tol: Tolerance) -> Worst:
    """The element with the largest :func:`ratios` (the first one on ties)."""
    r = ratios(actual, expected, tol)
    if r.size == 0:
        return Worst(0.0)
    index = np.unravel_index(int(np.argmax(r)), r.shape)
    a = np.asarray(actual, dtype=np.float64)[index]
    e = np.asarray(expected, dtype=np.float64)[index]
    return Worst(float(r[index]), tuple(int(i) for i in index), float(a), float(e))


def mismatch(actual, expected, tol: Tolerance) -> float:
    """Worst ratio of error to allowance over all elements: <= 1 passes."""
    return worst_element(actual, expected, tol).ratio


def describe_mismatch(worst: Worst, tol: Tolerance) -> str:
    return (f"mismatch {worst.ratio:.3g}x the tolerance (rtol={tol.rtol:g}, atol={tol.atol:g} "
            f"of max|expected|); worst at {worst.index}: {worst.actual!r} vs expected "
            f"{worst.expected!r}")


def assert_close(actual, expected, tol: Tolerance, what: str) -> float:
    """Raise ``AssertionError`` naming ``what`` unless ``actual`` matches; return the ratio."""
    worst = worst_element(actual, expected, tol)
    if worst.ratio > 1:
        raise AssertionError(f"{what}: {describe_mismatch(worst, tol)}")
    return worst.ratio


def assert_nontrivial(expected, what: str) -> None:
    """A comparison proves nothing on an all-zero expected result."""
    e = np.asarray(expected, dtype=np.float64)
    if not (e != 0).any():
        raise AssertionError(f"{what}: the expected result is trivially zero; the case tests nothing")
