"""The Triton kernels through the PyTorch backend's public ops (``impl="triton"``): the
custom ops reach the kernels, autograd matches the reference VJP, ``opcheck`` passes.

Each test skips, naming the missing function, while ``torch_impl`` does not export the op.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from kernel_cases import deterministic_algorithms, random_case
from torch.utils._python_dispatch import TorchDispatchMode

from crossconv import checks
from crossconv.registry import OPS, Implementation

KERNEL_MODULES = {"tanprod_conv2d": "tanprod", "conv2_5d": "conv2_5d",
                  "deform_conv2d": "deform", "max_pool2d": "pool", "avg_pool2d": "pool"}
TRITON = {op: Implementation(op, "torch", label="torch-triton", extra={"impl": "triton"})
          for op in KERNEL_MODULES}


def public_op(name):
    module = importlib.import_module("torch_impl")
    if not hasattr(module, name):
        pytest.skip(f"torch_impl has no {name} yet: the PyTorch backend adds it (runs after "
                    f"the merge)")
    return getattr(module, name)


def _small_case(op: str, seed: int = 0):
    """One representative call per op (float64, bias and mask present)."""
    if op == "tanprod_conv2d":
        return random_case(op, {"input": (2, 2, 5, 5), "weight": (3, 2, 3, 3), "bias": (3,)},
                           low=-0.6, high=0.6, seed=seed, padding=1)
    if op == "conv2_5d":
        case = random_case(op, {"input": (2, 2, 5, 5), "depth": (2, 1, 5, 5),
                                "weight": (3, 3, 2, 3, 3), "bias": (3,)},
                           seed=seed, padding=1, focal=2.0)
        case.tensors["depth"][:] = np.abs(case.tensors["depth"]) + 0.5
        return case
    if op == "deform_conv2d":
        return random_case(op, {"input": (2, 4, 5, 5), "offset": (2, 2 * 2 * 9, 5, 5),
                                "weight": (4, 2, 3, 3), "bias": (4,), "mask": (2, 2 * 9, 5, 5)},
                           low=-1.5, high=1.5, seed=seed, padding=1)
    if op == "max_pool2d":
        return random_case(op, {"input": (2, 3, 6, 5)}, seed=seed, kernel_size=3, stride=2,
                           padding=1, ceil_mode=True, return_indices=True)
    return random_case(op, {"input": (2, 3, 6, 5)}, seed=seed, kernel_size=3, stride=2,
                       padding=1, ceil_mode=True, count_include_pad=False)


@pytest.mark.parametrize("op", sorted(KERNEL_MODULES))
def test_impl_triton_runs_the_kernels(op, monkeypatch):
    fn = public_op(op)
    module = importlib.import_module(f"torch_impl.kernels.{KERNEL_MODULES[op]}")
    launched = []
    real_launch = module.launch
    monkeypatch.setattr(module, "launch",
                        lambda kernel, *a, **kw: (launched.append(kernel), real_launch(kernel, *a, **kw)))
    case = _small_case(op)
    tensors = {k: None if v is None else torch.from_numpy(v).requires_grad_()
               for k, v in case.tensors.items()}
    out = fn(**tensors, **case.params, impl="triton")
    out = out[0] if isinstance(out, tuple) else out
    forward_launches = len(launched)
    out.sum().backward()
    assert forward_launches > 0, f"{op}(impl='triton') did not launch a Triton kernel"
    assert len(launched) > forward_launches, f"{op}'s backward did not launch a Triton kernel"


@pytest.mark.parametrize("op", sorted(KERNEL_MODULES))
def test_forward_and_autograd_match_the_reference(op):
    public_op(op)

    @settings(max_examples=3)
    @given(OPS[op].cases())
    def run(case):
        checks.check_forward(TRITON[op], case)
        checks.check_vjp(TRITON[op], case)

    run()


@pytest.mark.parametrize("op", ["tanprod_conv2d", "deform_conv2d"])
def test_autograd_under_deterministic_algorithms(op):
    public_op(op)
    case = _small_case(op, seed=1)
    with deterministic_algorithms():
        checks.check_vjp(TRITON[op], case)


class _CustomOpCalls(TorchDispatchMode):
    """Records the crossconv custom ops called inside it, marked forward or backward."""

    def __init__(self):
        super().__init__()
        self.phase = "forward"
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace == "crossconv":
            self.calls.append((self.phase, func, args, kwargs))
        return func(*args, **kwargs)


def _fresh(value, requires_grad):
    if isinstance(value, torch.Tensor):
        copy = value.detach().clone()
        return copy.requires_grad_(requires_grad and copy.is_floating_point())
    if isinstance(value, (list, tuple)):
        return type(value)(_fresh(v, requires_grad) for v in value)
    return value


@pytest.mark.parametrize("op", sorted(KERNEL_MODULES))
def test_opcheck_on_the_triton_backed_custom_ops(op):
    fn = public_op(op)
    case = _small_case(op, seed=2)
    tensors = {k: None if v is None else torch.from_numpy(v).requires_grad_()
               for k, v in case.tensors.items()}
    with _CustomOpCalls() as recorder:
        out = fn(**tensors, **case.params, impl="triton")
        recorder.phase = "backward"
        (out[0] if isinstance(out, tuple) else out).sum().backward()
    phases = {phase for phase, *_ in recorder.calls}
    assert phases == {"forward", "backward"}, (
        f"{op}(impl='triton') should call crossconv custom ops forward and backward, "
        f"saw {[(p, str(f)) for p, f, _, _ in recorder.calls]}")
    checked = set()
    for phase, func, args, kwargs in recorder.calls:
        if func in checked:
            continue
        checked.add(func)
        # Forward ops get inputs that require grad (their autograd formula is checked);
        # backward ops do not support double backward.
        args = _fresh(args, phase == "forward")
        kwargs = {k: _fresh(v, phase == "forward") for k, v in kwargs.items()}
        torch.library.opcheck(func, args, kwargs)


@pytest.mark.parametrize("op", sorted(KERNEL_MODULES))
def test_bfloat16_matches_the_native_implementation(op):
    """bfloat16 through impl="triton" (float32 kernels) and impl="native" (float32 torch):
    the same values up to rounding."""
    fn = public_op(op)
    case = _small_case(op, seed=3)
    tensors = {k: None if v is None else torch.from_numpy(v).to(torch.bfloat16)
               for k, v in case.tensors.items()}
    outputs = {}
    for impl in ("native", "triton"):
        out = fn(**tensors, **case.params, impl=impl)
        outputs[impl] = out[0] if isinstance(out, tuple) else out
    assert outputs["triton"].dtype == torch.bfloat16
    torch.testing.assert_close(outputs["triton"].double(), outputs["native"].double(),
                               rtol=2e-2, atol=2e-2 * float(outputs["native"].abs().max()))
