"""The kernels' forward and backward tied together with ``jax.custom_vjp`` here, in the
test (``jax_impl`` does the same for its public ops): ``jax.vjp`` and ``jax.grad`` under
``jax.jit``, and ``jax.vmap`` of the glued function, against the reference."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pallas_contract import FAST_COMPILE

from crossconv.compare import assert_close, assert_nontrivial
from crossconv.registry import OPS
from jax_impl.kernels import conv2_5d, deform, pool, tanprod
from reference.conv2_5d import conv2_5d_signature
from reference.deform import deform_conv2d_signature
from reference.pool import avg_pool2d_signature, max_pool2d_signature
from reference.tanprod import tanprod_conv2d_signature


def _glue(forward, backward):
    """``jax.custom_vjp`` of ``forward(*arrays) -> (out, residuals)``; ``backward(g,
    residuals)`` returns one cotangent per array."""

    @jax.custom_vjp
    def op(*arrays):
        return forward(*arrays)[0]

    op.defvjp(forward, lambda res, g: tuple(backward(g, res)))
    return op


def _keep_inputs(forward):
    return lambda *arrays: (forward(*arrays), arrays)


def _tanprod(geometry):
    return _glue(_keep_inputs(lambda x, w: tanprod.forward(x, w, geometry)),
                 lambda g, res: tanprod.backward(g, *res, geometry))


def _conv2_5d(sig):
    args = (sig.geometry, sig.focal, sig.pixel_size)

    def backward(g, res):
        gi, gw = conv2_5d.backward(g, *res, *args)
        return gi, jnp.zeros_like(res[1]), gw  # depth: not differentiable

    return _glue(_keep_inputs(lambda x, d, w: conv2_5d.forward(x, d, w, *args)), backward)


def _deform(sig):
    args = (sig.geometry, sig.groups, sig.offset_groups)
    return _glue(_keep_inputs(lambda x, o, w, m: deform.forward(x, o, w, m, *args)),
                 lambda g, res: deform.backward(g, *res, *args))


def _max_pool(geometry):
    return _glue(lambda x: pool.max_forward(x, geometry),  # the indices are the residual
                 lambda g, indices: (pool.max_backward(g, indices, geometry),))


def _avg_pool(geometry, *options):
    return _glue(_keep_inputs(lambda x: pool.avg_forward(x, geometry, *options)),
                 lambda g, res: (pool.avg_backward(g, geometry, *options),))


def _cases():
    """op -> (glued function, NumPy arguments by name, reference keyword parameters)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.6, 0.6, (2, 3, 5, 6))
    t_w = rng.uniform(-0.6, 0.6, (4, 3, 2, 3))
    t_params = dict(stride=(1, 2), padding=1, dilation=(2, 1))
    depth = rng.integers(1, 12, (2, 1, 5, 6)) * 0.25
    c_w = rng.standard_normal((3, 4, 3, 3, 3))
    c_params = dict(stride=1, padding=1, dilation=1, focal=2.0, pixel_size=1.0)
    offset = rng.uniform(-1.5, 1.5, (2, 2 * 3 * 9, 5, 6))
    mask = rng.uniform(0, 1, (2, 3 * 9, 5, 6))
    d_w = rng.standard_normal((4, 3, 3, 3))
    d_params = dict(stride=1, padding=1, dilation=1)
    m_params = dict(kernel_size=2, stride=1, padding=1, dilation=1, ceil_mode=False)
    a_params = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                    count_include_pad=False, divisor_override=None)
    c_sig = conv2_5d_signature(x.shape, depth.shape, c_w.shape, None, **c_params)
    d_sig = deform_conv2d_signature(x.shape, offset.shape, d_w.shape, None, mask=mask.shape,
                                    **d_params)
    return {
        "tanprod_conv2d": (
            _tanprod(tanprod_conv2d_signature(x.shape, t_w.shape, None, **t_params).geometry),
            dict(input=x, weight=t_w), t_params),
        "conv2_5d": (_conv2_5d(c_sig), dict(input=x, depth=depth, weight=c_w), c_params),
        "deform_conv2d": (_deform(d_sig), dict(input=x, offset=offset, weight=d_w, mask=mask),
                          d_params),
        "max_pool2d": (_max_pool(max_pool2d_signature(x.shape, **m_params)),
                       dict(input=x), m_params),
        "avg_pool2d": (_avg_pool(avg_pool2d_signature(x.shape, **a_params), False, None),
                       dict(input=x), a_params),
    }


