"""The Pallas kernels (interpret mode) against the float64 reference on generated cases.

The contract functions are called directly (``pallas_contract``): forward and every
gradient, float32 and float64 (x64 enabled per case), with the registry's tolerances.
Each example compiles its own kernels, so each op draws few examples (derandomized);
``test_pallas_boundaries.py`` adds the hand-picked edge cases.
"""

from hypothesis import given, settings
from pallas_contract import check

from crossconv import strategies


@settings(max_examples=8)
@given(strategies.tanprod_conv2d_cases(zero_factors=1))
def test_tanprod_matches_the_reference_with_a_zero_factor(case):
    check(case, forward_may_vanish=True)  # a planted tan(x + w) = 0 may zero the output


@settings(max_examples=8)
@given(strategies.conv2_5d_cases())
def test_conv2_5d_matches_the_reference(case):
    check(case)


@settings(max_examples=10)
@given(strategies.deform_conv2d_cases())
def test_deform_matches_the_reference(case):
    check(case)


@settings(max_examples=10)
@given(strategies.max_pool2d_cases(nonfinite=True))
def test_max_pool_matches_the_reference_with_nan_and_inf(case):
    check(case)


@settings(max_examples=10)
@given(strategies.avg_pool2d_cases(nonfinite=True))
def test_avg_pool_matches_the_reference_with_nan_and_inf(case):
    check(case)
