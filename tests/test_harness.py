"""The harness itself: the registry is complete, and the checks catch wrong backends."""

import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings

import reference
from crossconv import checks, frameworks, registry
from crossconv.crosscheck import crosscheck
from crossconv.registry import BACKENDS, OPS, Backend, Implementation


def test_every_reference_operation_is_registered_with_its_vjp_and_oracle():
    forward = {name for name in reference.__all__ if not name.endswith("_vjp")}
    assert forward == set(OPS)
    for op in OPS.values():
        assert callable(op.reference) and callable(op.reference_vjp)
        assert callable(op.oracle) and callable(op.oracle_vjp)
        assert set(op.differentiable) <= set(op.tensor_args)
        assert set(op.tolerance) == set(op.grad_tolerance) == {"float32", "float64"}


def test_implementations_name_known_ops_and_backends():
    for impl in registry.IMPLEMENTATIONS:
        assert impl.op in OPS and impl.backend in BACKENDS


@pytest.mark.parametrize("op", OPS.values(), ids=list(OPS))
def test_strategies_draw_valid_calls_in_both_dtypes(op):
    seen = set()

    @settings(max_examples=15)
    @given(op.cases())
    def check(case):
        assert list(case.tensors) == list(op.tensor_args)
        seen.add(case.dtype.name)
        out = case.call(op.reference)  # a ValueError here is an invalid draw
        assert np.any(np.asarray(out[0] if isinstance(out, tuple) else out) != 0)

    check()
    assert seen == {"float32", "float64"}


@pytest.fixture
def fake_backend(monkeypatch):
    """Register a numpy-on-torch backend built from the reference, optionally broken."""
    torch = pytest.importorskip("torch")

    def install(perturb_forward=0.0, perturb_grad=0.0):
        class Conv(torch.autograd.Function):
            @staticmethod
            def forward(ctx, input, weight):
                ctx.save_for_backward(input, weight)
                out = reference.conv2d(input.numpy(), weight.numpy()) + perturb_forward
                return torch.from_numpy(out.astype(input.numpy().dtype))

            @staticmethod
            def backward(ctx, grad):
                input, weight = ctx.saved_tensors
                g = reference.conv2d_vjp(grad.numpy(), input.numpy(), weight.numpy())
                dtype = input.numpy().dtype
                return (torch.from_numpy((g["input"] + perturb_grad).astype(dtype)),
                        torch.from_numpy(g["weight"].astype(dtype)))

        module = types.ModuleType("fake_backend")
        module.conv2d = lambda input, weight, bias=None, **kw: Conv.apply(input, weight)
        monkeypatch.setitem(sys.modules, "fake_backend", module)
        monkeypatch.setitem(BACKENDS, "fake", Backend("fake", "fake_backend", "torch", ("torch",), "test"))
        return Implementation("conv2d", "fake")

    return install


CONV_CASES = OPS["conv2d"].cases(max_groups=1, string_padding=False, max_stride=1, max_dilation=1,
                                 max_padding=0)


def _no_bias(case):
    return case.with_tensor("bias", None)


def test_a_correct_backend_passes(fake_backend):
    impl = fake_backend()

    @given(CONV_CASES)
    def check(case):
        checks.check_forward(impl, _no_bias(case))
        checks.check_vjp(impl, _no_bias(case))

    check()


@pytest.mark.parametrize("forward, grad", [(1e-6, 0.0), (0.0, 1e-6)], ids=["forward", "gradient"])
def test_a_slightly_wrong_backend_is_caught(fake_backend, forward, grad):
    """An error of 1e-6 is far above float64 rounding: the float64 checks must see it."""
    impl = fake_backend(perturb_forward=forward, perturb_grad=grad)
    check = checks.check_forward if forward else checks.check_vjp

    @settings(max_examples=5)
    @given(OPS["conv2d"].cases(dtypes=("float64",), max_groups=1, string_padding=False,
                               max_stride=1, max_dilation=1, max_padding=0))
    def run(case):
        with pytest.raises(AssertionError, match="mismatch"):
            check(impl, _no_bias(case))

    run()


def test_a_backend_whose_framework_is_missing_is_na_not_a_crash(monkeypatch):
    monkeypatch.setitem(BACKENDS, "ghost", Backend("ghost", "ghost_impl", "torch",
                                                   ("no_such_framework_xyz",), "test"))
    impl = Implementation("conv2d", "ghost")
    monkeypatch.setattr(registry, "IMPLEMENTATIONS", (impl,))
    monkeypatch.setattr("crossconv.crosscheck.implementations",
                        lambda op=None, backend=None, name=None:
                        [impl] if name == "ghost" and op == "conv2d" else [])
    assert "no_such_framework_xyz is not installed" in frameworks.implementation_status(impl)
    with pytest.raises(LookupError, match="not installed"):
        frameworks.load(impl)
    report = crosscheck(examples=1, ops=["conv2d"], backends=["ghost"])
    assert report.cells["conv2d"][report.columns.index("ghost")].status == "n/a"