CASES = _cases()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op_name", list(CASES))
def test_jax_vjp_and_grad_of_the_glued_kernels_match_the_reference(op_name, dtype):
    fn, arrays, params = CASES[op_name]
    op = OPS[op_name]
    expected = op.reference(**arrays, **params)
    ct = np.random.default_rng(1).standard_normal(expected.shape).astype(dtype)
    expected_grads = op.reference_vjp(ct, **arrays, **params)
    names = list(arrays)
    wrt = [i for i, name in enumerate(names) if name in expected_grads]

    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def vjp_and_grad(args, ct):
        out, pullback = jax.vjp(fn, *args)
        loss = lambda *a: jnp.vdot(fn(*a), ct)  # noqa: E731
        return out, pullback(ct), jax.grad(loss, argnums=wrt)(*args)

    with jax.enable_x64(dtype == "float64"):
        out, via_vjp, via_grad = vjp_and_grad([jnp.asarray(a, dtype) for a in arrays.values()],
                                              jnp.asarray(ct))
    tol = op.tolerance[dtype]
    assert_close(np.asarray(out), expected, tol, f"{op_name} forward")
    for k, i in enumerate(wrt):
        name = names[i]
        what = f"{op_name} d/d{name}"
        assert_nontrivial(expected_grads[name], what)
        assert_close(np.asarray(via_vjp[i]), expected_grads[name], op.grad_tolerance[dtype],
                     f"{what} (jax.vjp)")
        assert_close(np.asarray(via_grad[k]), expected_grads[name], op.grad_tolerance[dtype],
                     f"{what} (jax.grad)")


@pytest.mark.parametrize("op_name", ["tanprod_conv2d", "deform_conv2d", "max_pool2d"])
def test_vmap_of_the_glued_kernels_matches_the_reference_per_sample(op_name):
    fn, arrays, params = CASES[op_name]
    op = OPS[op_name]
    shared = {"weight"}  # the same weight for every sample
    samples = [arrays, {n: a if n in shared else a[::-1] * 0.5 for n, a in arrays.items()}]
    ct_shape = op.reference(**arrays, **params).shape
    cts = np.random.default_rng(2).standard_normal((2, *ct_shape)).astype(np.float32)
    in_axes = tuple(None if n in shared else 0 for n in arrays)

    def one(args, ct):
        out, pullback = jax.vjp(fn, *args)
        return out, pullback(ct)

    stacked = [jnp.asarray(arrays[n] if n in shared else np.stack([s[n] for s in samples]),
                           jnp.float32) for n in arrays]
    out, grads = jax.jit(jax.vmap(one, in_axes=(list(in_axes), 0)),
                         compiler_options=FAST_COMPILE)(stacked, jnp.asarray(cts))
    expected = [op.reference_vjp(cts[b], **samples[b], **params) for b in range(2)]
    for b in range(2):
        what = f"{op_name} under vmap, sample {b}"
        assert_close(np.asarray(out[b]), op.reference(**samples[b], **params),
                     op.tolerance["float32"], what)
        for i, name in enumerate(arrays):  # per-sample cotangents, the weight's included
            if name in expected[b]:
                assert_close(np.asarray(grads[i][b]), expected[b][name],
                             op.grad_tolerance["float32"], f"{what}, d/d{name}")
