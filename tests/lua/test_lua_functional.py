"""The functional ops (tanprod_conv2d, conv2d, their _vjp): the contract's argument forms, what
Torch7's modules lack (rejected by name), dtypes and the runtime choice. Values against
the reference are covered by the generated registry parity tests (tests/test_parity.py)."""

import numpy as np
import pytest

import lua_port
import reference
from crossconv.compare import Tolerance, assert_close
from lua_port import conv2d, conv2d_vjp, tanprod_conv2d, tanprod_conv2d_vjp

FP64 = Tolerance(rtol=1e-10, atol=1e-10)
RNG = np.random.default_rng(8)
X = RNG.uniform(-0.6, 0.6, (2, 3, 7, 6))
W = RNG.uniform(-0.6, 0.6, (2, 3, 3, 3))
B = RNG.normal(size=2)


@pytest.mark.parametrize("op, kwargs, message", [
    (tanprod_conv2d, {"dilation": 2}, "tanprod_conv2d: Torch7's nn.CustomConv has no dilation"),
    (conv2d, {"dilation": (1, 2)}, "conv2d: Torch7's nn.SpatialConvolutionMM has no dilation"),
    (conv2d, {"groups": 3}, "conv2d: Torch7's nn.SpatialConvolutionMM has no groups"),
])
def test_features_torch7_lacks_are_rejected_by_name(runtime, op, kwargs, message):
    weight = np.ones((3, 1, 3, 3)) if kwargs.get("groups") else W
    with pytest.raises(ValueError, match=message):
        op(X, weight, **kwargs, runtime=runtime)


def test_same_padding_works_where_torch7_can_pad_both_sides_alike(runtime):
    expected = reference.conv2d(X, W, B, padding="same")
    assert_close(conv2d(X, W, B, padding="same", runtime=runtime), expected, FP64, "padding='same'")
    assert_close(conv2d(X, W, B, padding="valid", runtime=runtime), reference.conv2d(X, W, B),
                 FP64, "padding='valid'")
    with pytest.raises(ValueError, match="pads both sides alike"):
        conv2d(X, W[:, :, :2], padding="same", runtime=runtime)  # even kernel: 0 above, 1 below


def test_shared_argument_checks_apply(runtime):
    with pytest.raises(ValueError, match="stride must be positive"):
        tanprod_conv2d(X, W, stride=0, runtime=runtime)
    with pytest.raises(ValueError, match="input has 3 channels"):
        tanprod_conv2d(X, W[:, :2], runtime=runtime)
    with pytest.raises(TypeError, match="must share one dtype"):
        tanprod_conv2d(X.astype(np.float32), W, runtime=runtime)
    with pytest.raises(TypeError, match="float32 or float64"):
        conv2d(X.astype(np.int64), W.astype(np.int64), runtime=runtime)
    with pytest.raises(ValueError, match="grad_output must have shape"):
        tanprod_conv2d_vjp(np.zeros((2, 2, 4, 4)), X, W, runtime=runtime)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_results_keep_the_input_dtype(runtime, dtype):
    x, w, b = (a.astype(dtype) for a in (X, W, B))
    out = tanprod_conv2d(x, w, b, padding=1, runtime=runtime)
    grads = conv2d_vjp(np.ones((2, 2, 5, 4)), x, w, b, runtime=runtime)
    assert out.dtype == dtype and {g.dtype for g in grads.values()} == {np.dtype(dtype)}
    assert_close(out, reference.tanprod_conv2d(x, w, b, padding=1), Tolerance(1e-5, 1e-5), dtype)


def test_gradients_come_from_the_modules_backward(runtime):
    grad = RNG.normal(size=(2, 2, 3, 3))
    kwargs = dict(stride=2, padding=(0, 1))
    actual = tanprod_conv2d_vjp(grad, X, W, B, **kwargs, runtime=runtime)
    expected = reference.tanprod_conv2d_vjp(grad, X, W, B, **kwargs)
    assert sorted(actual) == ["bias", "input", "weight"]
    for name in expected:
        assert_close(actual[name], expected[name], FP64, name)
    assert "bias" not in conv2d_vjp(grad, X, W, **kwargs, runtime=runtime)


def test_the_runtime_is_chosen_by_name():
    default = lua_port.available_runtimes()[0]
    assert default == "luajit" or "luajit" not in lua_port.available_runtimes()
    for name in ("luajit", "lua54", "5.4", None):
        if name in (None, "5.4", "lua54") or "luajit" in lua_port.available_runtimes():
            assert_close(tanprod_conv2d(X, W, runtime=name), reference.tanprod_conv2d(X, W), FP64, name)
    with pytest.raises(ValueError, match="runtime must be one of 'luajit', '5.4'"):
        tanprod_conv2d(X, W, runtime="lua5.1")
