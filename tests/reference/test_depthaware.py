"""The depth-aware reference ops where their definitions say something the generated
tests cannot: against conv2d / avg_pool2d where depth plays no part, edges stated
directly, the golden depth gradient, and bad arguments. (Their loop oracles on random,
boundary and non-finite cases, finite differences and the golden values run with every
op's, from the registry: tests/reference/test_oracle.py, test_finite_differences.py,
test_goldens.py, tests/tool/test_boundary_and_golden_data.py.)"""

import math

import numpy as np
import pytest
from hypothesis import given

import reference
from crossconv import oracles
from crossconv.cases import Case
from crossconv.cases.depthaware import (
    GOLDEN_CONV_DEPTH_GRADIENT,
    TIED_DEPTH,
    depthaware_avg_pool2d_boundary,
    depthaware_avg_pool2d_cases,
    depthaware_conv2d_boundary,
    depthaware_conv2d_cases,
    depthaware_conv2d_goldens,
)
from crossconv.compare import assert_close
from crossconv.registry import ORACLE

CONV, POOL = "depthaware_conv2d", "depthaware_avg_pool2d"
#: op -> (reference, reference VJP, oracle, oracle VJP, case strategy, plain op)
OPS = {
    CONV: (reference.depthaware_conv2d, reference.depthaware_conv2d_vjp,
           oracles.oracle_depthaware_conv2d, oracles.oracle_depthaware_conv2d_vjp,
           depthaware_conv2d_cases, reference.conv2d),
    POOL: (reference.depthaware_avg_pool2d, reference.depthaware_avg_pool2d_vjp,
           oracles.oracle_depthaware_avg_pool2d, oracles.oracle_depthaware_avg_pool2d_vjp,
           depthaware_avg_pool2d_cases, reference.avg_pool2d),
}
BOUNDARY = depthaware_conv2d_boundary() + depthaware_avg_pool2d_boundary()


def _vjp(vjp, grad, case):
    return case.call(lambda **kw: vjp(grad, **kw))


def _cotangent(case, shape):
    return np.random.default_rng(case.seed + 1).standard_normal(shape)


# ----------------------------------------------------------------------------- depth plays no part


def _plain(case):
    """The plain op's arguments: conv2d without depth and alpha, avg_pool2d likewise."""
    params = {k: v for k, v in case.params.items() if k != "alpha"}
    tensors = {k: v for k, v in case.tensors.items() if k != "depth"}
    return tensors, params


def _with_params(case, **params):
    return Case(case.op, case.tensors, {**case.params, **params}, case.seed)


def _assert_plain(case):
    """Forward exactly the plain op's; input/weight/bias gradients too; depth's exactly 0."""
    ref, ref_vjp, _, _, _, plain = OPS[case.op]
    tensors, params = _plain(case)
    with np.errstate(all="ignore"):
        out = case.call(ref)
        np.testing.assert_array_equal(out, plain(**tensors, **params), err_msg=case.describe())
        grad = _cotangent(case, out.shape)
        grads = _vjp(ref_vjp, grad, case)
        plain_grads = getattr(reference, f"{plain.__name__}_vjp")(grad, **tensors, **params)
    for name, g in plain_grads.items():
        np.testing.assert_array_equal(grads[name], g, err_msg=f"d/d{name} {case.describe()}")
    np.testing.assert_array_equal(grads["depth"], 0.0, err_msg=case.describe())


@pytest.mark.parametrize("op", OPS)
def test_alpha_zero_is_the_plain_op_whatever_the_depth(op):
    @given(OPS[op][4](dtypes=("float64",), nonfinite=True))
    def check(case):
        _assert_plain(_with_params(case, alpha=0.0))

    check()


@pytest.mark.parametrize("op", OPS)
def test_constant_depth_is_the_plain_op(op):
    """F = exp(0) = 1 exactly, and sign(0) = 0 leaves depth without gradient (finite
    inputs: a NaN input cell makes its taps' 0 * dL/dF NaN)."""

    @given(OPS[op][4](dtypes=("float64",), nonfinite=False))
    def check(case):
        depth = np.full_like(case.tensors["depth"], 1.75)
        _assert_plain(case.with_tensor("depth", depth))

    check()


BY_NAME = {b.name: b.case for b in BOUNDARY}


@pytest.mark.parametrize("name", [n for n in BY_NAME if "equals" in n])
def test_boundary_cases_that_equal_the_plain_op(name):
    _assert_plain(BY_NAME[name])


# ----------------------------------------------------------------------------- edges, stated directly


def _conv_case(depth, **params):
    """A 3x3 depth-aware convolution over ``depth [H, W]``, two channels in and out."""
    rng = np.random.default_rng(0)
    h, w = depth.shape
    tensors = {"input": rng.standard_normal((1, 2, h, w)), "depth": depth[None, None],
               "weight": rng.standard_normal((2, 2, 3, 3)), "bias": rng.standard_normal(2)}
    return Case(CONV, tensors, {"stride": 1, "padding": 0, "dilation": 1, "alpha": 1.0,
                                **params})


