"""float16 and bfloat16: every op computes in float32 and returns the input dtype, within
a tolerance sized for the dtype, against the float64 reference on the same (rounded)
values, forward and gradients."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings

import torch_impl
from crossconv.cases import as_outputs
from crossconv.checks import cotangent
from crossconv.compare import Tolerance, assert_close, assert_nontrivial
from crossconv.registry import OPS

#: A few units in the last place of the dtype (float16: 2^-11, bfloat16: 2^-8 relative
#: rounding), relative to each value and to the output's scale: the result is rounded once
#: from a float32 computation, and the gradients' long sums cancel.
TOLERANCES = {
    torch.float16: Tolerance(rtol=2e-3, atol=2e-3),
    torch.bfloat16: Tolerance(rtol=1.6e-2, atol=1.6e-2),
}


def _low(case, dtype):
    """The case's tensors as ``dtype`` torch tensors, and the same values in float64."""
    low = {name: None if a is None else torch.from_numpy(a).to(dtype)
           for name, a in case.tensors.items()}
    exact = {name: None if t is None else t.to(torch.float64).numpy() for name, t in low.items()}
    return low, exact


def _tolerance(dtype, expected) -> Tolerance:
    """The dtype's tolerance, with an absolute floor of two of its subnormal steps: results
    below the smallest normal number (a product of small tangents) keep only a few bits."""
    tol = TOLERANCES[dtype]
    scale = float(np.nanmax(np.abs(expected), initial=0.0))
    info = torch.finfo(dtype)
    floor = 2 * info.tiny * info.eps / scale if scale > 0 else 0.0  # tiny * eps: one subnormal step
    return Tolerance(rtol=tol.rtol, atol=max(tol.atol, floor))


def _check(op_name, case, dtype):
    op = OPS[op_name]
    fn = getattr(torch_impl, op_name)
    low, exact = _low(case, dtype)
    expected = as_outputs(op.reference(**exact, **case.params))
    wrt = [n for n in op.differentiable if low.get(n) is not None]
    inputs = {n: None if t is None else t.clone().requires_grad_(n in wrt) for n, t in low.items()}
    actual = as_outputs(fn(**inputs, **case.params))
    what = f"{op_name} {dtype} on {case.describe()}"
    assert actual[0].dtype == dtype, what
    assert_nontrivial(expected[0], what)
    assert_close(actual[0].detach().double().numpy(), expected[0], _tolerance(dtype, expected[0]), what)
    for a, e in zip(actual[1:], expected[1:]):
        assert np.array_equal(a.numpy(), e), what
    grad = torch.from_numpy(cotangent(case, expected[0].shape)).to(dtype)
    expected_grads = op.reference_vjp(grad.double().numpy(), **exact, **case.params)
    grads = torch.autograd.grad(actual[0], [inputs[n] for n in wrt], grad)
    for name, g in zip(wrt, grads):
        assert g.dtype == dtype, f"{what}: d/d{name} is {g.dtype}"
        if name not in op.vanishing:
            assert_nontrivial(expected_grads[name], f"{what}, d/d{name}")
        assert_close(g.double().numpy(), expected_grads[name], _tolerance(dtype, expected_grads[name]),
                     f"{what}, d/d{name}")


@pytest.mark.parametrize("dtype", TOLERANCES, ids=str)
@pytest.mark.parametrize("op_name", list(OPS))
def test_low_precision_matches_reference(op_name, dtype):
    @settings(max_examples=10)
    @given(OPS[op_name].cases(dtypes=("float32",), nonfinite=False))
    def run(case):
        _check(op_name, case, dtype)

    run()
