"""``impl="triton"`` reaches ``torch_impl.kernels.<file>`` through the custom ops, forward
and backward, with the kernel interface's plain functions. Stand-in kernel modules (torch
code with the contract signatures, recording their calls) take the place of the Triton
kernels, so the routing and the pooling custom ops are tested on any machine."""

import sys
import types

import pytest
import torch
import torch.nn.functional as F

import reference
import torch_impl
from reference.common import Geometry
from torch_impl import common
from torch_impl.native import conv2_5d as native_conv2_5d
from torch_impl.native import deform as native_deform
from torch_impl.native import tanprod as native_tanprod

F64 = torch.float64


def _recording(native, calls):
    module = types.ModuleType("stand-in kernels")

    def wrap(name):
        def fn(*args):
            calls.append(name)
            assert all(a.is_contiguous() for a in args if isinstance(a, torch.Tensor))
            assert any(isinstance(a, Geometry) for a in args)
            return getattr(native, name)(*args)

        return fn

    module.forward, module.backward = wrap("forward"), wrap("backward")
    return module


def _ceil_mode(geometry):
    """Whether ``geometry`` keeps a ceil-mode window that floor division would drop."""
    floor = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in zip(
        geometry.in_size, geometry.pad_before, geometry.dilation, geometry.kernel,
        geometry.stride)]
    return list(geometry.out_size) != floor


def _pool_kernels(calls):
    """The pooling kernel interface in torch code (flat ``h*W + w`` indices)."""
    module = types.ModuleType("stand-in pool kernels")

    def max_forward(input, geometry):
        calls.append("max_forward")
        return F.max_pool2d(input, geometry.kernel, geometry.stride, geometry.pad_before,
                            geometry.dilation, ceil_mode=_ceil_mode(geometry),
                            return_indices=True)

    def max_backward(grad, indices, geometry):
        calls.append("max_backward")
        n, c = grad.shape[:2]
        out = grad.new_zeros(n, c, geometry.in_size[0] * geometry.in_size[1])
        out.scatter_add_(2, indices.flatten(2), grad.flatten(2))
        return out.view(n, c, *geometry.in_size)

    def avg_forward(input, geometry, count_include_pad, divisor_override):
        calls.append("avg_forward")
        return F.avg_pool2d(input, geometry.kernel, geometry.stride, geometry.pad_before,
                            ceil_mode=_ceil_mode(geometry), count_include_pad=count_include_pad,
                            divisor_override=divisor_override)

    def avg_backward(grad, geometry, count_include_pad, divisor_override):
        calls.append("avg_backward")
        shape = (*grad.shape[:2], *geometry.in_size)
        return torch.ops.aten.avg_pool2d_backward(
            grad, grad.new_empty(shape), list(geometry.kernel), list(geometry.stride),
            list(geometry.pad_before), _ceil_mode(geometry), count_include_pad, divisor_override)

    module.max_forward, module.max_backward = max_forward, max_backward
    module.avg_forward, module.avg_backward = avg_forward, avg_backward
    return module


@pytest.fixture
def kernels(monkeypatch):
    """Installs stand-in ``torch_impl.kernels.*`` modules; yields the list of calls."""
    calls = []
    for file, native in [("tanprod", native_tanprod), ("conv2_5d", native_conv2_5d),
                         ("deform", native_deform)]:
        monkeypatch.setitem(sys.modules, f"torch_impl.kernels.{file}", _recording(native, calls))
    monkeypatch.setitem(sys.modules, "torch_impl.kernels.pool", _pool_kernels(calls))
    common._kernel_module.cache_clear()
    yield calls
    common._kernel_module.cache_clear()


def _rand(*shape, low=-1.0, high=1.0):
    return (torch.rand(*shape, dtype=F64) * (high - low) + low).requires_grad_()


