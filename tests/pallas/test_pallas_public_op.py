"""The Pallas kernels through the JAX backend's public ops (``impl="pallas"``): forward
with bias, every gradient with ``jax.grad`` under ``jax.jit``, and ``jax.vmap``, against
the reference.

The ops and their ``jax.custom_vjp`` live in ``jax_impl``;
each test skips, saying so, while ``jax_impl`` lacks the op or its ``impl`` argument.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_impl
from crossconv.compare import assert_close, assert_nontrivial
from crossconv.registry import OPS


def _public(name):
    fn = getattr(jax_impl, name, None)
    if fn is None:
        pytest.skip(f"jax_impl has no {name}")
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    if "impl" not in params:
        pytest.skip(f"jax_impl.{name} has no impl argument yet")
    return fn


def _cases():
    """op -> (tensor arguments by name, other keyword arguments)."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-0.6, 0.6, (2, 3, 5, 6))
    bias, bias6 = rng.standard_normal(4), rng.standard_normal(6)
    return {
        "tanprod_conv2d": (dict(input=x, weight=rng.uniform(-0.6, 0.6, (4, 3, 3, 2)), bias=bias),
                           dict(stride=(2, 1), padding=1, dilation=1)),
        "conv2_5d": (dict(input=x, depth=rng.integers(1, 12, (2, 1, 5, 6)) * 0.25,
                          weight=rng.standard_normal((3, 4, 3, 3, 3)), bias=bias),
                     dict(stride=1, padding=(1, 2), dilation=(1, 2), focal=2.0, pixel_size=1.0)),
        "deform_conv2d": (dict(input=x, offset=rng.uniform(-1.5, 1.5, (2, 2 * 3 * 9, 5, 6)),
                               weight=rng.standard_normal((6, 1, 3, 3)), bias=bias6,
                               mask=rng.uniform(0, 1, (2, 3 * 9, 5, 6))),
                          dict(stride=1, padding=1, dilation=1)),
        "max_pool2d": (dict(input=x), dict(kernel_size=3, stride=2, padding=1, dilation=1,
                                           ceil_mode=True)),
        "avg_pool2d": (dict(input=x), dict(kernel_size=(2, 3), stride=2, padding=1,
                                           ceil_mode=True, count_include_pad=False,
                                           divisor_override=None)),
    }


CASES = _cases()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op_name", list(CASES))
def test_public_op_with_impl_pallas_matches_the_reference_under_jit_and_grad(op_name, dtype):
    fn = _public(op_name)
    op = OPS[op_name]
    arrays, params = CASES[op_name]
    names = list(arrays)
    expected = op.reference(**arrays, **params)
    ct = np.random.default_rng(4).standard_normal(expected.shape)
    expected_grads = op.reference_vjp(ct, **arrays, **params)
    wrt = [i for i, name in enumerate(names) if name in expected_grads]

    def call(*a):
        return fn(**dict(zip(names, a)), **params, impl="pallas")

    with jax.enable_x64(dtype == "float64"):
        args = [jnp.asarray(a, dtype) for a in arrays.values()]
        out = jax.jit(call)(*args)
        grads = jax.jit(jax.grad(lambda *a: jnp.vdot(call(*a), jnp.asarray(ct, dtype)),
                                 argnums=wrt))(*args)
    assert out.dtype == jnp.dtype(dtype)
    assert_close(np.asarray(out), expected, op.tolerance[dtype], f"{op_name} forward")
    for k, i in enumerate(wrt):
        name = names[i]
        assert_nontrivial(expected_grads[name], f"{op_name} d/d{name}")
        assert_close(np.asarray(grads[k]), expected_grads[name], op.grad_tolerance[dtype],
                     f"{op_name} d/d{name}")


def test_public_max_pool_returns_the_kernel_indices():
    fn = _public("max_pool2d")
    arrays, params = CASES["max_pool2d"]
    out, indices = jax.jit(lambda x: fn(x, **params, return_indices=True, impl="pallas"))(
        jnp.asarray(arrays["input"], jnp.float32))
    expected, expected_indices = OPS["max_pool2d"].reference(
        **arrays, **params, return_indices=True)
    np.testing.assert_array_equal(np.asarray(indices), expected_indices)
    assert_close(np.asarray(out), expected, OPS["max_pool2d"].tolerance["float32"], "max_pool2d")


@pytest.mark.parametrize("op_name", list(CASES))
def test_public_op_with_impl_pallas_under_vmap(op_name):
    fn = _public(op_name)
    op = OPS[op_name]
    arrays, params = CASES[op_name]
    batched = [n for n in arrays if n not in ("weight", "bias")]
    samples = [arrays, {n: a if n not in batched else a[::-1] * 0.5 for n, a in arrays.items()}]
    names = list(arrays)

    def call(*a):
        return fn(**dict(zip(names, a)), **params, impl="pallas")

    in_axes = tuple(0 if n in batched else None for n in names)
    stacked = [jnp.asarray(np.stack([s[n] for s in samples]) if n in batched else arrays[n],
                           jnp.float32) for n in names]
    out = jax.jit(jax.vmap(call, in_axes=in_axes))(*stacked)
    for b, sample in enumerate(samples):
        assert_close(np.asarray(out[b]), op.reference(**sample, **params),
                     op.tolerance["float32"], f"{op_name} under vmap, sample {b}")
