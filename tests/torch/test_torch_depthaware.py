"""torch_impl's depth-aware ops (``impl="native"``) and modules against the float64
reference (docs/depthaware.md): boundary cases (even kernels, centres outside the image,
ties where sign(0) = 0 decides the depth gradient, NaN and infinite depth) in float32 and
float64, forward and every gradient (depth included); the chunked column work split at
every size; the custom ops under opcheck, gradcheck, torch.func and torch.export with a
dynamic batch; the modules; bad arguments. (Drawn cases, goldens and the empty batch:
the generated tests, tests/test_parity.py and tests/tool.)"""

import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from torch.export import Dim

import reference
import torch_impl
from crossconv.cases import Case
from crossconv.cases.depthaware import (
    depthaware_avg_pool2d_boundary,
    depthaware_conv2d_boundary,
    depthaware_conv2d_cases,
)
from crossconv.compare import assert_close
from crossconv.registry import OPS
from reference.common import conv_geometry, pool_geometry
from reference.depthaware import conv_centres, pool_centres
from tests.torch.op_calls import OpCall
from torch_impl import common
from torch_impl import geometry as tg
from torch_impl import nn as tnn
from torch_impl.native import depthaware as native

CONV, POOL = "depthaware_conv2d", "depthaware_avg_pool2d"
F64 = torch.float64
BOUNDARY = depthaware_conv2d_boundary() + depthaware_avg_pool2d_boundary()

CALLS = [
    OpCall(CONV, {"input": ((2, 3, 6, 5), -1, 1), "depth": ((2, 1, 6, 5), 0.5, 3.0),
                  "weight": ((4, 3, 3, 2), -1, 1), "bias": ((4,), -1, 1)},
           {"stride": (1, 2), "padding": 1, "alpha": 1.5},
           differentiable=("input", "depth", "weight", "bias"), per_sample=("input", "depth")),
    OpCall(POOL, {"input": ((2, 3, 6, 5), -1, 1), "depth": ((2, 1, 6, 5), 0.5, 3.0)},
           {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False},
           differentiable=("input", "depth"), per_sample=("input", "depth")),
]
IDS = [c.op for c in CALLS]


def check(case: Case, impl: str = "native", dtype=None):
    """Forward and every gradient of ``case`` against the reference and its VJP; returns
    the torch gradients."""
    tol = OPS[case.op].tolerance[np.dtype(case.dtype).name]
    tensors = {k: None if v is None else torch.from_numpy(v.copy()).requires_grad_()
               for k, v in case.tensors.items()}
    out = getattr(torch_impl, case.op)(**tensors, **case.params, impl=impl)
    what = f"torch_impl {impl} {case.describe()}"
    with np.errstate(all="ignore"):
        expected = case.call(getattr(reference, case.op))
    assert out.dtype == tensors["input"].dtype
    assert_close(out.detach().numpy(), expected, tol, what)
    cotangent = np.random.default_rng(case.seed + 1).standard_normal(expected.shape)
    out.backward(torch.from_numpy(cotangent).to(out.dtype))
    with np.errstate(all="ignore"):
        grads = case.call(lambda **kw: getattr(reference, case.op + "_vjp")(cotangent, **kw))
    assert set(grads) == {k for k, t in tensors.items() if t is not None}
    for name, g in grads.items():
        g = g.astype(case.dtype)
        assert_close(tensors[name].grad.numpy(), g, tol, f"{what}, d/d{name}")
    return {k: t.grad for k, t in tensors.items() if t is not None}


