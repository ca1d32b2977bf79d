"""The three custom ops as torch sees them: ``torch.library.opcheck`` (schema, autograd
registration, fake tensors, AOT dispatch with dynamic shapes), float64 ``gradcheck`` on
drawn cases, and ``torch.compile(fullgraph=True)`` against eager."""

import pytest
import torch
from hypothesis import given, settings

import torch_impl
from crossconv import strategies
from torch_impl import nn as tnn

F64 = torch.float64


def _t(*shape, low=-1.0, high=1.0, grad=True, seed=0):
    g = torch.Generator().manual_seed(seed + sum(shape))
    t = torch.rand(*shape, generator=g, dtype=F64) * (high - low) + low
    return t.requires_grad_(grad)


# (op, args of the custom op) with stride/padding/dilation as the int lists it takes.
OPCHECK = [
    ("tanprod_conv2d", lambda: (_t(2, 3, 6, 5, low=-0.5, high=0.5), _t(4, 3, 3, 2, low=-0.5,
                                high=0.5), _t(4), [1, 2], [1, 0], [1, 1], "native")),
    ("tanprod_conv2d", lambda: (_t(1, 2, 7, 7, low=-0.5, high=0.5), _t(2, 2, 2, 3, low=-0.5,
                                high=0.5), None, [2, 1], [1, 1], [2, 1], "native")),
    ("conv2_5d", lambda: (_t(2, 3, 6, 5), _t(2, 1, 6, 5, low=0.5, high=2.0, grad=False),
                          _t(3, 4, 3, 3, 3), _t(4), [1, 1], [1, 1], [1, 1], 2.0, 1.0, "native")),
    ("conv2_5d", lambda: (_t(1, 2, 7, 6), _t(1, 1, 7, 6, low=-0.5, high=3.0, grad=False),
                          _t(2, 3, 2, 3, 1), None, [2, 1], [0, 0], [1, 2], 1.0, 0.5, "native")),
    ("deform_conv2d", lambda: (_t(2, 4, 6, 5), _t(2, 36, 6, 5, low=-2, high=2), _t(6, 2, 3, 3),
                               _t(6), _t(2, 18, 6, 5, low=0, high=1), [1, 1], [1, 1], [1, 1],
                               "native")),
    ("deform_conv2d", lambda: (_t(1, 3, 7, 6), _t(1, 12, 3, 6, low=-2, high=2), _t(2, 3, 2, 3),
                               None, None, [2, 1], [0, 1], [2, 1], "native")),
]


@pytest.mark.parametrize("op, make_args", OPCHECK, ids=[f"{op}-{i}" for i, (op, _) in
                                                         enumerate(OPCHECK)])
def test_opcheck_forward_op(op, make_args):
    result = torch.library.opcheck(getattr(torch.ops.crossconv, op).default, make_args())
    assert set(result.values()) == {"SUCCESS"}, result


@pytest.mark.parametrize("op, make_args", OPCHECK[::2], ids=["tanprod", "conv2_5d", "deform"])
def test_opcheck_backward_op(op, make_args):
    """The backward op's arguments are the forward's without bias, after grad_output."""
    args = [a.detach() if isinstance(a, torch.Tensor) else a for a in make_args()]
    out = getattr(torch.ops.crossconv, op).default(*args)
    bias = {"tanprod_conv2d": 2, "conv2_5d": 3, "deform_conv2d": 3}[op]
    backward_args = (torch.randn(out.shape, dtype=F64), *args[:bias], *args[bias + 1:])
    result = torch.library.opcheck(getattr(torch.ops.crossconv, op + "_backward").default,
                                   backward_args)
    assert set(result.values()) == {"SUCCESS"}, result


def _gradcheck(case, fn, differentiable):
    tensors = {
        name: None if value is None else torch.tensor(value, dtype=F64,
                                                      requires_grad=name in differentiable)
        for name, value in case.tensors.items()
    }
    inputs = [t for name, t in tensors.items() if t is not None and name in differentiable]

    def call(*args):
        given_ = dict(tensors)
        for name, value in zip([n for n in tensors if tensors[n] is not None
                                and n in differentiable], args):
            given_[name] = value
        return fn(**given_, **case.params)

    assert torch.autograd.gradcheck(call, inputs, eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)


@settings(max_examples=10)
@given(strategies.tanprod_conv2d_cases(dtypes=("float64",), zero_factors=1, nonfinite=False))
def test_gradcheck_tanprod(case):
    _gradcheck(case, torch_impl.tanprod_conv2d, ("input", "weight", "bias"))


@settings(max_examples=10)
@given(strategies.conv2_5d_cases(dtypes=("float64",), nonfinite=False))
def test_gradcheck_conv2_5d(case):
    _gradcheck(case, torch_impl.conv2_5d, ("input", "weight", "bias"))


@settings(max_examples=10)
@given(strategies.deform_conv2d_cases(dtypes=("float64",), smooth=True, nonfinite=False,
                                      nonfinite_offsets=False))
def test_gradcheck_deform(case):
    _gradcheck(case, torch_impl.deform_conv2d, ("input", "offset", "weight", "bias", "mask"))


class ThreeOps(torch.nn.Module):
    """Conv2_5d -> DeformConv2d -> TanProdConv2d, small weights so the tangents stay tame."""

    def __init__(self):
        super().__init__()
        self.depth_conv = tnn.Conv2_5d(3, 4, 3, padding=1, bias=False, dtype=F64)
        self.deform = tnn.DeformConv2d(4, 4, 3, padding=1, bias=False, dtype=F64)
        self.tanprod = tnn.TanProdConv2d(4, 2, 3, padding=1, dtype=F64)
        with torch.no_grad():
            for p in self.parameters():
                p.mul_(0.1)

    def forward(self, x, depth, offset, mask):
        y = self.depth_conv(x, depth)
        y = self.deform(y, offset, mask)
        return self.tanprod(y)


def test_compiled_model_matches_eager():
    torch.manual_seed(0)
    model = ThreeOps()
    x = torch.randn(2, 3, 6, 6, dtype=F64, requires_grad=True)
    depth = torch.rand(2, 1, 6, 6, dtype=F64) + 0.5
    offset = torch.randn(2, 18, 6, 6, dtype=F64, requires_grad=True)
    mask = torch.rand(2, 9, 6, 6, dtype=F64, requires_grad=True)
    wrt = [x, offset, mask, *model.parameters()]
    compiled = torch.compile(model, fullgraph=True)
    out = compiled(x, depth, offset, mask)
    grads = torch.autograd.grad(out.square().sum(), wrt)
    expected = model(x, depth, offset, mask)
    expected_grads = torch.autograd.grad(expected.square().sum(), wrt)
    assert expected.abs().max() > 0
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-14)
    for g, e in zip(grads, expected_grads):
        assert e.abs().max() > 0
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-14)
