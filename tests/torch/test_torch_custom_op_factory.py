"""What :func:`torch_impl.custom_op.contract_op` gives a new op: a signature check and two
contract functions, one factory call, and the op passes opcheck, gradcheck, the
torch.func transforms and export with a dynamic batch. The example op scales each
channel: ``out[n, c] = input[n, c] * weight[c] + bias[c]``."""

import sys
import types

import pytest
import torch
from torch.export import Dim

from torch_impl.custom_op import contract_op

F64 = torch.float64


def _signature(input, weight, bias=None):
    if len(input) != 4 or tuple(weight) != (input[1],):
        raise ValueError(f"channel_scale: weight must have shape ({input[1]},), got {weight}")
    return types.SimpleNamespace(out_shape=tuple(input))


def _forward(input, weight):
    return input * weight.view(1, -1, 1, 1)


def _backward(grad, input, weight):
    return grad * weight.view(1, -1, 1, 1), (grad * input).sum((0, 2, 3))


@pytest.fixture(scope="module")
def channel_scale():
    contract = types.ModuleType("torch_impl.native.channel_scale_example")
    contract.forward, contract.backward = _forward, _backward
    sys.modules[contract.__name__] = contract  # where impl="native" looks for it
    return contract_op(
        "channel_scale_example", "channel_scale_example",
        "Tensor input, Tensor weight, Tensor? bias, str impl",
        check=_signature, contract_args=lambda sig: (), grads=("input", "weight"),
    )


def _args(batch=2):
    g = torch.Generator().manual_seed(batch)
    return (torch.rand(batch, 3, 4, 5, generator=g, dtype=F64),
            torch.rand(3, generator=g, dtype=F64), torch.rand(3, generator=g, dtype=F64))


def _expected(x, w, b):
    return x * w.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)


def test_a_new_op_passes_opcheck_and_gradcheck(channel_scale):
    x, w, b = (t.requires_grad_() for t in _args())
    result = torch.library.opcheck(torch.ops.crossconv.channel_scale_example.default,
                                   (x, w, b, "native"))
    assert set(result.values()) == {"SUCCESS"}, result
    assert torch.autograd.gradcheck(lambda *t: channel_scale(*t, "native"), (x, w, b))
    with pytest.raises(ValueError, match="weight must have shape"):
        channel_scale(x, w[:2], None, "native")


def test_a_new_op_works_under_torch_func_and_export(channel_scale):
    x, w, b = _args()
    f = lambda x, w, b: channel_scale(x, w, b, "native")  # noqa: E731
    grads = torch.func.grad(lambda *a: f(*a).sum(), argnums=(0, 1, 2))(x, w, b)
    torch.testing.assert_close(grads[1], x.sum((0, 2, 3)))
    torch.testing.assert_close(grads[2], torch.full((3,), 40.0, dtype=F64))
    xs, ws = torch.stack([x, 2 * x]), torch.stack([w, 3 * w])
    torch.testing.assert_close(torch.func.vmap(f, in_dims=(0, 0, None))(xs, ws, b),
                               torch.stack([_expected(x, w, b), _expected(2 * x, 3 * w, b)]))

    class Model(torch.nn.Module):
        def forward(self, x, w, b):
            return f(x, w, b)

    program = torch.export.export(Model(), (x, w, b),
                                  dynamic_shapes=({0: Dim("batch")}, None, None))
    x3 = _args(batch=3)[0]
    torch.testing.assert_close(program.module()(x3, w, b), _expected(x3, w, b))
