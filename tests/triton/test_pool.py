"""Triton max/avg pooling kernels against the float64 reference (interpreter): torch's
rules exactly, NaN and infinities included."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from kernel_cases import check_case, contract, make_case, random_case

from crossconv import strategies
from crossconv.cases.pool import POOL_INPUT
from torch_impl.kernels import pool


@settings(max_examples=20)
@given(strategies.max_pool2d_cases(nonfinite=True))
def test_max_forward_indices_and_gradient_match_the_reference(case):
    check_case(case)


@settings(max_examples=20)
@given(strategies.avg_pool2d_cases(nonfinite=True))
def test_avg_forward_and_gradient_match_the_reference(case):
    check_case(case)


def test_golden_case():
    max_out, indices = contract(make_case("max_pool2d", input=POOL_INPUT, kernel_size=2,
                                          return_indices=True))[0]()
    avg_out = contract(make_case("avg_pool2d", input=POOL_INPUT, kernel_size=2))[0]()
    assert max_out.flatten().tolist() == [6, 8, 14, 16]
    assert indices.flatten().tolist() == [5, 7, 13, 15]
    assert avg_out.flatten().tolist() == [3.5, 5.5, 11.5, 13.5]


def test_ties_go_to_the_first_tap_and_nan_wins():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2, 3] = np.nan  # in the second window of the second row
    case = make_case("max_pool2d", input=x, kernel_size=2, return_indices=True)
    out, indices = contract(case)[0]()
    assert indices.flatten().tolist() == [0, 2, 8, 11]
    assert torch.isnan(out[0, 0, 1, 1]) and out[0, 0, 0, 0] == 0
    check_case(case)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("size", [pool.CELLS[0][1] - 1, pool.CELLS[0][1] + 1])
def test_block_boundaries(op, size):
    """Output cells (forward) and input cells (backward) one below and one above the
    interpreter's block: 3x3 windows with stride 1 and padding 1 over a 1-row image."""
    case = random_case(op, {"input": (1, 1, 1, size)}, dtype=np.float32, seed=size,
                       kernel_size=3, stride=1, padding=1)
    check_case(case)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("window", [
    {"kernel_size": (2**16, 1), "stride": 1, "padding": (2**15, 0)},
    {"kernel_size": (3, 2**16), "stride": (1, 2**20), "padding": (1, 2**15), "ceil_mode": True},
])
def test_a_window_far_larger_than_the_input_visits_only_the_taps_that_read_it(op, window):
    """65536 taps per window over a 4x5 input: the kernels loop over the few rows and
    columns that read the input (a loop over every tap runs for minutes here)."""
    check_case(random_case(op, {"input": (1, 2, 4, 5)}, seed=3, **window))


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_empty_batch(op):
    forward, backward = contract(random_case(op, {"input": (0, 2, 5, 5)}, kernel_size=2))
    out = forward()
    assert out.shape == (0, 2, 2, 2)
    assert backward(torch.zeros(out.shape, dtype=torch.float64))["input"].shape == (0, 2, 5, 5)


@pytest.mark.parametrize("low", ["float16", "bfloat16"])
@settings(max_examples=3)
@given(case=strategies.max_pool2d_cases(dtypes=("float64",), nonfinite=False))
def test_max_low_precision(low, case):
    check_case(case, low=low)


@pytest.mark.parametrize("low", ["float16", "bfloat16"])
@settings(max_examples=3)
@given(case=strategies.avg_pool2d_cases(dtypes=("float64",), nonfinite=False))
def test_avg_low_precision(low, case):
    check_case(case, low=low)
