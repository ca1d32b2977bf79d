"""jax_impl's depth-aware convolution and pooling (XLA, ``impl="native"``) against the
float64 reference: forward and every gradient (depth included) on the boundary cases
(even kernels, centres outside the image, ties, NaN and inf depth, alpha = 0, constant
depth); ``sign(0) = 0`` in the depth gradient; the plain ops where depth plays no part;
half precision and bad arguments. (Drawn cases, the goldens, the empty batch, jit, vmap,
grad and check_grads: the generated tests, tests/test_parity.py and tests/jax's
transform and gradient tests over every op of the registry.)
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax_cases import quick_jit

import jax_impl
import reference
from crossconv import checks
from crossconv.cases import Case
from crossconv.cases.depthaware import (
    GOLDEN_CONV_DEPTH_GRADIENT,
    depthaware_avg_pool2d_boundary,
    depthaware_conv2d_boundary,
    depthaware_conv2d_goldens,
)
from crossconv.compare import Tolerance, assert_close
from crossconv.measure import cotangent
from crossconv.registry import FP64, implementations

CONV, POOL = "depthaware_conv2d", "depthaware_avg_pool2d"
DIFFERENTIABLE = {CONV: ("input", "depth", "weight", "bias"), POOL: ("input", "depth")}
BOUNDARY = depthaware_conv2d_boundary() + depthaware_avg_pool2d_boundary()
SAME = Tolerance(rtol=1e-6, atol=1e-6)  # one float32 program against another


def check(case: Case) -> None:
    """Forward and every gradient against the reference (dtype preserved), at the
    registry's tolerances; NaN must meet NaN and an infinity the same infinity."""
    impl = implementations(case.op, name="jax")[0]
    with np.errstate(all="ignore"):
        checks.check_forward(impl, case)
        checks.check_vjp(impl, case)


# ----------------------------------------------------------------------------- the reference


@pytest.mark.parametrize("boundary", BOUNDARY, ids=[b.name for b in BOUNDARY])
def test_boundary_cases_match_the_reference(boundary):
    check(boundary.case)


def test_golden_depth_gradient_passes_nothing_through_ties():
    """The 3x3 worked example: the corners tie with the centre's depth and get exactly 0
    (``jax.grad(jnp.abs)(0.0)`` is 1: autodiff of the forward would give them ``ln2 * x``)."""
    case = depthaware_conv2d_goldens()[0].case
    with jax.enable_x64(True):
        arrays = {k: jnp.asarray(v) for k, v in case.tensors.items()}
        depth = jax.grad(lambda d: jnp.sum(jax_impl.depthaware_conv2d(
            **{**arrays, "depth": d}, **case.params)))(arrays["depth"])
    assert_close(np.asarray(depth), GOLDEN_CONV_DEPTH_GRADIENT, FP64, "golden depth gradient")
    assert np.asarray(depth)[0, 0, 0, 0] == 0.0


def test_only_pixels_beside_a_depth_step_get_a_depth_gradient():
    """Two depth levels split by a vertical step: taps at their centre's level pass
    nothing, so only the two columns beside the step have a depth gradient."""
    depth = np.ones((1, 1, 6, 6), np.float32)
    depth[..., 3:] = 2.0
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    w = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    g = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    grad = quick_jit(jax.grad(lambda d: jnp.vdot(jax_impl.depthaware_conv2d(x, d, w, padding=1),
                                                 g)))(jnp.asarray(depth))
    grad = np.asarray(grad)[0, 0]
    assert (grad[:, [0, 1, 4, 5]] == 0).all() and (grad[:, [2, 3]] != 0).all()


# ----------------------------------------------------------------------------- depth plays no part


def _plain(case):
    plain = {CONV: jax_impl.conv2d, POOL: jax_impl.avg_pool2d}[case.op]
    params = {k: v for k, v in case.params.items() if k != "alpha"}
    tensors = {k: v for k, v in case.tensors.items() if k != "depth"}
    return lambda **arrays: plain(**{**tensors, **arrays}, **params)


