"""The native code's alternative paths, which the parity tests' small shapes do not all
reach: conv2_5d's grouped and dense paths, tanprod's eager tiles of output rows and chunks of
output channels (and its product tree over odd numbers of channel groups), deform's
blocks of positions in the forward. Each is forced and checked against the reference,
forward and gradients."""

import pytest
import torch
from hypothesis import given, settings

from crossconv import checks, strategies
from crossconv.registry import Implementation
from torch_impl.native import conv2_5d as native_conv2_5d
from torch_impl.native import deform as native_deform
from torch_impl.native import tanprod as native_tanprod


def _check(op, case):
    impl = Implementation(op, "torch")
    checks.check_forward(impl, case)
    checks.check_vjp(impl, case)


@pytest.mark.parametrize("width, path", [(0, "grouped by bin"), (10**9, "dense")])
def test_conv2_5d_paths_match_the_reference(monkeypatch, width, path):
    monkeypatch.setattr(native_conv2_5d, "DENSE_WIDTH", width)

    @settings(max_examples=30)
    @given(strategies.conv2_5d_cases(max_channels=3, max_bins=4))
    def run(case):
        _check("conv2_5d", case)

    run()


@pytest.mark.parametrize("block", [1, 40, 700])
def test_tanprod_blocks_match_the_reference(monkeypatch, block):
    """The eager path's blocks, tiles and chunks smaller than one output plane's factors:
    the forward splits the output channels, the backward takes one output row per tile
    and one output channel per chunk; up to 5 channels, so the tree across channel groups
    has odd levels. (The compiled path's tiles: test_torch_native_compiled.)"""
    monkeypatch.setenv("CROSSCONV_NO_COMPILE", "1")
    for name in ("FORWARD_FACTORS", "BLOCK_FACTORS", "TILE_FACTORS"):
        monkeypatch.setattr(native_tanprod, name, block)

    @settings(max_examples=15)
    @given(strategies.tanprod_conv2d_cases(max_batch=3, max_channels=5, max_out_channels=3))
    def run(case):
        _check("tanprod_conv2d", case)

    run()


@pytest.mark.parametrize("rows", range(1, 10))
def test_tanprod_tree_gives_every_leave_one_out_product(rows):
    g = torch.Generator().manual_seed(rows)
    values = torch.rand(rows, 7, generator=g, dtype=torch.float64) * 2 - 1
    values[rows // 2, 3] = 0.0  # exact where a value is 0
    seed = torch.rand(7, generator=g, dtype=torch.float64)
    tree = native_tanprod._Tree(values, torch.float64)
    total = tree.run(seed)
    expected = torch.stack([seed * torch.cat((values[:r], values[r + 1:])).prod(0) for r in range(rows)])
    torch.testing.assert_close(tree.down[0], expected, rtol=1e-14, atol=0)
    torch.testing.assert_close(total, seed * values.prod(0), rtol=1e-14, atol=0)


@pytest.mark.parametrize("floats", [1, 50])
def test_deform_forward_blocks_match_the_reference(monkeypatch, floats):
    """The forward's blocks of positions (one position per block, or a few), offset groups
    and non-finite data included."""
    monkeypatch.setattr(native_deform, "COLUMN_FLOATS", floats)

    @settings(max_examples=15)
    @given(strategies.deform_conv2d_cases(max_batch=2, nonfinite=True, nonfinite_offsets=True))
    def run(case):
        _check("deform_conv2d", case)

    run()
