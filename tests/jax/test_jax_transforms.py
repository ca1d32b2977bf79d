"""Every op under JAX's transformations: jit, vmap, grad and their compositions.

Each result is compared with the same op called without the transformation (a loop for
vmap) and, so that two wrong answers cannot agree, with the float64 reference.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax_cases import NONDIFFERENTIABLE, OPS, case, quick_jit

import jax_impl
import reference
from crossconv.cases import as_outputs
from crossconv.compare import Tolerance, assert_close
from crossconv.registry import OPS as REGISTRY

SAME = Tolerance(rtol=1e-6, atol=1e-6)  # one float32 program against another


def _fn(c):
    """The op with its static arguments bound: tensors in, first output (and indices) out."""
    return functools.partial(getattr(jax_impl, c.op), **c.params)


def _tensors(c):
    return {k: v for k, v in c.tensors.items() if v is not None}


def _differentiable(c):
    return [k for k in REGISTRY[c.op].differentiable if c.tensors.get(k) is not None]


def _loss(c):
    """Scalar function of the differentiable tensors: a fixed random projection of the output."""
    rng = np.random.default_rng(7)
    out_shape = as_outputs(c.call(reference.__dict__[c.op]))[0].shape
    projection = rng.standard_normal(out_shape).astype(c.dtype)
    fixed = {k: v for k, v in _tensors(c).items() if k not in _differentiable(c)}

    def loss(diff):
        return jnp.sum(as_outputs(_fn(c)(**fixed, **diff))[0] * projection)

    return loss, projection


@pytest.mark.parametrize("op", OPS)
def test_jit_equals_eager_and_the_reference(op):
    """Called eagerly (the op's own jit, default XLA settings) and inside a user's jit."""
    c = case(op)
    eager = as_outputs(_fn(c)(**_tensors(c)))
    jitted = as_outputs(jax.jit(_fn(c))(**_tensors(c)))
    expected = as_outputs(c.call(reference.__dict__[op]))
    assert eager[0].dtype == jitted[0].dtype == np.float32
    assert_close(jitted[0], eager[0], SAME, f"{op}: jit vs eager")
    assert_close(eager[0], expected[0], REGISTRY[op].tolerance["float32"], f"{op} vs reference")
    for a, b, e in zip(eager[1:], jitted[1:], expected[1:]):  # max_pool2d's indices
        np.testing.assert_array_equal(a, e)
        np.testing.assert_array_equal(b, e)


@pytest.mark.parametrize("op", OPS)
def test_grad_under_jit_equals_eager_grad_and_the_reference_vjp(op):
    c = case(op)
    loss, projection = _loss(c)
    diff = {k: jnp.asarray(c.tensors[k]) for k in _differentiable(c)}
    eager = jax.grad(loss)(diff)
    jitted = jax.jit(jax.grad(loss))(diff)
    expected = c.call(lambda **kw: reference.__dict__[op + "_vjp"](projection, **kw))
    for name in diff:
        assert_close(jitted[name], eager[name], SAME, f"{op} d/d{name}: jit vs eager")
        assert_close(eager[name], expected[name], REGISTRY[op].grad_tolerance["float32"],
                     f"{op} d/d{name} vs reference")


def _batched_calls(c):
    """(argument name or "all", in_axes, stacked tensors) for a batch of 3 variants."""
    rng = np.random.default_rng(3)
    tensors = _tensors(c)
    variants = {k: np.stack([v, v[::-1].copy() if v.ndim else v, rng.permutation(v.ravel())
                             .reshape(v.shape)]) for k, v in tensors.items()}
    if c.op == "conv2_5d":  # keep the depth maps positive somewhere: bins stay open
        variants["depth"] = np.stack([tensors["depth"], np.abs(tensors["depth"]) + 0.5,
                                      tensors["depth"] * 2])
    for name in tensors:
        yield name, {k: 0 if k == name else None for k in tensors}, {
            k: variants[k] if k == name else v for k, v in tensors.items()}
    yield "all", {k: 0 for k in tensors}, variants


@pytest.mark.parametrize("op", OPS)
def test_vmap_over_any_argument_equals_a_loop(op):
    """vmap over a leading batch of one tensor argument (the others broadcast), then of
    all of them, against a Python loop of single calls."""
    c = case(op)
    fn = _fn(c)
    single = quick_jit(lambda kw: as_outputs(fn(**kw)))
    for name, in_axes, batched in _batched_calls(c):
        vmapped = quick_jit(jax.vmap(lambda kw: as_outputs(fn(**kw)), in_axes=(in_axes,)))(batched)
        for b in range(3):
            one = {k: v[b] if in_axes[k] == 0 else v for k, v in batched.items()}
            expected = single(one)
            for got, want in zip(vmapped, expected):
                assert_close(got[b], want, SAME, f"{op}: vmap over {name}, element {b}")


@pytest.mark.parametrize("op", OPS)
def test_vmap_of_grad_under_jit_equals_a_loop(op):
    """jit(vmap(grad)): per-example gradients of a batch, against one grad per example."""
    c = case(op)
    loss, _ = _loss(c)
    diff = {k: jnp.asarray(c.tensors[k]) for k in _differentiable(c)}
    batch = {k: jnp.stack([v, 2 * v, -v]) for k, v in diff.items()}
    if op == "tanprod_conv2d":  # keep |x + w| small: tan is steep near pi/2
        batch = {k: jnp.stack([v, 0.5 * v, -v]) for k, v in diff.items()}
    grads = quick_jit(jax.vmap(jax.grad(loss)))(batch)
    single = quick_jit(jax.grad(loss))
    for b in range(3):
        expected = single({k: v[b] for k, v in batch.items()})
        for name in diff:
            assert_close(grads[name][b], expected[name], SAME, f"{op} d/d{name}, element {b}")


@pytest.mark.parametrize("op", [op for op in OPS if op in NONDIFFERENTIABLE])
def test_nondifferentiable_arguments_get_zero_gradients(op):
    c = case(op)
    for name in NONDIFFERENTIABLE[op]:
        others = {k: v for k, v in _tensors(c).items() if k != name}

        def loss(value, name=name, others=others):
            return jnp.sum(as_outputs(_fn(c)(**others, **{name: value}))[0])

        grad = jax.grad(loss)(jnp.asarray(c.tensors[name]))
        assert grad.shape == c.tensors[name].shape and not np.any(np.asarray(grad))


def test_ops_compose_in_one_jitted_differentiated_function():
    """deform -> conv2_5d -> max pool -> avg pool -> tanprod -> conv2d, all in one jit(grad)."""
    rng = np.random.default_rng(0)
    f32 = lambda *shape, scale=1.0: jnp.asarray(rng.standard_normal(shape) * scale, jnp.float32)  # noqa: E731
    x, offset = f32(2, 4, 8, 8), f32(2, 18, 8, 8, scale=0.5)
    w_deform, w_25d = f32(4, 4, 3, 3, scale=0.2), f32(3, 4, 4, 3, 3, scale=0.2)
    depth = jnp.asarray(rng.uniform(1, 2, (2, 1, 8, 8)), jnp.float32)
    w_tan, w_conv = f32(2, 4, 1, 1, scale=0.1), f32(1, 2, 2, 2)

    def loss(x, w_deform, w_25d, w_tan, w_conv):
        y = jax_impl.deform_conv2d(x, offset, w_deform, padding=1)
        y = jax_impl.conv2_5d(y, depth, w_25d, padding=1)
        y = jax_impl.max_pool2d(y, 2)
        y = jax_impl.avg_pool2d(jnp.tanh(y), 2)
        y = jax_impl.tanprod_conv2d(0.1 * y, w_tan)
        return jnp.sum(jax_impl.conv2d(y, w_conv) ** 2)

    args = (x, w_deform, w_25d, w_tan, w_conv)
    jitted = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3, 4)))(*args)
    eager = jax.value_and_grad(loss, argnums=(0, 1, 2, 3, 4))(*args)
    assert np.isfinite(jitted[0]) and jitted[0] > 0
    assert_close(jitted[0], eager[0], SAME, "loss: jit vs eager")
    for a, b in zip(jitted[1], eager[1]):
        assert np.any(np.asarray(b) != 0)
        assert_close(a, b, SAME, "gradient: jit vs eager")
