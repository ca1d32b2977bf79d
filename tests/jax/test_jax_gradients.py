"""Gradients: jax.test_util.check_grads (first order, float64) on every op, and the cases
where the conventions matter (tanprod's zero factors, deform's borders, max pooling's
ties, NaNs and all -inf windows, where JAX's own pooling differs from torch)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from jax_cases import CUSTOM_VJP, OPS, case, quick_jit

import jax_impl
import reference
from crossconv.cases import as_outputs
from crossconv.compare import assert_close
from crossconv.registry import FP64
from crossconv.registry import OPS as REGISTRY


@pytest.fixture(autouse=True)
def x64():
    """Every test here is float64: the flag is on inside the test only."""
    with jax.enable_x64(True):
        yield


def _differentiable(c):
    return [k for k in REGISTRY[c.op].differentiable if c.tensors.get(k) is not None]


@pytest.mark.parametrize("op", OPS)
def test_check_grads(op):
    """Reverse mode on every op; forward mode too where the gradient is JAX's own (the
    custom-VJP ops support reverse mode only)."""
    c = case(op, np.float64, smooth=True)
    names = _differentiable(c)
    fixed = {k: v for k, v in c.tensors.items() if k not in names}
    fn = functools.partial(getattr(jax_impl, op), **fixed, **c.params)

    def f(*diff):
        return as_outputs(fn(**dict(zip(names, diff))))[0]

    modes = ("rev",) if op in CUSTOM_VJP else ("fwd", "rev")
    args = tuple(jnp.asarray(c.tensors[k]) for k in names)
    check_grads(jax.jit(f), args, order=1, modes=modes)


@pytest.mark.parametrize("op", [op for op in CUSTOM_VJP if op != "max_pool2d"])  # linear pieces
def test_second_order_reverse_mode_through_the_custom_vjps(op):
    """Not part of the contract (torchvision has no double backward), but the native
    backward is plain JAX code, so reverse-over-reverse differentiates it. A Hessian-vector
    product against central differences of the (checked) first-order gradient."""
    c = case(op, np.float64, smooth=True, seed=5)
    names = [n for n in _differentiable(c) if n != "bias"]  # bias enters linearly
    fixed = {k: v for k, v in c.tensors.items() if k not in names}
    fn = functools.partial(getattr(jax_impl, op), **fixed, **c.params)
    rng = np.random.default_rng(6)
    diff = {k: jnp.asarray(c.tensors[k]) for k in names}
    projection = jnp.asarray(rng.standard_normal(as_outputs(fn(**diff))[0].shape))
    direction = {k: jnp.asarray(rng.standard_normal(v.shape)) for k, v in diff.items()}

    def grad(d):
        return jax.grad(lambda d: jnp.sum(as_outputs(fn(**d))[0] * projection))(d)

    def hvp(d):
        return jax.grad(lambda d: sum(jnp.vdot(grad(d)[k], direction[k]) for k in d))(d)

    step = 1e-5
    shifted = {k: v + step * direction[k] for k, v in diff.items()}
    back = {k: v - step * direction[k] for k, v in diff.items()}
    grad_at = quick_jit(grad)
    analytic = quick_jit(hvp)(diff)
    for k in names:
        numeric = (grad_at(shifted)[k] - grad_at(back)[k]) / (2 * step)
        scale = float(jnp.abs(numeric).max())
        assert scale > 0
        np.testing.assert_allclose(analytic[k], numeric, rtol=1e-5, atol=1e-6 * scale,
                                   err_msg=f"{op} d2/d{k}")


def _vjp(op, grad, wrt, **tensors_and_params):
    names = list(wrt)
    fixed = {k: v for k, v in tensors_and_params.items() if k not in names}
    out, pullback = jax.vjp(lambda *d: as_outputs(getattr(jax_impl, op)(**fixed, **dict(zip(names, d))))[0],
                            *(jnp.asarray(tensors_and_params[k]) for k in names))
    return dict(zip(names, pullback(jnp.asarray(grad))))


def test_tanprod_gradient_is_exact_at_a_zero_factor():
    """tan(x + w) = 0 at one tap: the output is 0 there, but its gradient through that
    factor is the product of the others, not 0/0."""
    x = np.array([[[[0.3, -0.2], [0.5, 0.1]]]])
    w = np.array([[[[-0.3, 0.4], [0.2, 0.6]]]])  # x[0,0] + w[0,0] = 0
    assert reference.tanprod_conv2d(x, w)[0, 0, 0, 0] == 0
    grads = jax.jit(lambda x, w: _vjp("tanprod_conv2d", np.ones((1, 1, 1, 1)), ("input", "weight"),
                                      input=x, weight=w))(x, w)
    expected = reference.tanprod_conv2d_vjp(np.ones((1, 1, 1, 1)), x, w)
    others = np.prod(np.tan(x + w).ravel()[1:])
    assert abs(float(grads["input"][0, 0, 0, 0]) - others) < 1e-15
    for name in ("input", "weight"):
        assert np.isfinite(grads[name]).all()
        assert_close(grads[name], expected[name], FP64, f"tanprod d/d{name}")


def test_deform_gradients_follow_torchvision_at_the_border():
    """A sample exactly on row -1 reads 0, but its row gradient is the right derivative
    (torchvision: no whole-sample early-out), and a point on an integer takes the cell
    below/right."""
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.ones((1, 1, 1, 1))
    one = dict(stride=3)  # a single output, sampling at (dy, dx)
    for dy, dx in [(-1.0, 1.0), (2.0, 1.0), (1.0, -1.0), (0.5, 2.0)]:
        offset = np.array([dy, dx]).reshape(1, 2, 1, 1)
        out = jax_impl.deform_conv2d(x, offset, w, **one)
        grads = _vjp("deform_conv2d", np.ones((1, 1, 1, 1)), ("input", "offset"),
                     input=x, offset=offset, weight=w, **one)
        expected = reference.deform_conv2d_vjp(np.ones((1, 1, 1, 1)), x, offset, w, **one)
        assert_close(out, reference.deform_conv2d(x, offset, w, **one), FP64,
                     "deform border forward")
        assert_close(grads["offset"], expected["offset"], FP64, f"offset grad at {(dy, dx)}")
        assert_close(grads["input"], expected["input"], FP64, f"input grad at {(dy, dx)}")
    # The measured torchvision values (notes/deform.md): out 0, d/dy 2 at y = -1, x = 1.
    offset = np.array([-1.0, 1.0]).reshape(1, 2, 1, 1)
    grads = _vjp("deform_conv2d", np.ones((1, 1, 1, 1)), ("offset",), input=x, offset=offset,
                 weight=w, **one)
    assert float(jax_impl.deform_conv2d(x, offset, w, **one)[0, 0, 0, 0]) == 0.0
    assert float(grads["offset"][0, 0, 0, 0]) == 2.0


def _jax_reduce_window_max_pool(x, k):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, k, k), (1, 1, k, k), "VALID")


def _jax_reshape_max_pool(x, k):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // k, k, w // k, k).max(axis=(3, 5))


@pytest.mark.parametrize("values, chosen", [
    ([[2.0, 2.0], [2.0, 1.0]], 0),  # ties: the first index in row-major order
    ([[1.0, np.nan], [3.0, np.nan]], 3),  # NaN wins; among NaNs the last one
    ([[np.nan, 1.0], [2.0, 0.0]], 0),
])
def test_max_pool_gradient_goes_to_torchs_index_only(values, chosen):
    x = jnp.asarray(np.array(values).reshape(1, 1, 2, 2))
    out, indices = jax_impl.max_pool2d(x, 2, return_indices=True)
    grad = jax.grad(lambda x: jnp.sum(jax_impl.max_pool2d(x, 2)))(x)
    expected = np.zeros(4)
    expected[chosen] = 1.0
    np.testing.assert_array_equal(np.asarray(grad).ravel(), expected)
    assert int(indices[0, 0, 0, 0]) == chosen
    assert_close(grad, reference.max_pool2d_vjp(np.ones((1, 1, 1, 1)), np.asarray(x), 2)["input"],
                 FP64, "max_pool2d gradient")


def test_jaxs_own_max_pooling_gradients_differ_from_torch():
    """Why max_pool2d has its own VJP: a reshape-and-max pool splits a tie's gradient, and
    XLA's reduce_window max ignores a NaN when choosing where the gradient goes."""
    ties = jnp.asarray(np.array([[2.0, 2.0], [2.0, 1.0]]).reshape(1, 1, 2, 2))
    split = jax.grad(lambda x: jnp.sum(_jax_reshape_max_pool(x, 2)))(ties)
    np.testing.assert_allclose(np.asarray(split).ravel(), [1 / 3, 1 / 3, 1 / 3, 0])
    nan = jnp.asarray(np.array([[np.nan, 1.0], [2.0, 0.0]]).reshape(1, 1, 2, 2))
    xla = jax.grad(lambda x: jnp.sum(_jax_reduce_window_max_pool(x, 2)))(nan)
    ours = jax.grad(lambda x: jnp.sum(jax_impl.max_pool2d(x, 2)))(nan)
    assert np.asarray(xla).ravel()[0] == 0 and np.asarray(ours).ravel()[0] == 1


