"""jax_impl's depth-aware convolution and pooling (XLA, ``impl="native"``) against the
float64 reference: forward and every gradient (depth included) on the boundary cases
(even kernels, centres outside the image, ties, NaN and inf depth, alpha = 0, constant
depth) and on generated cases in float32 and float64; ``sign(0) = 0`` in the depth
gradient; the plain ops where depth plays no part; jit, vmap, grad and check_grads;
half precision, empty batches and bad arguments.

Each case's forward and VJP are compiled together, once, with XLA's quick settings.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from jax.test_util import check_grads
from jax_cases import quick_jit

import jax_impl
import reference
from crossconv.cases import Case
from crossconv.cases.depthaware import (
    GOLDEN_CONV_DEPTH_GRADIENT,
    depthaware_avg_pool2d_boundary,
    depthaware_avg_pool2d_cases,
    depthaware_avg_pool2d_goldens,
    depthaware_conv2d_boundary,
    depthaware_conv2d_cases,
    depthaware_conv2d_goldens,
)
from crossconv.compare import Tolerance, assert_close, assert_nontrivial
from crossconv.measure import cotangent
from crossconv.registry import FP32_LONG_SUMS, FP64

CONV, POOL = "depthaware_conv2d", "depthaware_avg_pool2d"
#: float32 sums over windows x channels (and the depth gradient over both again).
TOLERANCE = {"float64": FP64, "float32": FP32_LONG_SUMS}
DIFFERENTIABLE = {CONV: ("input", "depth", "weight", "bias"), POOL: ("input", "depth")}
STRATEGIES = {CONV: depthaware_conv2d_cases, POOL: depthaware_avg_pool2d_cases}
BOUNDARY = depthaware_conv2d_boundary() + depthaware_avg_pool2d_boundary()
SAME = Tolerance(rtol=1e-6, atol=1e-6)  # one float32 program against another


def run(case: Case, grad: np.ndarray, impl: str = "native"):
    """The op's forward and VJP (every present differentiable argument) on ``case``, in
    one quick-compiled function, x64 on for a float64 case."""
    fn = getattr(jax_impl, case.op)
    tensors = {k: v for k, v in case.tensors.items() if v is not None}
    wrt = [k for k in DIFFERENTIABLE[case.op] if k in tensors]

    def both(arrays, g):
        def output(diff):
            return fn(**{**arrays, **diff}, **case.params, impl=impl)

        out, pullback = jax.vjp(output, {k: arrays[k] for k in wrt})
        return out, pullback(g)[0]

    with jax.enable_x64(np.dtype(case.dtype) == np.float64):
        out, grads = quick_jit(both)({k: jnp.asarray(v) for k, v in tensors.items()},
                                     jnp.asarray(grad, case.dtype))
        return np.asarray(out), {k: np.asarray(v) for k, v in grads.items()}


def check(case: Case, impl: str = "native", nontrivial: bool = True) -> None:
    """Forward and every gradient against the reference (dtype preserved), with the
    dtype's tolerance; NaN must meet NaN and an infinity the same infinity."""
    what = f"jax {impl} {case.describe()}"
    ref = getattr(reference, case.op)
    ref_vjp = getattr(reference, case.op + "_vjp")
    with np.errstate(all="ignore"):
        expected = case.call(ref)
        grad = cotangent(case, expected.shape)
        expected_grads = case.call(lambda **kw: ref_vjp(grad, **kw))
    out, grads = run(case, grad, impl)
    tol = TOLERANCE[np.dtype(case.dtype).name]
    if nontrivial:
        assert_nontrivial(expected, what)
    assert out.dtype == case.dtype, what
    assert_close(out, expected, tol, f"{what}, forward")
    assert sorted(grads) == sorted(expected_grads), what
    for name, want in expected_grads.items():
        assert grads[name].dtype == case.dtype, f"{what}, d/d{name}"
        assert_close(grads[name], want, tol, f"{what}, d/d{name}")


# ----------------------------------------------------------------------------- the reference


@pytest.mark.parametrize("boundary", BOUNDARY, ids=[b.name for b in BOUNDARY])
def test_boundary_cases_match_the_reference(boundary):
    check(boundary.case)


@pytest.mark.parametrize("op", [CONV, POOL])
def test_generated_cases_match_the_reference_with_nan_and_inf(op):
    """float32 and float64, odd and even kernels, strides, dilation, centres outside the
    image, ties on a grid of quarters, NaN and inf input and depth cells."""

    @settings(max_examples=8)
    @given(STRATEGIES[op](nonfinite=True))
    def draw(case):
        check(case, nontrivial=False)

    draw()


@pytest.mark.parametrize("golden", depthaware_conv2d_goldens() + depthaware_avg_pool2d_goldens(),
                         ids=lambda g: g.name)
def test_goldens(golden):
    case = golden.case
    out = case.call(getattr(jax_impl, case.op), convert=jnp.asarray)
    assert_close(np.asarray(out), golden.expected, FP32_LONG_SUMS, golden.name)


