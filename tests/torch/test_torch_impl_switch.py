"""``impl="triton"`` reaches ``torch_impl.kernels.<file>`` through the custom ops, forward
and backward, with the kernel interface's plain functions. Stand-in kernel modules (torch
code with the contract signatures, recording their calls: the ``kernels`` fixture of
``conftest.py``) take the place of the Triton kernels, so the routing and the pooling
custom ops are tested on any machine."""

import pytest
import torch

import reference
import torch_impl

F64 = torch.float64


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