# ----------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("g", [
    conv_geometry("op", (2, 3, 7, 6), (3, 2), (2, 1), (2, 1), (2, 1)),
    conv_geometry("op", (1, 1, 5, 8), (4, 4), 1, 2, 1),
    pool_geometry("op", (1, 1, 7, 6), (3, 2), (2, 1), 1, 1, False),
])
def test_geometry_helpers_read_what_the_reference_reads(g):
    """The taps view and its adjoint, the in-image mask and both centre rules of
    torch_impl.geometry against reference.common.Geometry and reference.depthaware."""
    x = torch.rand(2, 3, *g.in_size, dtype=F64)
    xpad = tg.pad(x, g)
    taps = tg.taps(xpad, g)
    grad = torch.zeros_like(xpad)
    values = torch.rand(taps.shape, dtype=F64)
    tg.add_to_taps(grad, values, g)
    expected = np.zeros(xpad.shape)
    for i, j in g.taps():
        np.testing.assert_array_equal(taps[..., i, j, :, :].numpy(), g.tap(xpad.numpy(), i, j))
        g.add_to_tap(expected, i, j, values[..., i, j, :, :].numpy())
        np.testing.assert_array_equal(tg.in_input(g)[i, j].numpy(), g.in_input(i, j))
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-15)
    for ours, theirs in ((tg.conv_centres(g), conv_centres(g)), (tg.pool_centres(g),
                                                                 pool_centres(g))):
        for axis in (0, 1):
            np.testing.assert_array_equal(ours[axis].numpy(), theirs[axis])
    flat, inside = tg.centre_cells(g, tg.conv_centres(g))
    sums = torch.zeros(2, *g.in_size, dtype=F64)
    tg.add_to_centres(sums, torch.ones(2, *g.out_size, dtype=F64), g, tg.conv_centres(g))
    assert sums.sum() == 2 * inside.sum()


# ----------------------------------------------------------------------------- the reference


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("boundary", BOUNDARY, ids=[b.name for b in BOUNDARY])
def test_boundary_cases(boundary, dtype):
    case = boundary.case
    tensors = {k: None if v is None else v.astype(dtype) for k, v in case.tensors.items()}
    check(Case(case.op, tensors, case.params, case.seed))


@pytest.mark.parametrize("chunk, block", [(1, 1), (40, 100), (300, 700)])
@pytest.mark.parametrize("op", [CONV, POOL])
def test_every_chunk_and_block_size(op, chunk, block, monkeypatch):
    """Chunks of one row of one sample, several rows, several whole samples; similarity
    blocks of one row up to several samples."""
    monkeypatch.setattr(native, "CHUNK", chunk)
    monkeypatch.setattr(native, "BLOCK", block)

    @settings(max_examples=8)
    @given(OPS[op].cases(max_batch=3, dtypes=("float64",)))
    def run(case):
        check(case)

    run()


@pytest.fixture
def conv_tasks_on_two_threads(monkeypatch):
    """The convolution's worker path: one sample per task, rows in chunks of one or two,
    on two threads."""
    monkeypatch.setattr(native, "TASK", 1)
    monkeypatch.setattr(native, "CHUNK", 60)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_conv_tasks_on_worker_threads_match_the_reference(conv_tasks_on_two_threads):
    @settings(max_examples=12)
    @given(depthaware_conv2d_cases(max_batch=4, max_channels=3, nonfinite=True))
    def run(case):
        check(case)

    run()


def test_conv_tasks_on_worker_threads_give_the_one_thread_result_bitwise(
        conv_tasks_on_two_threads):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 3, 7, 6, generator=g, requires_grad=True)
    depth = (torch.rand(5, 1, 7, 6, generator=g) * 3).requires_grad_()
    w = torch.randn(4, 3, 3, 3, generator=g, requires_grad=True)

    def run(threads):
        torch.set_num_threads(threads)
        for t in (x, depth, w):
            t.grad = None
        out = torch_impl.depthaware_conv2d(x, depth, w, padding=1, impl="native")
        out.backward(torch.cos(out))
        return [out.detach()] + [t.grad for t in (x, depth, w)]

    one, two, again = run(1), run(2), run(2)
    assert all(torch.equal(a, b) and torch.equal(b, c) for a, b, c in zip(one, two, again))


