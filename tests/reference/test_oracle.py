"""The reference against the naive loop oracles, forward and VJP, to 1e-12."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from crossconv.checks import check_oracle
from crossconv.registry import OPS

FLOAT64 = ("float64",)


@pytest.mark.parametrize("op", OPS.values(), ids=list(OPS))
def test_reference_matches_oracle(op):
    @given(op.cases(dtypes=FLOAT64))
    def check(case):
        check_oracle(case)

    check()


def _inject(case, name, value, data):
    tensor = case.tensors[name].copy()
    tensor.flat[data.draw(st.integers(0, tensor.size - 1), label="position")] = value
    return case.with_tensor(name, tensor)


NONFINITE = [(op, name) for op in OPS.values() for name in op.tensor_args if name != "bias"]


@pytest.mark.parametrize("op, name", NONFINITE, ids=[f"{o.name}-{n}" for o, n in NONFINITE])
def test_nonfinite_values_land_where_the_oracle_puts_them(op, name):
    """NaN/Inf in any tensor argument: the same NaN/Inf pattern and finite values as the
    literal loops (the FFT correlation, the streaming max and the leave-one-out products
    must not smear or lose them)."""

    @given(op.cases(dtypes=FLOAT64, **({"with_mask": True} if name == "mask" else {})),
           st.sampled_from([np.nan, np.inf, -np.inf]), st.data())
    def check(case, value, data):
        case = _inject(case, name, value, data)
        with np.errstate(invalid="ignore", over="ignore"):
            # e.g. a NaN centre depth without bias: the output is legitimately all zero
            assume(np.any(case.call(op.oracle)[0] if op.name == "max_pool2d" and
                          case.params["return_indices"] else case.call(op.oracle)))
            check_oracle(case)

    check()
