"""Running the Pallas kernels' contract functions on a crossconv ``Case`` and checking them
against the float64 reference, forward and VJP.

The contract functions (registry ``Op.contract``, for every op the registry gives Pallas
kernels) take no bias, so cases are compared without it. Every call of a
case runs inside ``jax.enable_x64(case is float64)`` (a thread-local context: other test
modules in the same process keep their setting), and forward and backward of one case
are compiled together, once, at XLA backend optimisation level 0: interpret mode spends
its time compiling, and the level does not change IEEE results.
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np

import reference
from crossconv import contract
from crossconv.cases import Case, as_outputs
from crossconv.checks import cotangent
from crossconv.compare import assert_close, assert_nontrivial
from crossconv.registry import OPS

FAST_COMPILE = {"xla_backend_optimization_level": 0}


def x64(case: Case):
    return jax.enable_x64(np.dtype(case.dtype) == np.float64)


def without_bias(case: Case) -> Case:
    return case.with_tensor("bias", None) if "bias" in case.tensors else case


def kernels(op: str):
    """``jax_impl.kernels.<file>``: the Pallas kernels of ``op``."""
    return importlib.import_module(f"jax_impl.kernels.{OPS[op].file}")


def _adapter(case: Case):
    """``(forward_outputs, vjp_dict)`` for arrays ``t`` (name -> jnp array or None) and a
    cotangent, from the op's contract functions alone (registry ``Op.contract``;
    :mod:`crossconv.contract` binds their arguments by name)."""
    module, values = kernels(case.op), contract.call_values(case)

    def both(t, grad):
        out = contract.forward(module, case, t, values)
        outs = out if isinstance(out, tuple) else (out,)
        return outs, contract.backward(module, case, t, grad, outs, values)

    return both


def _reference_forward(case: Case):
    if case.op == "max_pool2d":  # the contract always returns the indices
        params = {**case.params, "return_indices": True}
        return as_outputs(reference.max_pool2d(**case.tensors, **params))
    return as_outputs(case.call(OPS[case.op].reference))


def run(case: Case, grad: np.ndarray):
    """The contract functions on ``case`` (bias dropped): forward outputs and VJP dict,
    as NumPy arrays."""
    adapter = _adapter(case)
    names = [name for name, value in case.tensors.items() if value is not None]

    def both(arrays, g):
        tensors = dict.fromkeys(case.tensors)
        tensors.update(zip(names, arrays))
        return adapter(tensors, g)

    with x64(case):
        arrays = [jnp.asarray(case.tensors[name]) for name in names]
        outs, grads = jax.jit(both, compiler_options=FAST_COMPILE)(
            arrays, jnp.asarray(grad.astype(case.dtype)))
        return (tuple(np.asarray(o) for o in outs),
                {name: np.asarray(value) for name, value in grads.items()})


def check(case: Case, forward_may_vanish: bool = False) -> None:
    """Forward (indices exactly) and every gradient against the reference, with the
    registry's tolerances for the case's dtype; the expected results must not be zero
    (the forward may be, with ``forward_may_vanish``: a planted zero factor of tanprod)."""
    case = without_bias(case)
    op = OPS[case.op]
    dtype = np.dtype(case.dtype).name
    what = f"pallas {case.op} on {case.describe()}"
    expected = _reference_forward(case)
    grad = cotangent(case, expected[0].shape)
    expected_grads = case.call(lambda **kw: op.reference_vjp(grad, **kw))
    outs, grads = run(case, grad)

    if not forward_may_vanish:
        assert_nontrivial(expected[0], what)
    if outs[0].dtype != case.dtype:
        raise AssertionError(f"{what}: returned {outs[0].dtype}, expected {case.dtype}")
    assert_close(outs[0], expected[0], op.tolerance[dtype], f"{what}, forward")
    for actual, want in zip(outs[1:], expected[1:]):
        if not np.array_equal(actual, want):
            raise AssertionError(f"{what}: indices differ:\n{actual}\nvs\n{want}")
    if sorted(grads) != sorted(expected_grads):
        raise AssertionError(f"{what}: gradients for {sorted(grads)}, expected "
                             f"{sorted(expected_grads)}")
    for name, want in expected_grads.items():
        if name not in op.vanishing:
            assert_nontrivial(want, f"{what}, d/d{name}")
        if grads[name].dtype != case.dtype:
            raise AssertionError(f"{what}: d/d{name} is {grads[name].dtype}")
        assert_close(grads[name], want, op.grad_tolerance[dtype], f"{what}, d/d{name}")
