"""One torch thread per test process (``make test`` runs pytest with ``-n 2`` on two
cores, and two processes of two threads each would stall on each other's barriers), and
a fixed torch seed before every test, so parameter initialisation is reproducible."""

import sys

import pytest
import torch

from tests.torch.stand_in_kernels import pool_kernels, recording
from torch_impl import common
from torch_impl.native import conv2_5d as native_conv2_5d
from torch_impl.native import deform as native_deform
from torch_impl.native import tanprod as native_tanprod

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


@pytest.fixture
def two_threads():
    """torch on two threads for the test (the suite runs on one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def same_bits_on_one_and_two_threads():
    """``check(run)``: ``run(threads)`` returns a list of tensors; they must be equal bit
    for bit on one thread, on two, and on two again (the thread count is restored)."""

    def check(run):
        before = torch.get_num_threads()
        try:
            results = []
            for threads in (1, 2, 2):
                torch.set_num_threads(threads)
                results.append(run())
        finally:
            torch.set_num_threads(before)
        one, two, again = results
        assert all(torch.equal(a, b) and torch.equal(b, c) for a, b, c in zip(one, two, again))

    return check


@pytest.fixture
def kernels(monkeypatch):
    """Installs stand-in ``torch_impl.kernels.*`` modules; yields the list of calls."""
    calls = []
    for file, native in [("tanprod", native_tanprod), ("conv2_5d", native_conv2_5d),
                         ("deform", native_deform)]:
        monkeypatch.setitem(sys.modules, f"torch_impl.kernels.{file}", recording(native, calls))
    monkeypatch.setitem(sys.modules, "torch_impl.kernels.pool", pool_kernels(calls))
    common._kernel_module.cache_clear()
    yield calls
    common._kernel_module.cache_clear()