@pytest.mark.parametrize("op", [CONV, POOL])
@pytest.mark.parametrize("variant", ["alpha 0, NaN and inf depth", "constant depth"])
def test_the_plain_op_where_depth_plays_no_part(op, variant):
    """alpha = 0 (whatever the depth) and a constant depth give conv2d / avg_pool2d,
    gradients included, and an exactly zero depth gradient."""
    case = next(b.case for b in BOUNDARY if b.case.op == op and "alpha = 0" in b.name)
    if variant == "constant depth":
        case = Case(op, {**case.tensors, "depth": np.full_like(case.tensors["depth"], 1.75)},
                    {**case.params, "alpha": 3.0})
    plain = _plain(case)
    wrt = [k for k in DIFFERENTIABLE[op] if case.tensors.get(k) is not None and k != "depth"]
    g = cotangent(case, case.call(getattr(reference, op)).shape)
    with jax.enable_x64(True):
        arrays = {k: jnp.asarray(v) for k, v in case.tensors.items() if v is not None}
        fn = getattr(jax_impl, op)

        def both(arrays, g):
            out, pullback = jax.vjp(lambda a: fn(**{**arrays, **a}, **case.params),
                                    {k: arrays[k] for k in [*wrt, "depth"]})
            plain_out, plain_pullback = jax.vjp(lambda a: plain(**a), {k: arrays[k] for k in wrt})
            return out, pullback(g)[0], plain_out, plain_pullback(g)[0]

        out, grads, plain_out, plain_grads = quick_jit(both)(arrays, jnp.asarray(g))
    assert_close(out, plain_out, FP64, f"{op} {variant}")
    for name in wrt:
        assert_close(grads[name], plain_grads[name], FP64, f"{op} {variant} d/d{name}")
    assert not np.asarray(grads["depth"]).any()


# ----------------------------------------------------------------------------- transforms


def _small(op, dtype=np.float32, distinct=False):
    """A fixed call with depth steps, centres outside (conv) and shared centres (pool)."""
    rng = np.random.default_rng(1)
    depth = (rng.permutation(2 * 7 * 6).reshape(2, 1, 7, 6) * 0.1 + 0.5 if distinct
             else rng.integers(0, 8, (2, 1, 7, 6)) * 0.25)
    x = rng.standard_normal((2, 3, 7, 6))
    if op == CONV:
        tensors = dict(input=x, depth=depth, weight=rng.standard_normal((4, 3, 3, 2)),
                       bias=rng.standard_normal(4))
        params = dict(stride=(1, 2), padding=(2, 1), dilation=(2, 1), alpha=0.7)
    else:
        tensors = dict(input=x, depth=depth)
        params = dict(kernel_size=3, stride=(1, 2), padding=1, alpha=0.7,
                      count_include_pad=False)
    return Case(op, {k: v.astype(dtype) for k, v in tensors.items()}, params)


def _loss(case, projection):
    fn = functools.partial(getattr(jax_impl, case.op), **case.params)

    def loss(diff, fixed):
        return jnp.sum(fn(**fixed, **diff) * projection)

    return loss


# ----------------------------------------------------------------------------- dtypes, edges, errors


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize("op", [CONV, POOL])
def test_half_precision_in_and_out(op, dtype):
    """Computed in float32 and rounded once: within a few units of the dtype's last place."""
    case = _small(op, np.float32)
    tensors = {k: jnp.asarray(v, dtype) for k, v in case.tensors.items()}
    out = getattr(jax_impl, op)(**tensors, **case.params)
    assert out.dtype == dtype
    exact = Case(op, {k: np.asarray(v, np.float64) for k, v in tensors.items()}, case.params)
    eps = float(jnp.finfo(dtype).eps)
    assert_close(np.asarray(out, np.float64), exact.call(getattr(reference, op)),
                 Tolerance(rtol=4 * eps, atol=4 * eps), f"{op} {dtype.__name__}")


@pytest.mark.parametrize("op", [CONV, POOL])
def test_bad_arguments_name_the_argument(op):
    case = _small(op)
    fn = getattr(jax_impl, op)
    with pytest.raises(ValueError, match="alpha"):
        fn(**case.tensors, **{**case.params, "alpha": -1.0})
    with pytest.raises(TypeError, match="alpha"):  # a traced alpha cannot be static
        jax.jit(lambda a: fn(**case.tensors, **{**case.params, "alpha": a}))(1.0)
    with pytest.raises(ValueError, match="impl"):
        fn(**case.tensors, **case.params, impl="cuda")
    with pytest.raises(TypeError, match="depth"):
        fn(**{**case.tensors, "depth": case.tensors["depth"].astype(np.float16)}, **case.params)
    with pytest.raises(ValueError, match="depth"):
        fn(**{**case.tensors, "depth": case.tensors["depth"][:, :, 1:]}, **case.params)
