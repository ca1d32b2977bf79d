"""Triton deform_conv2d kernels against the float64 reference (interpreter): generated
cases, the border and NaN conventions, block boundaries, the two backward paths."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from kernel_cases import check_case, contract, deterministic_algorithms, make_case, random_case

from crossconv import strategies
from crossconv.cases.deform import SEED_DEFORM_OUTPUT, seed_deform_arguments
from torch_impl.kernels import deform


@settings(max_examples=15)
@given(strategies.deform_conv2d_cases(nonfinite=False, nonfinite_offsets=False))
def test_forward_and_gradients_match_the_reference(case):
    check_case(case)


@settings(max_examples=10)
@given(strategies.deform_conv2d_cases(nonfinite=True, nonfinite_offsets=True))
def test_nan_and_infinite_inputs_and_offsets_as_in_the_reference(case):
    check_case(case)


def test_seed_golden_case():
    x, offset, weight = seed_deform_arguments()
    forward, _ = contract(make_case("deform_conv2d", input=x, offset=offset, weight=weight))
    assert np.array_equal(forward().numpy(), SEED_DEFORM_OUTPUT)


def _boundary_case(seed, mask, dtype=np.float64, groups=1, offset_groups=2):
    """Sample points landing exactly on -1, 0, H-1, H (and W), on integers, far outside
    (+-1e6, +-inf) and in between, mixed per tap and position."""
    rng = np.random.default_rng(seed)
    n, c, h, w, o, k, out = 2, 4, 4, 5, 4, 3, (4, 5)
    taps = k * k
    rows = np.repeat(np.arange(k), k)[:, None, None] + np.arange(out[0])[None, :, None] - 1
    cols = np.tile(np.arange(k), k)[:, None, None] + np.arange(out[1])[None, None, :] - 1
    specials = lambda size: np.array([-1.0, 0.0, size - 1.0, size, -1e6, 1e6, -np.inf, np.inf,  # noqa: E731
                                      -0.5, size - 0.5, 1.0, -1.0 - 1e-9, size + 1e-9])
    shape = (n, offset_groups, taps, *out)
    ty = rng.choice(specials(h), shape)
    tx = rng.choice(specials(w), shape)
    keep = rng.uniform(size=shape) < 0.3  # some points on an ordinary grid of fractions
    ty = np.where(keep, rng.uniform(-1.5, h + 0.5, shape).round(1), ty)
    tx = np.where(keep, rng.uniform(-1.5, w + 0.5, shape).round(1), tx)
    with np.errstate(invalid="ignore"):
        offset = np.stack([ty - rows, tx - cols], axis=3).reshape(n, -1, *out)
    return make_case(
        "deform_conv2d", seed,
        input=rng.standard_normal((n, c, h, w)).astype(dtype),
        offset=offset.astype(dtype),
        weight=rng.standard_normal((o, c // groups, k, k)).astype(dtype),
        mask=rng.uniform(0.0, 1.0, (n, offset_groups * taps, *out)).astype(dtype) if mask else None,
        padding=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mask", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_points_on_and_beyond_the_border(seed, mask, dtype):
    check_case(_boundary_case(seed, mask, dtype, groups=1 + seed % 2, offset_groups=1 + mask))


def test_a_nan_coordinate_gives_a_nan_sample_and_nan_offset_and_mask_gradients():
    case = random_case("deform_conv2d", {"input": (1, 2, 4, 4), "offset": (1, 18, 4, 4),
                                         "weight": (3, 2, 3, 3), "mask": (1, 9, 4, 4)},
                       seed=5, padding=1)
    case.tensors["offset"][0, 2 * 4, 1, 2] = np.nan  # tap 4, dy only, output (1, 2)
    out = contract(case)[0]().numpy()
    assert np.isnan(out[0, :, 1, 2]).all() and np.isfinite(np.delete(out.reshape(3, -1), 6, 1)).all()
    grads = check_case(case)
    assert np.isnan(grads["offset"][0, 8:10, 1, 2]).all()
    assert np.isnan(grads["mask"][0, 4, 1, 2])
    assert np.isfinite(grads["input"]).all()  # the NaN point sends nothing to the input


@settings(max_examples=5)
@given(strategies.deform_conv2d_cases(nonfinite=False, nonfinite_offsets=False))
def test_deterministic_and_atomic_backward_agree(case):
    forward, backward = contract(case)
    grad = torch.from_numpy(np.random.default_rng(case.seed).standard_normal(
        tuple(forward().shape)).astype(case.dtype))
    atomic = backward(grad)
    with deterministic_algorithms():
        first, second = backward(grad), backward(grad)
    tol = 1e-12 if case.dtype == np.float64 else 1e-5
    for name in atomic:
        torch.testing.assert_close(first[name], atomic[name], rtol=tol, atol=tol, equal_nan=True)
        assert torch.equal(first[name].nan_to_num(), second[name].nan_to_num())


@pytest.mark.parametrize("what,size", [
    ("positions", deform.POSITIONS[0][1] - 1), ("positions", deform.POSITIONS[0][1] + 1),
    ("out", deform.OUT_CHANNELS[0][1] - 1), ("out", deform.OUT_CHANNELS[0][1] + 1),
    ("in", deform.IN_CHANNELS[0][1] - 1), ("in", deform.IN_CHANNELS[0][1] + 1),
])
def test_block_boundaries(what, size):
    """One below and one above the interpreter's blocks of positions, out channels per
    weight group and in channels per offset group (two groups of each)."""
    width = size if what == "positions" else 4
    group_out = size if what == "out" else 2
    group_in = size if what == "in" else 2
    k = 1 if what == "positions" else 3
    case = random_case("deform_conv2d", {"input": (1, 2 * group_in, 3, width),
                                         "offset": (1, 2 * 2 * k * k, 3, width),
                                         "weight": (2 * group_out, group_in, k, k),
                                         "mask": (1, 2 * k * k, 3, width)},
                       dtype=np.float32, seed=size, padding=k // 2)
    check_case(case)


@pytest.mark.parametrize("low", ["float16", "bfloat16"])
@settings(max_examples=3)
@given(case=strategies.deform_conv2d_cases(dtypes=("float64",), nonfinite=False,
                                             nonfinite_offsets=False))
def test_low_precision(low, case):
    check_case(case, low=low)


@pytest.mark.parametrize("mask", [False, True])
def test_empty_batch(mask):
    shapes = {"input": (0, 2, 4, 4), "offset": (0, 18, 2, 2), "weight": (3, 2, 3, 3)}
    if mask:
        shapes["mask"] = (0, 9, 2, 2)
    forward, backward = contract(random_case("deform_conv2d", shapes))
    out = forward()
    assert out.shape == (0, 3, 2, 2)
    grads = backward(torch.zeros(out.shape, dtype=torch.float64))
    assert grads["offset"].shape == (0, 18, 2, 2) and grads["input"].shape == (0, 2, 4, 4)
    assert torch.equal(grads["weight"], torch.zeros(3, 2, 3, 3, dtype=torch.float64))
    assert ("mask" in grads) == mask


def test_backward_split_over_position_tiles(monkeypatch):
    """On a GPU the backward's programs stride over position tiles (s, s+S, ...) and
    keep weight-gradient partials per split; force that here: 3 tiles of 16 positions
    over 2 splits, atomic and two-pass input gradients."""
    monkeypatch.setattr(deform, "POSITIONS", ((16, 16), (16, 16)))
    monkeypatch.setattr(deform, "parallel_splits",
                        lambda programs, chunks, min_chunks=1: min(2, chunks))
    case = random_case("deform_conv2d", {"input": (2, 4, 4, 6), "offset": (2, 2 * 9, 4, 6),
                                         "weight": (4, 2, 3, 3), "mask": (2, 9, 4, 6)},
                       low=-1.5, high=1.5, seed=2, padding=1)
    check_case(case)
    with deterministic_algorithms():
        check_case(case)