def test_max_pool_all_minus_inf_window_gives_its_gradient_to_the_first_input_cell():
    """Padding never wins, even against -inf: torch's index is the first cell inside."""
    x = jnp.full((1, 1, 2, 2), -jnp.inf)
    out, indices = jax_impl.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    grad = jax.grad(lambda x: jnp.sum(jax_impl.max_pool2d(x, 3, stride=2, padding=1)))(x)
    assert float(out[0, 0, 0, 0]) == -np.inf and int(indices[0, 0, 0, 0]) == 0
    np.testing.assert_array_equal(np.asarray(grad).ravel(), [1.0, 0, 0, 0])


def test_conv2_5d_depth_gradient_is_zero_and_input_gradient_uses_the_masks():
    c = case("conv2_5d", np.float64)
    grads = _vjp("conv2_5d", np.ones((2, 2, 7, 6)), ("input", "depth", "weight"),
                 **c.tensors, **c.params)
    expected = c.call(lambda **kw: reference.conv2_5d_vjp(np.ones((2, 2, 7, 6)), **kw))
    assert not np.any(np.asarray(grads["depth"]))
    for name in ("input", "weight"):
        assert_close(grads[name], expected[name], FP64, f"conv2_5d d/d{name}")



CRASHING_CONV = """
import jax, jax.numpy as jnp, numpy as np
import jax_impl
x, w, b = jnp.ones((1, 4, 4, 1)), jnp.ones((2, 2, 2, 2)), jnp.ones(2)
def loss(x, w, b):
    return jnp.sum(jax_impl.conv2d(x, w, b, stride=(2, 3), padding=1, dilation=(1, 2), groups=2))
grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(x, w, b)
print(np.asarray(grads[1]).sum())
"""


def test_a_conv2d_gradient_that_aborted_xla_compiles():
    """With the padding passed to XLA's convolution, this strided, dilated, grouped
    float64 gradient has rows no window reads, and XLA's algebraic simplifier turned the
    transpose's crop into a negative window padding and aborted the process (a failed
    check, not an exception). In its own process, so a regression fails this test only."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {"JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", CRASHING_CONV], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    x = np.ones((1, 4, 4, 1))
    expected = reference.conv2d_vjp(np.ones((1, 2, 3, 1)), x, np.ones((2, 2, 2, 2)), np.ones(2),
                                    stride=(2, 3), padding=1, dilation=(1, 2), groups=2)
    assert float(done.stdout) == expected["weight"].sum()