def _tied_with(row, col, value):
    depth = TIED_DEPTH.copy()
    depth[row, col] = value
    return depth


def test_a_nan_depth_makes_exactly_the_windows_that_read_it_nan():
    case = _conv_case(_tied_with(2, 3, np.nan), padding=1)
    with np.errstate(invalid="ignore"):
        out = case.call(reference.depthaware_conv2d)
    rows, cols = np.nonzero(np.isnan(out[0]).any(axis=0))
    assert set(zip(rows.tolist(), cols.tolist())) == {(y, x) for y in (1, 2, 3) for x in (2, 3, 4)}
    assert np.isnan(out[0][:, rows, cols]).all()


def test_an_inf_tap_depth_drops_that_tap_and_a_window_centred_on_it_is_nan():
    case = _conv_case(_tied_with(1, 1, np.inf), padding=1)
    with np.errstate(invalid="ignore"):
        out = case.call(reference.depthaware_conv2d)
        zeroed = case.tensors["input"].copy()
        zeroed[:, :, 1, 1] = 0.0
        without = case.with_tensor("input", zeroed).call(reference.depthaware_conv2d)
    nan = np.isnan(out[0]).any(axis=0)
    assert np.argwhere(nan).tolist() == [[1, 1]]  # the window centred on it (padding 1)
    np.testing.assert_allclose(out[..., ~nan], without[..., ~nan], rtol=1e-14, atol=1e-14)


def test_a_window_whose_centre_is_outside_is_a_plain_convolution_window():
    case = _conv_case(TIED_DEPTH, padding=2)
    tensors, params = _plain(case)
    out = case.call(reference.depthaware_conv2d)
    plain = reference.conv2d(**tensors, **params)
    oh, ow = out.shape[2:]
    outside = np.zeros((oh, ow), bool)
    outside[[0, -1], :] = outside[:, [0, -1]] = True  # centres at row/col -1 and H, W
    np.testing.assert_array_equal(out[..., outside], plain[..., outside])
    assert not np.allclose(out[..., ~outside], plain[..., ~outside])


def test_tied_depths_pass_no_depth_gradient():
    """A map of two levels: a tap at its centre's level passes nothing (sign(0) = 0), so
    only the two columns beside the step get a depth gradient: as a tap across the step
    from a window's centre, and as that centre. (With sign(0) = 1, as the derivative of
    ``jnp.abs`` at 0, every pixel would get one.)"""
    depth = np.ones((1, 1, 6, 6))
    depth[..., :, 3:] = 2.0  # a vertical step between columns 2 and 3
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((2, 2, 3, 3))
    g = rng.standard_normal((1, 2, 6, 6))
    grad = reference.depthaware_conv2d_vjp(g, x, depth, w, padding=1)["depth"][0, 0]
    assert (grad[:, [0, 1, 4, 5]] == 0).all()
    assert (grad[:, [2, 3]] != 0).all()


def test_pool_windows_sharing_a_centre_both_reach_its_depth():
    """1x3 windows, stride 1, padding 1 on a 3-wide image: the windows starting at -1 and
    0 both have their clipped centre at 1. The depth gradient is the sum of both shares."""
    depth = np.array([[0.0, 1.0, 3.0]]).reshape(1, 1, 1, 3)
    x = np.array([[3.0, 2.0, 4.0]]).reshape(1, 1, 1, 3)
    args = dict(kernel_size=(1, 3), stride=1, padding=(0, 1), alpha=1.0)
    out = reference.depthaware_avg_pool2d(x, depth, **args)
    grads = [reference.depthaware_avg_pool2d_vjp(np.eye(3)[k].reshape(1, 1, 1, 3), x, depth, **args)
             for k in range(3)]
    total = reference.depthaware_avg_pool2d_vjp(np.ones((1, 1, 1, 3)), x, depth, **args)
    np.testing.assert_allclose(sum(g["depth"] for g in grads), total["depth"], rtol=1e-15)
    # windows 0 ([-1, 2) -> cells 0, 1) and 1 (cells 0..2) are both centred on cell 1
    assert grads[0]["depth"][0, 0, 0, 1] != 0 and grads[1]["depth"][0, 0, 0, 1] != 0
    assert np.isfinite(out).all()


# ----------------------------------------------------------------------------- goldens


def test_golden_depth_gradient():
    conv = depthaware_conv2d_goldens()[0].case
    grads = _vjp(reference.depthaware_conv2d_vjp, np.ones((1, 1, 1, 1)), conv)
    assert_close(grads["depth"], GOLDEN_CONV_DEPTH_GRADIENT, ORACLE, "golden depth gradient")
    # the other gradients: d input = F, d weight = x * F, d bias = 1
    f = 2.0 ** -np.abs(conv.tensors["depth"] - 0.0)
    assert_close(grads["input"], f, ORACLE, "golden input gradient")
    assert_close(grads["weight"], (conv.tensors["input"] * f), ORACLE, "golden weight gradient")
    assert grads["bias"].tolist() == [1.0]


