"""The depth-aware Pallas kernels (interpret mode) against the float64 reference, and
their lowering for an NVIDIA GPU.

The contract functions (``jax_impl.kernels.depthaware``: no bias, no autodiff) run on
boundary cases (even kernels, centres outside the image, windows sharing a centre,
ties, NaN and inf depth, alpha = 0), forward and every gradient (depth included); the
drawn cases are the generated jax-pallas tests of tests/test_parity.py. The public ops
with ``impl="pallas"`` are checked under jit, grad and vmap. Interpret mode spends its
time compiling, so each case compiles its forward and backward together, once, and the
cases are few and small.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pallas_contract import FAST_COMPILE
from pallas_contract import check as check_contract
from test_pallas_lowering import TRITON_CALL, _compile_for_h100, _triton_modules

import jax_impl
import reference
from crossconv.cases import Case
from crossconv.cases.depthaware import (
    depthaware_avg_pool2d_boundary,
    depthaware_conv2d_boundary,
)
from crossconv.compare import assert_close, assert_nontrivial
from crossconv.registry import FP32_LONG_SUMS, FP64
from jax_impl.kernels import common, depthaware
from reference.depthaware import depthaware_avg_pool2d_signature, depthaware_conv2d_signature

CONV, POOL = "depthaware_conv2d", "depthaware_avg_pool2d"
TOLERANCE = {"float64": FP64, "float32": FP32_LONG_SUMS}
#: The edges the kernels decide themselves (the others repeat these windows' arithmetic).
BOUNDARY = [b for b in depthaware_conv2d_boundary() + depthaware_avg_pool2d_boundary()
            if any(word in b.name for word in (
                "even kernel 2x2", "dilation 2", "centres outside on one axis", "tied depths",
                "alpha = 0", "an inf tap depth", "-inf corner", "a NaN depth", "an inf depth",
                "share centres, count_include_pad=True"))]


def check(case: Case) -> None:
    """The kernels' forward and VJP (no bias) against the reference, dtype preserved
    (pallas_contract.check)."""
    with np.errstate(all="ignore"):
        check_contract(case)


@pytest.mark.parametrize("boundary", BOUNDARY, ids=[b.name for b in BOUNDARY])
def test_boundary_cases_match_the_reference(boundary):
    check(boundary.case)


# ----------------------------------------------------------------------------- public ops


def _public_case(op):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 5, 6))
    depth = rng.integers(0, 8, (2, 1, 5, 6)) * 0.25
    if op == CONV:
        return (dict(input=x, depth=depth, weight=rng.standard_normal((4, 3, 2, 3)),
                     bias=rng.standard_normal(4)),
                dict(stride=(1, 2), padding=(1, 2), dilation=(2, 1), alpha=0.5))
    return (dict(input=x, depth=depth),
            dict(kernel_size=(3, 2), stride=1, padding=1, alpha=2.0, count_include_pad=True))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", [CONV, POOL])
def test_public_op_with_impl_pallas_under_jit_and_grad(op, dtype):
    arrays, params = _public_case(op)
    names = list(arrays)
    expected = getattr(reference, op)(**arrays, **params)
    ct = np.random.default_rng(4).standard_normal(expected.shape)
    expected_grads = getattr(reference, op + "_vjp")(ct, **arrays, **params)
    fn = functools.partial(getattr(jax_impl, op), **params, impl="pallas")

    def both(args, ct):
        call = lambda *a: fn(**dict(zip(names, a)))  # noqa: E731
        return call(*args), jax.grad(lambda *a: jnp.vdot(call(*a), ct),
                                     argnums=tuple(range(len(names))))(*args)

    with jax.enable_x64(dtype == "float64"):
        out, grads = jax.jit(both, compiler_options=FAST_COMPILE)(
            [jnp.asarray(a, dtype) for a in arrays.values()], jnp.asarray(ct, dtype))
    assert out.dtype == jnp.dtype(dtype)
    assert_close(np.asarray(out), expected, TOLERANCE[dtype], f"{op} forward")
    for name, grad in zip(names, grads):
        assert_nontrivial(expected_grads[name], f"{op} d/d{name}")
        assert_close(np.asarray(grad), expected_grads[name], TOLERANCE[dtype], f"{op} d/d{name}")


@pytest.mark.parametrize("op", [CONV, POOL])
def test_public_op_with_impl_pallas_under_vmap_of_grad(op):
    """Per-example gradients of a batch of two (the weight shared) against the reference."""
    arrays, params = _public_case(op)
    batched = ["input", "depth"]
    samples = [arrays, {k: v[::-1] * 0.5 if k in batched else v for k, v in arrays.items()}]
    fn = functools.partial(getattr(jax_impl, op), **params, impl="pallas")
    shape = getattr(reference, op)(**arrays, **params).shape
    cts = np.random.default_rng(5).standard_normal((2, *shape)).astype(np.float32)

    def one(x, d, fixed, ct):
        out, pullback = jax.vjp(lambda x, d: fn(input=x, depth=d, **fixed), x, d)
        return out, pullback(ct)

    fixed = {k: jnp.asarray(v, jnp.float32) for k, v in arrays.items() if k not in batched}
    stacked = [jnp.asarray(np.stack([s[k] for s in samples]), jnp.float32) for k in batched]
    out, grads = jax.jit(jax.vmap(one, in_axes=(0, 0, None, 0)), compiler_options=FAST_COMPILE)(
        *stacked, fixed, jnp.asarray(cts))
    for b, sample in enumerate(samples):
        expected = getattr(reference, op + "_vjp")(cts[b], **sample, **params)
        assert_close(np.asarray(out[b]), getattr(reference, op)(**sample, **params),
                     FP32_LONG_SUMS, f"{op} under vmap, sample {b}")
        for name, grad in zip(batched, grads):
            assert_close(np.asarray(grad[b]), expected[name], FP32_LONG_SUMS,
                         f"{op} under vmap, sample {b}, d/d{name}")


# ----------------------------------------------------------------------------- GPU lowering


def _launches(dtype):
    """name -> (function, abstract arguments, number of kernels it launches)."""
    s = lambda *shape: jax.ShapeDtypeStruct(shape, dtype)  # noqa: E731
    x, d, w = (2, 3, 9, 11), (2, 1, 9, 11), (5, 3, 3, 2)
    g = depthaware_conv2d_signature(x, d, w, None, stride=(2, 1), padding=(2, 1),
                                    dilation=(1, 2), alpha=0.5).geometry
    gp = depthaware_avg_pool2d_signature(x, d, 3, stride=2, padding=1).geometry
    return {
        "conv_forward": (lambda x, d, w: depthaware.conv_forward(x, d, w, g, 0.5),
                         (s(*x), s(*d), s(*w)), 1),
        "conv_backward": (lambda go, x, d, w: depthaware.conv_backward(go, x, d, w, g, 0.5),
                          (s(2, 5, *g.out_size), s(*x), s(*d), s(*w)), 2),
        "pool_forward": (lambda x, d: depthaware.pool_forward(x, d, gp, 0.5, True),
                         (s(*x), s(*d)), 1),
        "pool_backward": (lambda go, x, d: depthaware.pool_backward(go, x, d, gp, 0.5, False),
                          (s(2, 3, *gp.out_size), s(*x), s(*d)), 2),  # the forward again, then its own
    }


NAMES = list(_launches(jnp.float32))


def _lower(name, dtype):
    fn, args, kernels = _launches(dtype)[name]
    with common.gpu_lowering():
        return jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)), kernels


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_every_kernel_lowers_for_cuda(name, dtype):
    with jax.enable_x64(dtype == "float64"):
        lowered, kernels = _lower(name, jnp.dtype(dtype))
    assert lowered.as_text().count(TRITON_CALL) == kernels


@pytest.mark.parametrize("name", NAMES)
def test_every_fp32_kernel_compiles_for_an_h100(name):
    lowered, kernels = _lower(name, jnp.float32)
    modules = _triton_modules(lowered)
    assert len(modules) == kernels
    for text, options in modules:
        ptx = _compile_for_h100(text, options).asm["ptx"]
        assert ".target sm_90" in ptx and "tf32" not in ptx
        if name.startswith("conv"):
            assert "fma.rn.f32" in ptx  # IEEE fp32 products


@pytest.mark.parametrize("name", ["conv_forward", "conv_backward"])
def test_fp64_matrix_products_use_dmma_on_an_h100(name):
    with jax.enable_x64(True):
        lowered, _ = _lower(name, jnp.float64)
    for text, options in _triton_modules(lowered):
        assert "mma.sync.aligned.m8n8k4.row.col.f64" in _compile_for_h100(text, options).asm["ptx"]


def test_vmapped_backward_kernels_lower_for_cuda():
    s = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)  # noqa: E731
    x, d = (2, 3, 6, 7), (2, 1, 6, 7)
    g = depthaware_conv2d_signature(x, d, (4, 3, 3, 3), None, padding=1).geometry
    gp = depthaware_avg_pool2d_signature(x, d, 2, stride=1).geometry
    conv = jax.vmap(lambda go, x, d, w: depthaware.conv_backward(go, x, d, w, g, 1.0),
                    in_axes=(0, 0, 0, None))
    pool = jax.vmap(lambda go, x, d: depthaware.pool_backward(go, x, d, gp, 1.0, True))
    with common.gpu_lowering():
        lowered = [jax.jit(conv).trace(s(5, 2, 4, 6, 7), s(5, *x), s(5, *d), s(4, 3, 3, 3)),
                   jax.jit(pool).trace(s(5, 2, 3, 5, 6), s(5, *x), s(5, *d))]
        texts = [t.lower(lowering_platforms=("cuda",)).as_text() for t in lowered]
    assert [t.count(TRITON_CALL) for t in texts] == [2, 2]