@pytest.mark.parametrize("op", [CONV, POOL])
def test_constant_depth_and_alpha_zero_are_the_plain_op(op):
    """alpha = 0 (NaN and inf depths included) and a constant finite depth: torch's own
    conv2d / avg_pool2d, and a zero depth gradient."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 6, 7, generator=g, dtype=F64)
    w = torch.randn(4, 3, 3, 2, generator=g, dtype=F64)
    wild = torch.rand(2, 1, 6, 7, generator=g, dtype=F64)
    wild[0, 0, 2, 2], wild[1, 0, 4, 1] = float("nan"), float("inf")
    for depth, alpha in ((torch.full((2, 1, 6, 7), 2.5, dtype=F64), 3.0), (wild, 0.0)):
        depth = depth.requires_grad_()
        if op == CONV:
            out = torch_impl.depthaware_conv2d(x, depth, w, padding=(2, 1), dilation=(1, 2),
                                               alpha=alpha)
            expected = F.conv2d(x, w, padding=(2, 1), dilation=(1, 2))
        else:
            out = torch_impl.depthaware_avg_pool2d(x, depth, 3, 2, 1, alpha=alpha,
                                                   count_include_pad=True)
            expected = F.avg_pool2d(x, 3, 2, 1, count_include_pad=True)
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
        out.square().sum().backward()
        assert torch.equal(depth.grad, torch.zeros_like(depth))


# ----------------------------------------------------------------------------- the custom ops


def _op_args(call):
    """The forward custom op's arguments and the backward op's (no bias there)."""
    t = call.tensors()
    for name in call.differentiable:
        t[name].requires_grad_()
    if call.op == CONV:
        statics = ([1, 2], [1, 1], [1, 1], 1.5, "native")
        return ((t["input"], t["depth"], t["weight"], t["bias"], *statics),
                (t["input"], t["depth"], t["weight"], *statics))
    statics = ([3, 3], [2, 2], [1, 1], 1.0, False, "native")
    return (t["input"], t["depth"], *statics), (t["input"], t["depth"], *statics)


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_opcheck(call):
    op = getattr(torch.ops.crossconv, call.op)
    args, backward_args = _op_args(call)
    result = torch.library.opcheck(op.default, args)
    assert set(result.values()) == {"SUCCESS"}, result
    out = op.default(*args)
    backward_args = [a.detach() if isinstance(a, torch.Tensor) else a for a in backward_args]
    result = torch.library.opcheck(getattr(torch.ops.crossconv, call.op + "_backward").default,
                                   (torch.randn(out.shape, dtype=F64), *backward_args))
    assert set(result.values()) == {"SUCCESS"}, result


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_gradcheck(call):
    tensors = call.tensors()
    f, _, args = call.differentiable_call(tensors)
    args = [a.requires_grad_() for a in args]
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-6, rtol=1e-5)


def _close(actual, expected):
    assert expected.abs().max() > 0
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_torch_func_grad_vjp_and_vmap(call):
    tensors = call.tensors()
    f, names, args = call.differentiable_call(tensors)
    out = f(*args)
    cotangent = torch.randn(out.shape, dtype=F64)
    expected = call.reference_vjp(cotangent, **tensors)
    grads = torch.func.grad(lambda *a: (f(*a) * cotangent).sum(),
                            argnums=tuple(range(len(args))))(*args)
    _, vjp_fn = torch.func.vjp(f, *args)
    for name, g, v in zip(names, grads, vjp_fn(cotangent)):
        _close(g, expected[name])
        _close(v, expected[name])
    # vmap over the samples (folded into the batch) and over everything (weights too)
    slices = [call.tensors(seed=s) for s in (0, 1)]
    names = list(slices[0])
    stacked = [torch.stack([s[n] for s in slices]) for n in names]
    for vmapped in (set(call.per_sample), set(names)):
        in_dims = tuple(0 if n in vmapped else None for n in names)
        given_ = [t if n in vmapped else slices[0][n] for n, t in zip(names, stacked)]
        result = torch.func.vmap(lambda *a: call.torch(**dict(zip(names, a))),
                                 in_dims=in_dims)(*given_)
        for b, s in enumerate(slices):
            _close(result[b], call.reference(**{n: s[n] if n in vmapped else slices[0][n]
                                                for n in names}))


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_per_sample_gradients(call):
    tensors = call.tensors(batch=2)
    names = list(tensors)
    wrt = tuple(i for i, n in enumerate(names) if n in call.differentiable)

    def loss(*a):
        a = [x.unsqueeze(0) if n in call.per_sample else x for n, x in zip(names, a)]
        return call.torch(**dict(zip(names, a))).square().sum()

    grads = torch.func.vmap(torch.func.grad(loss, argnums=wrt),
                            in_dims=tuple(0 if n in call.per_sample else None for n in names))(
        *tensors.values())
    for n in range(2):
        sample = {k: v[n : n + 1] if k in call.per_sample else v for k, v in tensors.items()}
        expected = call.reference_vjp(2 * call.torch(**sample), **sample)
        for i, g in zip(wrt, grads):
            name = names[i]
            _close(g[n].unsqueeze(0) if name in call.per_sample else g[n], expected[name])


class _Call(torch.nn.Module):
    def __init__(self, call):
        super().__init__()
        self.call, self.names = call, list(call.shapes)

    def forward(self, *tensors):
        return self.call.torch(**dict(zip(self.names, tensors)))


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_export_keeps_the_batch_dynamic(call):
    module = _Call(call)
    batch = Dim("batch")
    dynamic = (tuple({0: batch} if n in call.per_sample else None for n in module.names),)
    program = torch.export.export(module, tuple(call.tensors(batch=2).values()),
                                  dynamic_shapes=dynamic)
    assert getattr(torch.ops.crossconv, call.op).default in {n.target for n in program.graph.nodes}
    for size in (3, 1):
        tensors = call.tensors(batch=size, seed=size)
        torch.testing.assert_close(program.module()(*tensors.values()),
                                   call.reference(**tensors), rtol=1e-12, atol=1e-12)


def test_impl_triton_reaches_the_kernel_module(monkeypatch):
    """``impl="triton"`` calls ``torch_impl.kernels.depthaware``'s contract functions (a
    stand-in recording them here; tests/triton runs the real kernels)."""
    calls = []
    stand_in = types.ModuleType("stand-in depthaware kernels")
    for name in ("conv_forward", "conv_backward", "pool_forward", "pool_backward"):
        def record(*args, name=name):
            calls.append(name)
            assert all(a.is_contiguous() for a in args if isinstance(a, torch.Tensor))
            return getattr(native, name)(*args)
        setattr(stand_in, name, record)
    monkeypatch.setitem(sys.modules, "torch_impl.kernels.depthaware", stand_in)
    common._kernel_module.cache_clear()
    try:
        for call in CALLS:
            tensors = call.tensors()
            for name in call.differentiable:
                tensors[name].requires_grad_()
            out = getattr(torch_impl, call.op)(**tensors, **call.params, impl="triton")
            _close(out.detach(), call.reference(**tensors))
            out.sum().backward()
    finally:
        common._kernel_module.cache_clear()
    assert calls == ["conv_forward", "conv_backward", "pool_forward", "pool_backward"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_low_precision_computes_in_float32(call, dtype):
    tensors = call.tensors()
    low = {k: v.to(dtype) for k, v in tensors.items()}
    out = call.torch(**low)
    assert out.dtype == dtype
    expected = call.reference(**{k: v.double() for k, v in low.items()})
    torch.testing.assert_close(out.double(), expected, rtol=1e-2, atol=1e-2)


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("alpha, error", [(-1.0, ValueError), (float("nan"), ValueError),
                                          (float("inf"), ValueError), (True, TypeError),
                                          ("1", TypeError)])
def test_alpha_must_be_a_finite_nonnegative_number(alpha, error):
    x, d = torch.rand(1, 2, 4, 4), torch.rand(1, 1, 4, 4)
    with pytest.raises(error, match="alpha"):
        torch_impl.depthaware_conv2d(x, d, torch.rand(3, 2, 3, 3), alpha=alpha)
    with pytest.raises(error, match="alpha"):
        torch_impl.depthaware_avg_pool2d(x, d, 2, alpha=alpha)
    with pytest.raises(error, match="alpha"):
        tnn.DepthAwareConv2d(2, 3, 3, alpha=alpha)
    with pytest.raises(error, match="alpha"):
        tnn.DepthAwareAvgPool2d(2, alpha=alpha)


def test_bad_tensors_are_named():
    x, w = torch.rand(2, 2, 4, 4), torch.rand(3, 2, 3, 3)
    with pytest.raises(ValueError, match="depth"):
        torch_impl.depthaware_conv2d(x, torch.rand(2, 1, 4, 5), w)
    with pytest.raises(ValueError, match="depth"):
        torch_impl.depthaware_avg_pool2d(x, torch.rand(1, 1, 4, 4), 2)
    with pytest.raises(TypeError, match="depth"):
        torch_impl.depthaware_conv2d(x, torch.rand(2, 1, 4, 4, dtype=F64), w)
    with pytest.raises(ValueError, match="channels"):
        torch_impl.depthaware_conv2d(x, torch.rand(2, 1, 4, 4), torch.rand(3, 1, 3, 3))
    with pytest.raises(ValueError, match="padding"):
        torch_impl.depthaware_avg_pool2d(x, torch.rand(2, 1, 4, 4), 2, padding=2)
    with pytest.raises(ValueError, match="impl"):
        torch_impl.depthaware_avg_pool2d(x, torch.rand(2, 1, 4, 4), 2, impl="cuda")


# ----------------------------------------------------------------------------- modules


def test_conv_module_is_an_nn_conv2d_with_depth():
    """Same parameters and initialisation as nn.Conv2d; with alpha = 0 the same output;
    alpha is a plain attribute; unbatched input; depth gets a gradient."""
    torch.manual_seed(5)
    layer = tnn.DepthAwareConv2d(3, 4, (3, 2), stride=(1, 2), padding=1, dilation=(2, 1),
                                 alpha=0.0, dtype=F64)
    torch.manual_seed(5)
    conv = torch.nn.Conv2d(3, 4, (3, 2), stride=(1, 2), padding=1, dilation=(2, 1), dtype=F64)
    assert dict(layer.named_parameters()).keys() == dict(conv.named_parameters()).keys()
    torch.testing.assert_close(layer.weight, conv.weight, rtol=0, atol=0)
    torch.testing.assert_close(layer.bias, conv.bias, rtol=0, atol=0)
    assert "alpha" not in layer.state_dict() and layer.alpha == 0.0
    x, depth = torch.rand(2, 3, 7, 6, dtype=F64), torch.rand(2, 1, 7, 6, dtype=F64)
    torch.testing.assert_close(layer(x, depth), conv(x), rtol=1e-12, atol=1e-12)
    layer.alpha = 2.0
    depth.requires_grad_()
    out = layer(x, depth)
    expected = reference.depthaware_conv2d(x.numpy(), depth.detach().numpy(),
                                           layer.weight.detach().numpy(),
                                           layer.bias.detach().numpy(), (1, 2), 1, (2, 1), 2.0)
    torch.testing.assert_close(out.detach(), torch.from_numpy(expected), rtol=1e-10, atol=1e-12)
    out.sum().backward()
    assert depth.grad.abs().max() > 0
    torch.testing.assert_close(layer(x[0], depth[0]), out[0], rtol=1e-12, atol=1e-12)
    assert "alpha=2.0" in repr(layer) and "bias=False" in repr(
        tnn.DepthAwareConv2d(1, 1, 3, bias=False))
    with pytest.raises(ValueError, match="in_channels"):
        tnn.DepthAwareConv2d(0, 1, 3)


def test_pool_module_is_an_nn_avg_pool2d_with_depth():
    pool = tnn.DepthAwareAvgPool2d(3, stride=2, padding=1, alpha=0.0, count_include_pad=False)
    x, depth = torch.rand(2, 3, 7, 6, dtype=F64), torch.rand(2, 1, 7, 6, dtype=F64)
    torch.testing.assert_close(pool(x, depth),
                               torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False)(x),
                               rtol=1e-12, atol=1e-12)
    pool.alpha = 1.0
    expected = reference.depthaware_avg_pool2d(x.numpy(), depth.numpy(), 3, 2, 1, 1.0, False)
    torch.testing.assert_close(pool(x, depth), torch.from_numpy(expected), rtol=1e-10,
                               atol=1e-12)
    torch.testing.assert_close(pool(x[1], depth[1]), pool(x, depth)[1], rtol=1e-12, atol=1e-12)
    assert tnn.DepthAwareAvgPool2d(2).stride == (2, 2)
    assert list(pool.parameters()) == []
    with pytest.raises(ValueError, match="padding"):
        tnn.DepthAwareAvgPool2d(2, padding=2)


def test_modules_export_with_a_dynamic_batch():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = tnn.DepthAwareConv2d(3, 4, 3, padding=1, dtype=F64)
            self.pool = tnn.DepthAwareAvgPool2d(2)

        def forward(self, x, depth):
            return self.pool(self.conv(x, depth), depth)

    net = Net().eval()
    batch = Dim("batch")
    program = torch.export.export(net, (torch.rand(2, 3, 6, 6, dtype=F64),
                                        torch.rand(2, 1, 6, 6, dtype=F64)),
                                  dynamic_shapes=({0: batch}, {0: batch}))
    x, depth = torch.rand(3, 3, 6, 6, dtype=F64), torch.rand(3, 1, 6, 6, dtype=F64)
    expected = net(x, depth)
    assert expected.abs().max() > 0
    torch.testing.assert_close(program.module()(x, depth), expected, rtol=1e-12, atol=1e-12)
