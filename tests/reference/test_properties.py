"""Identities between operations that any correct implementation satisfies."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
from crossconv import strategies
from crossconv.cases import as_outputs
from crossconv.checks import check_oracle
from crossconv.compare import Tolerance, assert_close, assert_nontrivial
from crossconv.registry import OPS

FLOAT64 = ("float64",)
EXACT = Tolerance(rtol=1e-12, atol=1e-12)


@given(strategies.deform_conv2d_cases(dtypes=FLOAT64, nonfinite=False, nonfinite_offsets=False),
       st.booleans())
def test_deform_with_zero_offsets_and_unit_mask_is_conv2d(case, with_mask):
    t, p = case.tensors, case.params
    offset = np.zeros_like(t["offset"])
    mask = None
    if with_mask:
        mask = np.ones((offset.shape[0], offset.shape[1] // 2, *offset.shape[2:]))
    groups = t["input"].shape[1] // t["weight"].shape[1]
    expected = reference.conv2d(t["input"], t["weight"], t["bias"], groups=groups, **p)
    actual = reference.deform_conv2d(t["input"], offset, t["weight"], t["bias"], mask=mask, **p)
    assert_nontrivial(expected, case.describe())
    assert_close(actual, expected, EXACT, case.describe())


@given(strategies.conv2_5d_cases(dtypes=FLOAT64, nonfinite=False), st.floats(0.1, 10.0))
def test_conv2_5d_with_constant_depth_is_conv2d_with_the_middle_bin(case, depth):
    t, p = case.tensors, case.params
    weight = t["weight"]
    if weight.shape[0] % 2 == 0:  # the property needs an odd number of bins
        weight = np.concatenate([weight, weight[:1]])
    constant = np.full_like(t["depth"], depth)
    actual = reference.conv2_5d(t["input"], constant, weight, t["bias"], **p)
    conv_params = {k: v for k, v in p.items() if k not in ("focal", "pixel_size")}
    expected = reference.conv2d(t["input"], weight[(weight.shape[0] - 1) // 2], t["bias"],
                                **conv_params)
    assert_nontrivial(expected, case.describe())
    assert_close(actual, expected, EXACT, case.describe())


@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_tanprod_with_a_1x1_kernel_and_one_channel_is_tan_of_the_sum(n, h, w, seed):
    rng = np.random.default_rng(seed)
    x, weight = rng.uniform(-0.6, 0.6, (n, 1, h, w)), rng.uniform(-0.6, 0.6, (1, 1, 1, 1))
    assert_close(reference.tanprod_conv2d(x, weight), np.tan(x + weight[0, 0, 0, 0]), EXACT,
                 "tan(x + w)")


@given(strategies.tanprod_conv2d_cases(dtypes=FLOAT64, zero_factors=4, nonfinite=False))
def test_tanprod_gradient_is_exact_where_a_factor_is_zero(case):
    """With factors exactly 0 (x = -w) the gradient is finite and equals the literal
    product of the other factors (the oracle never divides). A bias keeps the output
    from being all zero."""
    if case.tensors["bias"] is None:
        case = case.with_tensor("bias", np.ones(case.tensors["weight"].shape[0]))
    grads = case.call(lambda **kw: reference.tanprod_conv2d_vjp(
        np.ones_like(case.call(reference.tanprod_conv2d)), **kw))
    for g in grads.values():
        assert np.isfinite(g).all()
    check_oracle(case)


def test_tanprod_gradient_at_a_single_zero_factor():
    """tan(x0 + w0) = 0 with every other factor 1/2: d out / d x0 = (1/2)^3 * sec^2(0),
    where ``out / tan(x0 + w0)`` would be 0/0."""
    w = np.full((1, 1, 2, 2), np.arctan(0.5))
    x = np.zeros((1, 1, 2, 2))
    x[0, 0, 0, 0] = -w[0, 0, 0, 0]
    assert reference.tanprod_conv2d(x, w)[0, 0, 0, 0] == 0.0
    grads = reference.tanprod_conv2d_vjp(np.ones((1, 1, 1, 1)), x, w)
    assert np.isclose(grads["input"][0, 0, 0, 0], 0.125, rtol=1e-14)
    assert np.allclose(grads["input"].ravel()[1:], 0.0)


@given(strategies.conv2d_cases(dtypes=("float32",), nonfinite=False))
def test_float32_inputs_are_computed_and_returned_in_float64(case):
    out = case.call(reference.conv2d)
    assert out.dtype == np.float64
    as64 = {k: None if v is None else v.astype(np.float64) for k, v in case.tensors.items()}
    np.testing.assert_array_equal(out, reference.conv2d(**as64, **case.params))


def test_xcorr_on_the_tracking_shapes_matches_a_direct_sum():
    """SiamFC's shapes (search 255x255, template 127x127, 256 channels) go
    through the FFT; spot-check outputs against the direct window sum."""
    rng = np.random.default_rng(0)
    search = rng.standard_normal((1, 256, 255, 255))
    template = rng.standard_normal((1, 256, 127, 127))
    out = reference.xcorr2d(search, template)
    assert out.shape == (1, 1, 129, 129)
    for y, x in [(0, 0), (128, 128), (17, 93)]:
        direct = np.sum(search[0, :, y : y + 127, x : x + 127] * template[0])
        assert np.isclose(out[0, 0, y, x], direct, rtol=1e-10, atol=1e-10 * np.abs(out).max())


EMPTY_BATCH = list(OPS.values())


@pytest.mark.parametrize("op", EMPTY_BATCH, ids=[op.name for op in EMPTY_BATCH])
def test_an_empty_batch_works_forward_and_backward(op):
    """N = 0 is a valid call in torch and torchvision: an empty output of the right shape,
    empty batched gradients and zero parameter gradients."""

    @settings(max_examples=10)
    @given(op.cases(dtypes=FLOAT64))
    def check(case):
        full = as_outputs(case.call(op.reference))
        empty = case.with_batch(0)
        out = as_outputs(empty.call(op.reference))
        for o, f in zip(out, full, strict=True):
            assert o.shape == (0, *f.shape[1:])
        grads = empty.call(lambda **kw: op.reference_vjp(np.zeros(out[0].shape), **kw))
        for name, g in grads.items():
            assert g.shape == empty.tensors[name].shape
            assert not np.any(g)

    check()


def test_conv2_5d_even_bins_put_the_centre_depth_in_bin_b_over_2():
    """docs/conv2_5d.md's edges ``d + (k - B/2) * s``: with B = 2 the centre tap's own depth lies on
    edge 1 and falls in bin 1, for every depth (computed as ``(d + s/2) - s/2`` it rounds
    above ``d`` for ~12% of depths, e.g. 0.1, and the tap falls in no bin)."""
    x = np.ones((1, 1, 1, 1))
    weight = np.array([10.0, 1.0]).reshape(2, 1, 1, 1, 1)  # bin 0 would give 10
    for d in [0.1, 0.3, 0.7, 1.1, 2.9, 1e-3, 123.456]:
        out = reference.conv2_5d(x, np.full((1, 1, 1, 1), d), weight)
        assert out[0, 0, 0, 0] == 1.0, d
    depths = np.random.default_rng(0).uniform(0.01, 10.0, 2000)
    outs = [reference.conv2_5d(x, np.full((1, 1, 1, 1), d), weight)[0, 0, 0, 0] for d in depths]
    assert np.all(np.array(outs) == 1.0)


@pytest.mark.parametrize("kwargs", [
    dict(stride=(2,), padding=(1,), dilation=[1]),
    dict(stride=[2, 2], padding=[1], dilation=(1, 1)),
])
def test_one_element_sequences_mean_both_axes(kwargs):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 2, 7, 7)), rng.standard_normal((3, 2, 3, 3))
    expected = reference.conv2d(x, w, stride=2, padding=1)
    np.testing.assert_array_equal(reference.conv2d(x, w, **kwargs), expected)
    np.testing.assert_array_equal(reference.tanprod_conv2d(x * 0.1, w * 0.1, **kwargs),
                                  reference.tanprod_conv2d(x * 0.1, w * 0.1, stride=2, padding=1))


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_pooling_stride_of_none_or_empty_means_the_kernel_size(op):
    """torch's OpInfo samples pass ``stride=()`` and ``padding=(1,)``."""
    fn = getattr(reference, op)
    x = np.random.default_rng(2).standard_normal((1, 2, 7, 8))
    expected = fn(x, 3, stride=3, padding=1)
    for stride in (None, (), []):
        np.testing.assert_array_equal(fn(x, (3,), stride=stride, padding=(1,)), expected)
