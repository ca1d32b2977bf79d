"""The compiled loops of the native code (``torch_impl/native/tanprod.c``, built by
``torch_impl.native.compiled``): they build on a machine with a C compiler and the op
uses them; against the reference on small tiles and several threads, zero factors and
NaN/Inf included; the same bits on one thread and two; one OpenMP runtime in the
process; and without a compiler, or with a broken one, the eager path."""

import os
import shutil
import sys

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings

import reference
import torch_impl
from crossconv import checks, strategies
from crossconv.measure import trivially_zero
from crossconv.registry import Implementation
from torch_impl.native import compiled
from torch_impl.native import tanprod as native_tanprod

CPU = torch.device("cpu")
HAVE_COMPILER = shutil.which(os.environ.get("CC", "cc")) is not None
needs_compiler = pytest.mark.skipif(not HAVE_COMPILER, reason="no C compiler on this machine")


@pytest.fixture
def fresh_cache(monkeypatch, tmp_path):
    """An empty compiled-code cache and no library loaded yet in this process."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(compiled, "_libraries", {})
    return tmp_path / "crossconv" / "compiled"


def _refuse(*args, **kwargs):
    raise AssertionError("this path must not run")


@needs_compiler
def test_the_op_runs_the_compiled_loops_on_the_cpu(monkeypatch):
    assert native_tanprod._loops(CPU) is not None
    monkeypatch.setattr(native_tanprod, "_eager_forward", _refuse)
    monkeypatch.setattr(native_tanprod, "_eager_backward", _refuse)
    x = torch.rand(2, 3, 5, 5, requires_grad=True)
    w = torch.rand(4, 3, 3, 3, requires_grad=True)
    torch_impl.tanprod_conv2d(x, w, padding=1, impl="native").sum().backward()
    assert x.grad.abs().sum() > 0 and w.grad.abs().sum() > 0


def test_without_a_compiler_the_eager_path_runs(monkeypatch):
    monkeypatch.setenv("CROSSCONV_NO_COMPILE", "1")
    assert native_tanprod._loops(CPU) is None
    monkeypatch.setattr(native_tanprod, "_compiled_forward", _refuse)
    monkeypatch.setattr(native_tanprod, "_compiled_backward", _refuse)
    x = torch.rand(2, 3, 5, 5, requires_grad=True)
    torch_impl.tanprod_conv2d(x, torch.rand(4, 3, 3, 3), padding=1).sum().backward()
    assert x.grad.abs().sum() > 0


def test_a_compiler_that_fails_warns_once_and_the_eager_path_runs(monkeypatch, fresh_cache, tmp_path):
    broken = tmp_path / "broken-cc"
    broken.write_text("#!/bin/sh\necho 'cc: out of licences' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    with pytest.warns(RuntimeWarning, match="out of licences"):
        assert native_tanprod._loops(CPU) is None
    assert native_tanprod._loops(CPU) is None  # remembered: no second attempt, no warning
    assert not list(fresh_cache.glob("*"))  # nothing half-written is left behind
    x = torch.rand(1, 2, 4, 4)
    torch.testing.assert_close(
        torch_impl.tanprod_conv2d(x, torch.rand(3, 2, 2, 2)).shape, torch.Size([1, 3, 3, 3]))


@needs_compiler
def test_each_machine_compiles_once(monkeypatch, fresh_cache):
    assert native_tanprod._loops(CPU) is not None
    (built,) = fresh_cache.glob("tanprod-*.so")
    stamp = built.stat().st_mtime_ns
    monkeypatch.setattr(compiled, "_libraries", {})  # a new process, as far as the cache knows
    assert native_tanprod._loops(CPU) is not None
    assert list(fresh_cache.glob("*")) == [built] and built.stat().st_mtime_ns == stamp


@needs_compiler
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_the_loops_share_torchs_openmp_runtime():
    x = torch.rand(4, 3, 6, 6)
    torch_impl.tanprod_conv2d(x, torch.rand(2, 3, 3, 3), impl="native")
    with open("/proc/self/maps") as maps:
        runtimes = {line.split()[-1] for line in maps if "libgomp" in line or "libiomp" in line}
    assert len(runtimes) <= 1, runtimes


@pytest.fixture(params=["compiled", "eager"])
def path(request, monkeypatch):
    if request.param == "compiled" and not HAVE_COMPILER:
        pytest.skip("no C compiler on this machine")
    if request.param == "eager":
        monkeypatch.setenv("CROSSCONV_NO_COMPILE", "1")
    return request.param


@pytest.mark.parametrize("tile_factors", [1, 60])
def test_small_tiles_on_two_threads_match_the_reference(monkeypatch, path, two_threads, tile_factors):
    """One output row per tile (or a few): bands that share input rows, the padding at
    both ends, strides and dilations, zero factors and NaN/Inf, on two threads."""
    monkeypatch.setattr(native_tanprod, "TILE_FACTORS", tile_factors)
    impl = Implementation("tanprod_conv2d", "torch")

    @settings(max_examples=20)
    @given(strategies.tanprod_conv2d_cases(max_batch=3, max_channels=3, max_out_channels=3,
                                           zero_factors=2))
    def run(case):
        with np.errstate(all="ignore"):
            expected = reference.tanprod_conv2d(**case.tensors, **case.params)
        assume(not trivially_zero(expected))
        checks.check_forward(impl, case)
        checks.check_vjp(impl, case)

    run()


def test_an_exact_zero_factor_gets_its_exact_gradient(path):
    """The worked example of docs/tanprod.md: one window, u = x + w = [[0.2, 0], [0.3, 0.5]]."""
    x = torch.tensor([[[[0.1, 0.2], [0.3, 0.4]]]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([[[[0.1, -0.2], [0.0, 0.1]]]], dtype=torch.float64, requires_grad=True)
    out = torch_impl.tanprod_conv2d(x, w, impl="native")
    out.backward(torch.ones_like(out))
    expected = np.tan(0.2) * np.tan(0.3) * np.tan(0.5)
    assert out.item() == 0.0
    for grad in (x.grad, w.grad):
        torch.testing.assert_close(grad, torch.tensor([[[[0.0, expected], [0.0, 0.0]]]],
                                                      dtype=torch.float64), rtol=1e-14, atol=0)


def test_float64_gradients_pass_gradcheck(path):
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(2, 2, 5, 4, generator=g, dtype=torch.float64) - 0.5).requires_grad_()
    w = (torch.rand(3, 2, 2, 3, generator=g, dtype=torch.float64) - 0.5).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, w: torch_impl.tanprod_conv2d(x, w, stride=(2, 1), padding=(1, 2),
                                               dilation=(1, 2), impl="native"), (x, w))


@needs_compiler
def test_the_compiled_gradients_do_not_depend_on_the_number_of_threads(
        monkeypatch, same_bits_on_one_and_two_threads):
    monkeypatch.setattr(native_tanprod, "TILE_FACTORS", 1)  # a tile per output row
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(3, 4, 9, 7, generator=g) - 0.5).requires_grad_()
    w = (torch.rand(5, 4, 3, 3, generator=g) - 0.5).requires_grad_()

    def run():
        x.grad = w.grad = None
        out = torch_impl.tanprod_conv2d(x, w, padding=1, impl="native")
        out.backward(torch.cos(out))
        return out.detach(), x.grad, w.grad

    same_bits_on_one_and_two_threads(run)


def test_both_paths_agree_in_float64(monkeypatch):
    if not HAVE_COMPILER:
        pytest.skip("no C compiler on this machine")
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 6, 6, generator=g, dtype=torch.float64) - 0.5
    w = torch.rand(4, 3, 3, 3, generator=g, dtype=torch.float64) - 0.5
    grad = torch.randn(2, 4, 6, 6, generator=g, dtype=torch.float64)

    def run():
        xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
        out = torch_impl.tanprod_conv2d(xr, wr, padding=1, impl="native")
        out.backward(grad)
        return out.detach(), xr.grad, wr.grad

    compiled_results = run()
    monkeypatch.setenv("CROSSCONV_NO_COMPILE", "1")
    for a, b in zip(compiled_results, run()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    expected = reference.tanprod_conv2d(x.numpy(), w.numpy(), padding=1)
    np.testing.assert_allclose(compiled_results[0].numpy(), expected, rtol=1e-12)


FORK_SCRIPT = """
import os, signal, torch, torch_impl
torch.set_num_threads(2)
x, w = torch.rand(4, 3, 16, 16, requires_grad=True), torch.rand(5, 3, 3, 3)
torch_impl.tanprod_conv2d(x, w, padding=1).sum().backward()  # OpenMP threads now exist
pid = os.fork()
if pid == 0:
    signal.alarm(60)  # a hung child dies rather than lingering
    x.grad = None
    torch_impl.tanprod_conv2d(x, w, padding=1).sum().backward()
    os._exit(0 if bool(x.grad.abs().sum() > 0) else 3)
_, status = os.waitpid(pid, 0)
raise SystemExit(os.waitstatus_to_exitcode(status))
"""


@needs_compiler
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_runs_the_loops_without_hanging():
    """GNU OpenMP cannot start threads in a child forked after its threads exist; the
    loops run on the calling thread there instead of waiting forever."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True,
                          timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 0, done.stderr[-2000:]
