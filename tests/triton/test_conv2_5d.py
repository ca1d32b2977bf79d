"""Triton conv2_5d kernels against the float64 reference (interpreter)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_cases import check_case, contract, random_case

from crossconv import strategies
from torch_impl.kernels import conv2_5d


@settings(max_examples=15)
@given(strategies.conv2_5d_cases(nonfinite=False))
def test_forward_and_gradients_match_the_reference(case):
    check_case(case)


@settings(max_examples=8)
@given(strategies.conv2_5d_cases(nonfinite=True))
def test_nan_and_infinite_inputs_and_depths_as_in_the_reference(case):
    check_case(case)


@settings(max_examples=6)
@given(strategies.conv2_5d_cases(dtypes=("float64",), nonfinite=False), st.floats(0.25, 8.0))
def test_constant_depth_opens_only_the_bin_holding_the_centre(case, depth):
    """Constant depth d > 0: every tap is in bin floor(B/2) = [d, d + s) (odd B: the
    middle bin; even B: the centre lies on edge B/2), so the kernels equal conv2d with
    that bin's weight (torch's, in float64)."""
    t = {k: None if v is None else torch.from_numpy(v) for k, v in case.tensors.items()}
    constant = torch.full_like(t["depth"], depth)
    sig_args = {k: case.params[k] for k in ("stride", "padding", "dilation")}
    case = case.with_tensor("depth", constant.numpy())
    forward, _ = contract(case)
    expected = F.conv2d(t["input"], t["weight"][t["weight"].shape[0] // 2], t["bias"], **sig_args)
    torch.testing.assert_close(forward(), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("bins", [1, 2, 3, 4])
def test_windows_whose_centre_depth_is_not_positive_or_finite_add_nothing(bins):
    case = random_case("conv2_5d", {"input": (1, 2, 5, 5), "depth": (1, 1, 5, 5),
                                    "weight": (bins, 3, 2, 3, 3)},
                       low=0.5, high=2.0, seed=bins, padding=1)
    depth = case.tensors["depth"]
    for (row, col), value in zip([(1, 1), (1, 3), (3, 1), (3, 3)],
                                 [0.0, -1.0, np.nan, np.inf]):
        depth[0, 0, row, col] = value
    out = contract(case)[0]()
    assert torch.all(out[0, :, [1, 1, 3, 3], [1, 3, 1, 3]] == 0)
    check_case(case)


def test_an_infinite_input_in_a_closed_bin_is_nan_as_in_the_reference():
    case = random_case("conv2_5d", {"input": (1, 1, 4, 4), "depth": (1, 1, 4, 4),
                                    "weight": (3, 2, 1, 3, 3)}, low=0.5, high=3.0, seed=7,
                       padding=1)
    case.tensors["input"][0, 0, 2, 2] = np.inf
    out = contract(case)[0]().numpy()
    assert np.isnan(out).any() and not np.isnan(out).all()
    check_case(case)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_a_non_finite_weight_reaches_only_the_cells_its_tap_reads(stride, bad):
    """The input gradient of a cell no output reads through the bad tap (the border
    below and right of it, the cells a stride skips) stays finite, as in the reference;
    the gathered product must not form 0 * inf there."""
    case = random_case("conv2_5d", {"input": (1, 2, 5, 5), "depth": (1, 1, 5, 5),
                                    "weight": (3, 2, 2, 3, 3)}, low=0.5, high=1.5, seed=3,
                       padding=1, stride=stride)
    case.tensors["weight"][1, 0, 1, 0, 0] = bad
    grads = check_case(case)
    assert np.isnan(grads["input"]).any() and np.isfinite(grads["input"]).any()


@pytest.mark.parametrize("what,size", [
    ("positions", conv2_5d.POSITIONS[0][1] - 1), ("positions", conv2_5d.POSITIONS[0][1] + 1),
    ("out", conv2_5d.OUT_CHANNELS[0][1] - 1), ("out", conv2_5d.OUT_CHANNELS[0][1] + 1),
    ("in", conv2_5d.IN_CHANNELS[0][1] - 1), ("in", conv2_5d.IN_CHANNELS[0][1] + 1),
])
def test_block_boundaries(what, size):
    """One below and one above the interpreter's blocks of positions (output positions
    and input cells: N*H*W), out channels and in channels."""
    width = size if what == "positions" else 5
    out_channels = size if what == "out" else 2
    in_channels = size if what == "in" else 2
    case = random_case("conv2_5d", {"input": (1, in_channels, 3, width),
                                    "depth": (1, 1, 3, width),
                                    "weight": (3, out_channels, in_channels, 3, 3)},
                       dtype=np.float32, seed=size, padding=1, focal=2.0)
    case.tensors["depth"][:] = np.abs(case.tensors["depth"]) + 0.5
    check_case(case)


@pytest.mark.parametrize("low", ["float16", "bfloat16"])
@settings(max_examples=3)
@given(case=strategies.conv2_5d_cases(dtypes=("float64",), nonfinite=False))
def test_low_precision(low, case):
    check_case(case, low=low)


def test_empty_batch():
    case = random_case("conv2_5d", {"input": (0, 2, 4, 4), "depth": (0, 1, 4, 4),
                                    "weight": (3, 2, 2, 3, 3)})
    forward, backward = contract(case)
    out = forward()
    assert out.shape == (0, 2, 2, 2)
    grads = backward(torch.zeros(out.shape, dtype=torch.float64))
    assert grads["input"].shape == (0, 2, 4, 4)
    assert torch.equal(grads["weight"], torch.zeros(3, 2, 2, 3, 3, dtype=torch.float64))


@pytest.mark.parametrize("splits", [2, 3])
def test_weight_gradient_split_over_positions(splits, monkeypatch):  # 4 blocks of 16
    """The GPU splits the weight gradient's reduction over positions into partial sums;
    the interpreter does not by itself, so force small blocks and several splits."""
    monkeypatch.setattr(conv2_5d, "POSITIONS", ((16, 16), (16, 16)))
    monkeypatch.setattr(conv2_5d, "parallel_splits",
                        lambda programs, chunks, min_chunks=1: min(splits, chunks))
    case = random_case("conv2_5d", {"input": (2, 2, 5, 7), "depth": (2, 1, 5, 7),
                                    "weight": (2, 3, 2, 3, 3)}, seed=splits, padding=1)
    case.tensors["depth"][:] = np.abs(case.tensors["depth"]) + 0.5
    check_case(case)