CALLS = [
    ("tanprod_conv2d", lambda: (_rand(2, 3, 6, 5, low=-0.5, high=0.5),
                                _rand(4, 3, 3, 3, low=-0.5, high=0.5)), {"padding": 1}),
    ("conv2_5d", lambda: (_rand(2, 3, 6, 5), _rand(2, 1, 6, 5, low=0.5, high=2).detach(),
                          _rand(3, 4, 3, 3, 3)), {"padding": 1, "focal": 2.0}),
    ("deform_conv2d", lambda: (_rand(2, 3, 6, 5), _rand(2, 18, 6, 5, low=-2, high=2),
                               _rand(4, 3, 3, 3)), {"padding": 1}),
]


@pytest.mark.parametrize("op, make, kwargs", CALLS, ids=[c[0] for c in CALLS])
def test_triton_impl_calls_the_kernel_module(kernels, op, make, kwargs):
    args = make()
    fn = getattr(torch_impl, op)
    out = fn(*args, **kwargs, impl="triton")
    assert kernels == ["forward"]
    grads = torch.autograd.grad(out.sum(), [a for a in args if a.requires_grad])
    assert kernels == ["forward", "backward"]
    expected = fn(*args, **kwargs, impl="native")
    torch.testing.assert_close(out, expected)
    for g, e in zip(grads, torch.autograd.grad(expected.sum(), [a for a in args
                                                                 if a.requires_grad])):
        torch.testing.assert_close(g, e)
    assert kernels == ["forward", "backward"]  # native never touches the kernels


POOLS = [
    ("max_pool2d", (3,), {"stride": 2, "padding": 1, "dilation": 1, "ceil_mode": True}),
    ("max_pool2d", ((2, 3),), {"padding": (1, 0), "dilation": (2, 1)}),
    ("avg_pool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True,
                          "count_include_pad": False}),
    ("avg_pool2d", ((2, 3),), {"divisor_override": 4}),
]


@pytest.mark.parametrize("op, args, kwargs", POOLS, ids=[f"{p[0]}-{i}" for i, p in
                                                         enumerate(POOLS)])
def test_triton_pooling_runs_through_the_custom_ops(kernels, op, args, kwargs):
    x = _rand(2, 3, 7, 8)
    out = getattr(torch_impl, op)(x, *args, **kwargs, impl="triton")
    kind = op[:3]
    assert kernels == [f"{kind}_forward"]
    (grad,) = torch.autograd.grad(out.sum(), [x])
    assert kernels == [f"{kind}_forward", f"{kind}_backward"]
    expected = getattr(reference, op)(x.detach().numpy(), *args, **kwargs)
    torch.testing.assert_close(out, torch.from_numpy(expected))
    expected_grad = getattr(reference, op + "_vjp")(torch.ones_like(out).numpy(),
                                                    x.detach().numpy(), *args, **kwargs)
    torch.testing.assert_close(grad, torch.from_numpy(expected_grad["input"]))


def test_the_pooling_custom_ops_pass_opcheck(kernels):
    x = _rand(2, 3, 7, 8)
    ops = torch.ops.crossconv
    for op, args in [
        (ops.max_pool2d.default, (x, [3, 3], [2, 2], [1, 1], [1, 1], True)),
        (ops.avg_pool2d.default, (x, [3, 2], [2, 1], [1, 0], False, False, None)),
        (ops.avg_pool2d.default, (x, [2, 2], [2, 2], [0, 0], True, True, 3)),
    ]:
        result = torch.library.opcheck(op, args)
        assert set(result.values()) == {"SUCCESS"}, result


def test_return_indices_through_the_kernels(kernels):
    x = _rand(1, 2, 6, 6)
    out, indices = torch_impl.max_pool2d(x, 2, return_indices=True, impl="triton")
    expected, expected_indices = reference.max_pool2d(x.detach().numpy(), 2, return_indices=True)
    torch.testing.assert_close(out, torch.from_numpy(expected))
    assert torch.equal(indices, torch.from_numpy(expected_indices))
