"""The native code's chunked paths on worker threads (torch_impl.native.workers), which
the parity tests' single-chunk, single-thread runs do not reach: deform_conv2d and
conv2_5d with one sample per chunk and tanprod_conv2d's eager path with small blocks, on
two threads, NaN/Inf inputs, offsets and masks included, against the reference; and the
same result (bitwise) as one thread."""

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


def test_deform_chunks_on_workers_match_the_reference(monkeypatch, two_threads):
    monkeypatch.setattr(native_deform, "POINTS_PER_CHUNK", 1)  # one sample per chunk

    @settings(max_examples=25)
    @given(strategies.deform_conv2d_cases(max_batch=4, nonfinite=True, nonfinite_offsets=True))
    def run(case):
        _check("deform_conv2d", case)

    run()


def test_conv2_5d_chunks_on_workers_match_the_reference(monkeypatch, two_threads):
    monkeypatch.setattr(native_conv2_5d, "POSITIONS_PER_CHUNK", 1)

    @settings(max_examples=15)
    @given(strategies.conv2_5d_cases(max_batch=4, nonfinite=True))
    def run(case):
        _check("conv2_5d", case)

    run()


def test_tanprod_blocks_on_workers_match_the_reference(monkeypatch, two_threads):
    """The eager path's blocks (the compiled path shares tiles out among OpenMP threads:
    test_torch_native_compiled)."""
    monkeypatch.setenv("CROSSCONV_NO_COMPILE", "1")
    for name in ("FORWARD_FACTORS", "BLOCK_FACTORS", "TILE_FACTORS"):
        monkeypatch.setattr(native_tanprod, name, 40)

    @settings(max_examples=15)
    @given(strategies.tanprod_conv2d_cases(max_batch=3, max_out_channels=3, nonfinite=True))
    def run(case):
        _check("tanprod_conv2d", case)

    run()


def test_workers_give_the_one_thread_result_bitwise(monkeypatch, same_bits_on_one_and_two_threads):
    import torch_impl

    monkeypatch.setattr(native_deform, "POINTS_PER_CHUNK", 1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, 7, 6, generator=g, requires_grad=True)
    offset = (torch.rand(5, 36, 7, 6, generator=g) * 4 - 2).requires_grad_()
    mask = torch.rand(5, 18, 7, 6, generator=g, requires_grad=True)
    weight = torch.randn(6, 2, 3, 3, generator=g, requires_grad=True)

    def run():
        for t in (x, offset, mask, weight):
            t.grad = None
        out = torch_impl.deform_conv2d(x, offset, weight, padding=1, mask=mask, impl="native")
        out.backward(torch.cos(out))
        return [out.detach()] + [t.grad for t in (x, offset, mask, weight)]

    before = torch.get_num_threads()
    same_bits_on_one_and_two_threads(run)
    assert torch.get_num_threads() == before