# ----------------------------------------------------------------------------- arguments


def _conv_args(**changes):
    rng = np.random.default_rng(0)
    args = dict(input=rng.standard_normal((1, 2, 5, 5)), depth=rng.uniform(1, 2, (1, 1, 5, 5)),
                weight=rng.standard_normal((3, 2, 3, 3)), bias=np.zeros(3))
    return {**args, **changes}


def _pool_args(**changes):
    rng = np.random.default_rng(0)
    args = dict(input=rng.standard_normal((1, 2, 5, 5)), depth=rng.uniform(1, 2, (1, 1, 5, 5)),
                kernel_size=3)
    return {**args, **changes}


BAD = [
    (CONV, dict(alpha=-1.0), ValueError, "alpha"),
    (CONV, dict(alpha=math.nan), ValueError, "alpha"),
    (CONV, dict(alpha=math.inf), ValueError, "alpha"),
    (CONV, dict(alpha="1"), TypeError, "alpha"),
    (CONV, dict(alpha=True), TypeError, "alpha"),
    (CONV, dict(alpha=None), TypeError, "alpha"),
    (CONV, dict(depth=np.ones((1, 2, 5, 5))), ValueError, "depth"),
    (CONV, dict(depth=np.ones((2, 1, 5, 5))), ValueError, "depth"),
    (CONV, dict(depth=np.ones((1, 1, 5, 4))), ValueError, "depth"),
    (CONV, dict(depth=np.ones((1, 5, 5))), ValueError, "depth"),
    (CONV, dict(depth=np.ones((1, 1, 5, 5), dtype=np.int64)), TypeError, "depth"),
    (CONV, dict(weight=np.ones((3, 1, 3, 3))), ValueError, "channels"),
    (CONV, dict(weight=np.ones((3, 2, 3))), ValueError, "weight"),
    (CONV, dict(weight=np.ones((3, 2, 7, 7))), ValueError, "output size"),
    (CONV, dict(bias=np.ones(2)), ValueError, "bias"),
    (CONV, dict(stride=0), ValueError, "stride"),
    (CONV, dict(padding=-1), ValueError, "padding"),
    (CONV, dict(padding="same"), TypeError, "padding"),
    (CONV, dict(dilation=(1, 0)), ValueError, "dilation"),
    (CONV, dict(stride=1.0), TypeError, "stride"),
    (CONV, dict(input=np.ones((2, 5, 5))), ValueError, "input"),
    (POOL, dict(alpha=-0.5), ValueError, "alpha"),
    (POOL, dict(alpha=[1.0]), TypeError, "alpha"),
    (POOL, dict(kernel_size=0), ValueError, "kernel_size"),
    (POOL, dict(padding=2), ValueError, "padding"),
    (POOL, dict(stride=(0, 1)), ValueError, "stride"),
    (POOL, dict(count_include_pad=1), TypeError, "count_include_pad"),
    (POOL, dict(depth=np.ones((1, 1, 4, 5))), ValueError, "depth"),
    (POOL, dict(input=np.ones((1, 2, 5, 5), dtype=np.int32)), TypeError, "input"),
    (POOL, dict(kernel_size=6), ValueError, "output size"),
]


@pytest.mark.parametrize("op, changes, error, word", BAD,
                         ids=[f"{op}-{next(iter(c))}-{i}" for i, (op, c, _, _) in enumerate(BAD)])
def test_bad_arguments_raise_naming_the_argument(op, changes, error, word):
    ref, ref_vjp = OPS[op][:2]
    args = (_conv_args if op == CONV else _pool_args)(**changes)
    with pytest.raises(error, match=word):
        ref(**args)
    with pytest.raises(error, match=word):
        ref_vjp(np.zeros((1, 1, 1, 1)), **args)


@pytest.mark.parametrize("op", OPS)
def test_grad_output_of_the_wrong_shape_is_refused(op):
    ref, ref_vjp = OPS[op][:2]
    args = (_conv_args if op == CONV else _pool_args)()
    shape = ref(**args).shape
    with pytest.raises(ValueError, match="grad_output"):
        ref_vjp(np.zeros((*shape[:3], shape[3] + 1)), **args)


@pytest.mark.parametrize("op", OPS)
def test_float32_in_float64_out(op):
    ref = OPS[op][0]
    args = {k: v.astype(np.float32) if isinstance(v, np.ndarray) else v
            for k, v in (_conv_args if op == CONV else _pool_args)().items()}
    assert ref(**args).dtype == np.float64


@pytest.mark.parametrize("op", OPS)
def test_empty_batch(op):
    ref, ref_vjp = OPS[op][:2]
    args = {k: v[:0] if k in ("input", "depth") else v
            for k, v in (_conv_args if op == CONV else _pool_args)(padding=1).items()}
    out = ref(**args)
    assert out.shape[0] == 0
    grads = ref_vjp(np.zeros(out.shape), **args)
    assert grads["input"].shape == args["input"].shape
    assert grads["depth"].shape == args["depth"].shape
    assert all(not g.any() for g in grads.values())
