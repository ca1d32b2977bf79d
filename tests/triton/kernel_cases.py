"""Calling the Triton contract functions on a :class:`crossconv.cases.Case`.

The kernels take a ``Geometry`` from the reference's signature check and leave the bias
to the op, so the adapter here does what the op will do, for every op the registry gives
Triton kernels (:mod:`crossconv.contract` binds the contract functions' arguments by
name): check the call, add the bias to the forward, and return the gradients the kernels
own (not the bias's).
"""

from __future__ import annotations

import contextlib
import importlib

import numpy as np
import torch

import reference
from crossconv import contract as contract_calls
from crossconv.cases import Case, as_outputs
from crossconv.checks import cotangent
from crossconv.compare import Tolerance, assert_close, assert_nontrivial
from crossconv.registry import OPS, implementations

#: The ops with Triton kernels.
TRITON_OPS = tuple(impl.op for impl in implementations(name="torch-triton"))

#: float16 / bfloat16 against the float64 reference on the same (rounded) inputs: the
#: result's rounding (2^-9 relative in bfloat16) and float16 operands of every tl.dot
#: product (float32 accumulation), relative to the output's scale.
LOW_PRECISION = Tolerance(rtol=1e-2, atol=1e-2)


def tensors(case: Case) -> dict[str, torch.Tensor | None]:
    return {k: None if v is None else torch.from_numpy(v.copy()) for k, v in case.tensors.items()}


def _add_bias(out, bias):
    return out if bias is None else out + bias[None, :, None, None]


def kernels(op: str):
    """``torch_impl.kernels.<file>``: the Triton kernels of ``op``."""
    return importlib.import_module(f"torch_impl.kernels.{OPS[op].file}")


def adapter(case: Case, t: dict):
    """``(forward, backward)`` of the op's Triton contract functions (registry
    ``Op.contract``) on the tensors ``t``: the forward adds the bias, as the op does (and
    returns the indices with ``return_indices``); the backward returns the gradients the
    kernels own (not the bias's)."""
    module, values = kernels(case.op), contract_calls.call_values(case)

    def outputs():
        result = contract_calls.forward(module, case, t, values)
        return result if isinstance(result, tuple) else (result,)

    def forward():
        out = outputs()
        if len(out) > 1:
            return out if case.params.get("return_indices") else out[0]
        return _add_bias(out[0], t.get("bias"))

    def backward(g):
        return contract_calls.backward(module, case, t, g, outputs(), values)

    return forward, backward


def contract(case: Case):
    """``(forward(), backward(grad_out))`` of the Triton kernels for ``case``."""
    return adapter(case, tensors(case))


def numpy(value):
    """float64 (or int64) NumPy array of a tensor of any dtype (bfloat16 included)."""
    if not isinstance(value, torch.Tensor):
        return value
    value = value.detach().cpu()
    return (value.double() if value.is_floating_point() else value).numpy()


def _rounded(array, dtype: torch.dtype):
    return None if array is None else torch.from_numpy(array.copy()).to(dtype)


def check_case(case: Case, low: str | None = None) -> dict[str, np.ndarray]:
    """Forward and every kernel gradient against the float64 reference (and its VJP), at
    the registry's tolerances. ``low`` ("float16" or "bfloat16"): the kernels run on the
    case's values rounded to that dtype, the reference on the same values in float64,
    compared at :data:`LOW_PRECISION`. Returns the kernels' gradients (as NumPy)."""
    op = OPS[case.op]
    dtype = getattr(torch, low) if low else torch.from_numpy(np.zeros(0, case.dtype)).dtype
    run = {k: _rounded(v, dtype) for k, v in case.tensors.items()}
    if low:
        case = Case(case.op, {k: None if t is None else t.double().numpy() for k, t in run.items()},
                    case.params, case.seed)

    def tolerance(table):
        return LOW_PRECISION if low else table[np.dtype(case.dtype).name]

    forward, backward = adapter(case, run)
    expected = as_outputs(case.call(op.reference))
    actual = as_outputs(forward())
    what = f"triton {case.op} on {case.describe()} in {dtype}"
    assert_nontrivial(expected[0], what)
    assert actual[0].dtype == dtype, f"{what}: returned {actual[0].dtype}"
    assert_close(numpy(actual[0]), expected[0], tolerance(op.tolerance), what)
    for a, e in zip(actual[1:], expected[1:], strict=True):
        assert np.array_equal(numpy(a), e), f"{what}: indices differ"

    grad = _rounded(cotangent(case, expected[0].shape), dtype)  # representable in dtype
    expected_grads = case.call(lambda **kw: op.reference_vjp(grad.double().numpy(), **kw))
    grads = backward(grad)
    for name, value in grads.items():
        assert value.dtype == dtype, f"{what}: d/d{name} is {value.dtype}"
        if name not in op.vanishing:
            assert_nontrivial(expected_grads[name], f"{what}, d/d{name}")
        assert_close(numpy(value), expected_grads[name], tolerance(op.grad_tolerance),
                     f"{what}, d/d{name}")
    missing = {k for k in expected_grads if k != "bias"} - set(grads)
    assert not missing, f"{what}: no gradient for {missing}"
    return {k: numpy(v) for k, v in grads.items()}


def reference_output(case: Case) -> np.ndarray:
    return as_outputs(case.call(getattr(reference, case.op)))[0]


def make_case(op: str, seed: int = 0, **arguments) -> Case:
    """A Case from keyword arguments: arrays (or None for an absent optional tensor of
    the op) become tensors, everything else parameters."""
    names = OPS[op].tensor_args
    tensors = {name: arguments.pop(name, None) for name in names}
    tensors = {k: None if v is None else np.asarray(v) for k, v in tensors.items()}
    return Case(op, tensors, arguments, seed)


def random_case(op: str, shapes: dict, dtype=np.float64, seed: int = 0, low=-1.0, high=1.0,
                **params) -> Case:
    """A Case whose tensors (shapes given) are uniform in [low, high)."""
    rng = np.random.default_rng(seed)
    arrays = {name: rng.uniform(low, high, shape).astype(dtype) for name, shape in shapes.items()}
    return make_case(op, seed, **arrays, **params)


@contextlib.contextmanager
def deterministic_algorithms():
    """torch.use_deterministic_algorithms(True) inside the block."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
