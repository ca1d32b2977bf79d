"""The correlations' FFT path (templates larger than 16x16): the reference's values, NaN
and infinities exactly where the direct sum puts them, gradients, vmap, and SiamFC's
tracking shapes in seconds."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax_cases import quick_jit

import jax_impl
import reference
from crossconv.compare import assert_close
from crossconv.registry import FP32_LONG_SUMS, FP64
from jax_impl.conv2d import FFT_TEMPLATE_CELLS

OPS = ("xcorr2d", "xcorr2d_depthwise")


def _inputs(rng, nonfinite):
    search, template = rng.standard_normal((2, 3, 30, 27)), rng.standard_normal((2, 3, 18, 17))
    assert 18 * 17 > FFT_TEMPLATE_CELLS  # the FFT path
    if nonfinite:  # NaN, +-inf and zeros (inf * 0 = NaN) in both arguments
        for array in (search, template):
            for value in (np.nan, np.inf, -np.inf, 0.0, np.inf):
                array[tuple(rng.integers(0, d) for d in array.shape)] = value
    return search, template


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("nonfinite", [False, True], ids=["finite", "nan-inf"])
@pytest.mark.parametrize("op", OPS)
def test_fft_path_matches_the_reference(op, nonfinite):
    search, template = _inputs(np.random.default_rng(1), nonfinite)
    expected = getattr(reference, op)(search, template)
    actual = quick_jit(getattr(jax_impl, op))(search.astype(np.float32), template.astype(np.float32))
    if nonfinite:
        assert np.isnan(expected).any() and np.isinf(expected).any()
    assert_close(actual, expected, FP32_LONG_SUMS, f"{op} FFT path")


@pytest.mark.parametrize("op", OPS)
def test_fft_path_gradients_match_the_reference_vjp(op):
    search, template = _inputs(np.random.default_rng(2), nonfinite=False)
    with jax.enable_x64(True):
        out, pullback = jax.vjp(getattr(jax_impl, op), search, template)
        grad = np.random.default_rng(3).standard_normal(out.shape)
        grads = dict(zip(("search", "template"), quick_jit(pullback)(jnp.asarray(grad))))
    expected = getattr(reference, op + "_vjp")(grad, search, template)
    for name in grads:
        assert_close(grads[name], expected[name], FP64, f"{op} FFT path d/d{name}")


def test_fft_path_under_vmap_equals_a_loop():
    rng = np.random.default_rng(4)
    search, template = _inputs(rng, nonfinite=False)
    # One element with infinities: under vmap both of the FFT path's branches run.
    searches = np.stack([search, -search, np.where(search > 1, np.inf, search)]).astype(np.float32)
    template = template.astype(np.float32)
    batched = quick_jit(jax.vmap(jax_impl.xcorr2d, in_axes=(0, None)))(searches, template)
    single = quick_jit(jax_impl.xcorr2d)
    for b in range(3):
        assert_close(batched[b], single(searches[b], template), FP32_LONG_SUMS, f"vmap {b}")


def test_seed_tracking_shapes_take_seconds():
    """SiamFC: search 1x256x255x255, template 127x127 (XLA's direct convolution would
    ask for tens of GB here)."""
    rng = np.random.default_rng(5)
    search = rng.standard_normal((1, 256, 255, 255)).astype(np.float32)
    template = rng.standard_normal((1, 256, 127, 127)).astype(np.float32)
    start = time.perf_counter()
    out = jax.block_until_ready(jax_impl.xcorr2d(search, template))
    assert time.perf_counter() - start < 60  # compile included; ~0.5 s once compiled
    assert_close(out, reference.xcorr2d(search, template), FP32_LONG_SUMS, "SiamFC shapes")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("op", ["conv2d", "xcorr2d", "xcorr2d_depthwise"])
def test_float64_groups_keep_an_infinity_in_its_own_group(op):
    """XLA:CPU computes float64 grouped convolutions densely (block-diagonal kernel), so
    an inf met the other groups' zero blocks and inf * 0 put NaN in their outputs; the
    backend splits the groups."""
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((2, 2, 6, 8)), rng.standard_normal((2, 2, 2, 3))
    a[1, 1, 1, 1] = np.inf
    if op == "conv2d":  # groups=2: channel 1's inf must stay out of output channel 0
        b = b.reshape(4, 1, 2, 3)
        run = lambda x, w: jax_impl.conv2d(x, w, groups=2)  # noqa: E731
        expected = reference.conv2d(a, b, groups=2)
    else:
        run = getattr(jax_impl, op)
        expected = getattr(reference, op)(a, b)
    with jax.enable_x64(True):
        actual = np.asarray(run(jnp.asarray(a), jnp.asarray(b)))
    assert np.isinf(expected).any()
    assert_close(actual, expected, FP64, op)
