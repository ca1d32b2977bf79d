"""``torch.func`` (``grad``, ``vjp``, ``jacrev``, ``vmap``) through every torch_impl op,
against the reference, and ``torch.jit.trace`` without warnings.

The custom ops run as ``autograd.Function`` s with ``setup_context`` (functorch refuses the
ones ``register_autograd`` generates) and have vmap rules: torch's slow generic fallback,
which warns, is an error here."""

import warnings

import pytest
import torch

import torch_impl
from tests.torch.op_calls import CALLS, CUSTOM_OPS, TRITON_POOLS

pytestmark = pytest.mark.filterwarnings("error:There is a performance drop:UserWarning")

ALL = CALLS + TRITON_POOLS
TOL = {"rtol": 1e-10, "atol": 1e-12}


@pytest.fixture
def stand_ins(request):
    """The stand-in pooling kernels for the ``impl="triton"`` calls."""
    if request.node.callspec.params["call"].impl == "triton":
        request.getfixturevalue("kernels")


def _close(actual, expected):
    assert expected.abs().max() > 0
    torch.testing.assert_close(actual, expected, **TOL)


@pytest.mark.parametrize("call", ALL, ids=[c.id for c in ALL])
def test_grad_and_vjp_match_the_reference(call, stand_ins):
    tensors = call.tensors()
    f, names, args = call.differentiable_call(tensors)
    out = f(*args)
    _close(out, call.reference(**tensors))
    cotangent = torch.randn(out.shape, dtype=out.dtype)
    expected = call.reference_vjp(cotangent, **tensors)

    grads = torch.func.grad(lambda *a: (f(*a) * cotangent).sum(),
                            argnums=tuple(range(len(args))))(*args)
    _, vjp_fn = torch.func.vjp(f, *args)
    for name, g, v in zip(names, grads, vjp_fn(cotangent)):
        _close(g, expected[name])
        _close(v, expected[name])


@pytest.mark.parametrize("call", ALL, ids=[c.id for c in ALL])
def test_jacrev_matches_the_reference(call, stand_ins):
    """The Jacobian of every differentiable argument, contracted with a cotangent, is the
    reference VJP (jacrev is vmap over the backward, so this runs the backward vmap rule)."""
    tensors = call.tensors(batch=1)
    f, names, args = call.differentiable_call(tensors)
    jacobians = torch.func.jacrev(f, argnums=tuple(range(len(args))))(*args)
    out = f(*args)
    cotangent = torch.randn(out.shape, dtype=out.dtype)
    expected = call.reference_vjp(cotangent, **tensors)
    for name, jacobian in zip(names, jacobians):
        contracted = torch.tensordot(cotangent, jacobian, dims=out.dim())
        _close(contracted, expected[name])


@pytest.mark.parametrize("call", ALL, ids=[c.id for c in ALL])
def test_vmap_over_samples_and_over_weights(call, stand_ins):
    """vmap over the per-sample tensors (folded into the batch) and over everything
    (weights too: one call per slice); every slice is the reference's result."""
    slices = [call.tensors(seed=s) for s in (0, 1, 2)]
    names = list(slices[0])
    stacked = [torch.stack([s[n] for s in slices]) for n in names]
    for vmapped in (set(call.per_sample), set(names)):
        in_dims = tuple(0 if n in vmapped else None for n in names)
        given = [t if n in vmapped else slices[0][n] for n, t in zip(names, stacked)]
        out = torch.func.vmap(lambda *a: call.torch(**dict(zip(names, a))),
                              in_dims=in_dims)(*given)
        for b, s in enumerate(slices):
            expected = {n: s[n] if n in vmapped else slices[0][n] for n in names}
            _close(out[b], call.reference(**expected))


@pytest.mark.parametrize("call", ALL, ids=[c.id for c in ALL])
def test_per_sample_gradients(call, stand_ins):
    """``vmap(grad)`` over the samples of a batch: each sample's gradient of every
    differentiable argument is the reference VJP of that sample alone."""
    tensors = call.tensors(batch=3)
    names = list(tensors)
    wrt = [i for i, n in enumerate(names) if n in call.differentiable]

    def loss(*a):
        a = [x.unsqueeze(0) if n in call.per_sample else x for n, x in zip(names, a)]
        return call.torch(**dict(zip(names, a))).square().sum()

    grads = torch.func.vmap(torch.func.grad(loss, argnums=tuple(wrt)),
                            in_dims=tuple(0 if n in call.per_sample else None for n in names))(
        *tensors.values())
    for n in range(3):
        sample = {k: v[n : n + 1] if k in call.per_sample else v for k, v in tensors.items()}
        expected = call.reference_vjp(2 * call.torch(**sample), **sample)
        for i, g in zip(wrt, grads):
            name = names[i]
            _close(g[n].unsqueeze(0) if name in call.per_sample else g[n], expected[name])


@pytest.mark.parametrize("op", CUSTOM_OPS)
def test_double_backward_is_a_clear_error(op):
    call = next(c for c in CALLS if c.op == op)
    tensors = call.tensors()
    x = tensors["input"].requires_grad_()
    (g,) = torch.autograd.grad(call.torch(**tensors).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match=f"{op}: double backward is not supported"):
        g.sum().backward()
    f, _, args = call.differentiable_call(call.tensors())
    with pytest.raises(RuntimeError, match="double backward is not supported"):
        torch.func.jacrev(torch.func.grad(lambda x: f(x, *args[1:]).sum()))(args[0])


@pytest.mark.parametrize("call", CALLS, ids=[c.id for c in CALLS])
def test_jit_trace_without_warnings(call):
    """torch's own deprecation notice apart, tracing warns of nothing: the checks read
    sizes as ints with the tracer paused (it would hand them out as traced tensors)."""
    tensors = call.tensors()
    names = list(tensors)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = torch.jit.trace(lambda *a: call.torch(**dict(zip(names, a))),
                                 tuple(tensors.values()))
    ours = [w for w in caught if "torch.jit.trace` is deprecated" not in str(w.message)]
    assert not ours, [f"{w.filename}:{w.lineno}: {w.message}" for w in ours]
    _close(traced(*tensors.values()), call.reference(**tensors))


def test_the_modules_work_under_torch_func():
    """``functional_call`` + ``grad``: the usual torch.func recipe for a module's
    parameters."""
    layer = torch_impl.nn.DeformConv2d(3, 4, 3, padding=1, dtype=torch.float64)
    x = torch.rand(2, 3, 5, 5, dtype=torch.float64)
    offset = torch.randn(2, 18, 5, 5, dtype=torch.float64)
    params = dict(layer.named_parameters())
    grads = torch.func.grad(lambda p: torch.func.functional_call(layer, p, (x, offset)).sum())(
        params)
    layer(x, offset).sum().backward()
    for name, p in layer.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-12, atol=1e-12)
