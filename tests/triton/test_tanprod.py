"""Triton tanprod_conv2d kernels against the float64 reference (interpreter)."""

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from kernel_cases import (
    check_case,
    contract,
    deterministic_algorithms,
    random_case,
    reference_output,
)

from crossconv import strategies
from reference.tanprod import tanprod_conv2d_signature
from torch_impl.kernels import tanprod


@settings(max_examples=15)
@given(strategies.tanprod_conv2d_cases(nonfinite=False))
def test_forward_and_gradients_match_the_reference(case):
    check_case(case)


@settings(max_examples=8)
@given(strategies.tanprod_conv2d_cases(nonfinite=True))
def test_nan_and_infinite_inputs_propagate_as_in_the_reference(case):
    check_case(case)


@settings(max_examples=8)
@given(strategies.tanprod_conv2d_cases(zero_factors=3, nonfinite=False))
def test_gradients_with_planted_zero_factors(case):
    assume(np.any(reference_output(case) != 0))  # a lone zero factor zeroes a 1x1 output
    check_case(case)


def test_gradient_is_exact_where_factors_are_exactly_zero():
    # Two zero factors in one window: the input gradient there is 0 only at neither
    # zero; at each zero it is the product of the others (never 0/0 = NaN).
    case = random_case("tanprod_conv2d", {"input": (1, 2, 4, 4), "weight": (2, 2, 3, 3)},
                       low=-0.6, high=0.6, seed=3, padding=1)
    x, w = case.tensors["input"], case.tensors["weight"]
    x[0, 0, 1, 1] = -w[0, 0, 1, 1]  # tap (1, 1) of output (1, 1)
    x[0, 1, 1, 2] = -w[0, 1, 1, 2]  # tap (1, 2) of output (1, 1)
    assert np.tan(x[0, 0, 1, 1] + w[0, 0, 1, 1]) == 0
    grads = check_case(case)
    assert np.all(np.isfinite(grads["input"])) and grads["input"][0, 0, 1, 1] != 0


@pytest.mark.parametrize("channels", [tanprod.FACTORS[0][1] - 1, tanprod.FACTORS[0][1],
                                      tanprod.FACTORS[0][1] + 1, 2 * tanprod.FACTORS[0][1] + 1])
def test_factor_chunks(channels):
    """1x1 kernel: F = C factors, one below, at, one above and past two chunks."""
    case = random_case("tanprod_conv2d", {"input": (1, channels, 3, 3),
                                          "weight": (2, channels, 1, 1)},
                       low=-0.6, high=0.6, seed=channels)
    check_case(case)


@pytest.mark.parametrize("size", sorted({h - 1 for h in (tanprod.FORWARD_POSITIONS[0][1],
                                                         tanprod.BACKWARD_POSITIONS[0][1])}
                                        | {h + 1 for h in (tanprod.FORWARD_POSITIONS[0][1],
                                                           tanprod.BACKWARD_POSITIONS[0][1])}))
def test_position_blocks(size):
    """Output widths one below and one above the interpreter's position blocks."""
    case = random_case("tanprod_conv2d", {"input": (1, 1, 2, size + 1),
                                          "weight": (2, 1, 2, 2), "bias": (2,)},
                       dtype=np.float32, low=-0.6, high=0.6, seed=size)
    check_case(case)


@pytest.mark.parametrize("out_channels", [tanprod.OUT_CHANNELS[0][1] - 1,
                                          tanprod.OUT_CHANNELS[0][1] + 1])
def test_out_channel_blocks(out_channels):
    case = random_case("tanprod_conv2d", {"input": (2, 2, 4, 4),
                                          "weight": (out_channels, 2, 3, 3)},
                       low=-0.6, high=0.6, seed=out_channels, padding=1, stride=2)
    check_case(case)


@pytest.mark.parametrize("low", ["float16", "bfloat16"])
@settings(max_examples=3)
@given(case=strategies.tanprod_conv2d_cases(dtypes=("float64",), nonfinite=False))
def test_low_precision(low, case):
    check_case(case, low=low)


@settings(max_examples=5)
@given(case=strategies.tanprod_conv2d_cases(zero_factors=1, nonfinite=False))
def test_deterministic_and_atomic_input_gradients_agree(case):
    forward, backward = contract(case)
    grad = torch.from_numpy(np.random.default_rng(case.seed).standard_normal(
        tuple(forward().shape)).astype(case.dtype))
    atomic = backward(grad)
    with deterministic_algorithms():
        first, second = backward(grad), backward(grad)
    for name in atomic:
        torch.testing.assert_close(first[name], atomic[name], rtol=1e-5, atol=1e-6)
        assert torch.equal(first[name], second[name])


def test_empty_batch():
    case = random_case("tanprod_conv2d", {"input": (0, 2, 4, 4), "weight": (3, 2, 3, 3)})
    forward, backward = contract(case)
    out = forward()
    assert out.shape == (0, 3, 2, 2)
    grads = backward(torch.zeros(out.shape, dtype=torch.float64))
    assert grads["input"].shape == (0, 2, 4, 4)
    assert torch.equal(grads["weight"], torch.zeros(3, 2, 3, 3, dtype=torch.float64))


def test_mixed_or_integer_dtypes_are_a_type_error():
    geometry = tanprod_conv2d_signature((1, 1, 3, 3), (1, 1, 3, 3)).geometry
    x = torch.zeros(1, 1, 3, 3)
    with pytest.raises(TypeError, match="one dtype"):
        tanprod.forward(x, x.double(), geometry)
    with pytest.raises(TypeError, match="float16/float32/float64"):
        tanprod.forward(x.int(), x.int(), geometry)