def test_golden_depth_gradient_passes_nothing_through_ties():
    """The 3x3 worked example: the corners tie with the centre's depth and get exactly 0
    (``jax.grad(jnp.abs)(0.0)`` is 1: autodiff of the forward would give them ``ln2 * x``)."""
    case = (depthaware_conv2d_goldens() + depthaware_avg_pool2d_goldens())[0].case
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


@pytest.mark.parametrize("op", [CONV, POOL])
def test_jit_grad_and_vmap_agree_with_single_eager_calls_and_the_reference(op):
    """Eager vs jit (forward and grad), vmap over every argument of a batch of three
    against a loop, and jit(vmap(grad)) per-example gradients against single grads."""
    case = _small(op)
    fn = functools.partial(getattr(jax_impl, op), **case.params)
    tensors = {k: jnp.asarray(v) for k, v in case.tensors.items()}
    expected = case.call(getattr(reference, op))
    eager = fn(**tensors)
    assert_close(jax.jit(fn)(**tensors), eager, SAME, f"{op}: jit vs eager")
    assert_close(eager, expected, FP32_LONG_SUMS, f"{op}: vs reference")

    projection = jnp.asarray(np.random.default_rng(2).standard_normal(expected.shape), jnp.float32)
    loss = _loss(case, projection)
    diff = {k: tensors[k] for k in DIFFERENTIABLE[op]}
    fixed = {k: v for k, v in tensors.items() if k not in diff}
    eager_grads = jax.grad(loss)(diff, fixed)
    jit_grads = jax.jit(jax.grad(loss))(diff, fixed)
    expected_grads = case.call(lambda **kw: getattr(reference, op + "_vjp")(
        np.asarray(projection), **kw))
    for name in diff:
        assert_close(jit_grads[name], eager_grads[name], SAME, f"{op} d/d{name}: jit vs eager")
        assert_close(eager_grads[name], expected_grads[name], FP32_LONG_SUMS, f"{op} d/d{name}")

    batch = {k: jnp.stack([v, 2 * v, v[::-1]]) for k, v in tensors.items()}
    batch["depth"] = jnp.stack([tensors["depth"], tensors["depth"] * 2, tensors["depth"][::-1]])
    vmapped = quick_jit(jax.vmap(lambda kw: fn(**kw)))(batch)
    per_example = quick_jit(jax.vmap(jax.grad(loss)))(
        {k: batch[k] for k in diff}, {k: batch[k] for k in fixed})
    single, single_grad = quick_jit(lambda kw: fn(**kw)), quick_jit(jax.grad(loss))
    for b in range(3):
        one = {k: v[b] for k, v in batch.items()}
        assert_close(vmapped[b], single(one), SAME, f"{op}: vmap, element {b}")
        grads = single_grad({k: one[k] for k in diff}, {k: one[k] for k in fixed})
        for name in diff:
            assert_close(per_example[name][b], grads[name], SAME, f"{op} vmap(grad) d/d{name}")


@pytest.mark.parametrize("op", [CONV, POOL])
def test_vmap_over_one_argument_broadcasts_the_others(op):
    case = _small(op)
    fn = functools.partial(getattr(jax_impl, op), **case.params)
    tensors = {k: jnp.asarray(v) for k, v in case.tensors.items()}
    depths = jnp.stack([tensors["depth"], tensors["depth"] + 1.0, tensors["depth"][:, :, ::-1]])
    out = quick_jit(jax.vmap(lambda d: fn(**{**tensors, "depth": d})))(depths)
    for b in range(3):
        one = case.with_tensor("depth", np.asarray(depths[b]))
        assert_close(out[b], one.call(getattr(reference, op)), FP32_LONG_SUMS,
                     f"{op}: vmap over depth, element {b}")


@pytest.mark.parametrize("op", [CONV, POOL])
def test_check_grads(op):
    """Reverse mode against JAX's numerical differences, float64, distinct depths (no
    tap within a step of its centre's depth)."""
    case = _small(op, np.float64, distinct=True)
    names = list(DIFFERENTIABLE[op])
    fixed = {k: v for k, v in case.tensors.items() if k not in names}
    fn = functools.partial(getattr(jax_impl, op), **fixed, **case.params)
    with jax.enable_x64(True):
        args = tuple(jnp.asarray(case.tensors[k]) for k in names)
        check_grads(jax.jit(lambda *a: fn(**dict(zip(names, a)))), args, order=1, modes=("rev",))


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
def test_empty_batch(op):
    case = _small(op).with_batch(0)
    out, grads = run(case, np.zeros(case.call(getattr(reference, op)).shape, np.float32))
    assert out.shape[0] == 0
    assert grads["input"].shape == case.tensors["input"].shape
    assert grads["depth"].shape == case.tensors["depth"].shape
    assert all(not g.any() for g in grads.values())


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
