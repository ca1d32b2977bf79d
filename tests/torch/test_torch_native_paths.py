"""The native code's alternative paths, which the parity tests' small shapes do not all
reach: conv2_5d's grouped and dense paths, and tanprod's blocking over samples and output
channels. Each is forced and checked against the reference, forward and gradients."""

import pytest
from hypothesis import given, settings

from crossconv import checks, strategies
from crossconv.registry import Implementation
from torch_impl.native import conv2_5d as native_conv2_5d
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
    """A block smaller than one output plane's factors splits the output channels."""
    monkeypatch.setattr(native_tanprod, "BLOCK_FACTORS", block)

    @settings(max_examples=15)
    @given(strategies.tanprod_conv2d_cases(max_batch=3, max_out_channels=3))
    def run(case):
        _check("tanprod_conv2d", case)

    run()
