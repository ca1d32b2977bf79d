"""Every reference VJP against central finite differences, for every differentiable
argument (one random direction each; see crossconv.checks for the tolerance)."""

import pytest
from hypothesis import given

from crossconv.checks import check_finite_differences
from crossconv.registry import OPS


@pytest.mark.parametrize("op", OPS.values(), ids=list(OPS))
def test_vjp_matches_finite_differences(op):
    @given(op.cases(dtypes=("float64",), **op.fd_options))
    def check(case):
        check_finite_differences(case)

    check()
