"""``python -m crossconv.gpu_check`` without a GPU: its exit-2 path, the card table, and
the table it builds, from a fake crosscheck report, fake kernels and a fake timer (the
real kernels are built on the CPU in tests/triton/test_gpu_check_kernels.py)."""

import pytest
import torch

from crossconv import gpu_check
from crossconv.compare import Worst
from crossconv.crosscheck import Cell, Record, Report
from crossconv.measure import Comparison


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_exits_2_with_one_line(tmp_path, capsys):
    out = tmp_path / "gpu-check.md"
    assert gpu_check.main(["--out", str(out)]) == 2
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("gpu-check: no CUDA GPU here") and "\n" not in printed
    assert not out.exists()


def test_a_bad_option_exits_2():
    assert gpu_check.main(["--no-such-option"]) == 2


@pytest.mark.parametrize("name, card", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H100 NVL", "H100 NVL"), ("NVIDIA H200", "H200 SXM"),
    ("NVIDIA A100-SXM4-40GB", "A100 40GB"), ("NVIDIA A100-SXM4-80GB", "A100 80GB SXM"),
    ("NVIDIA A100 80GB PCIe", "A100 80GB PCIe"),
])
def test_cards_are_found_from_the_device_name(name, card):
    assert gpu_check.card_for(name).name == card


def test_an_unknown_card_has_no_roofline():
    assert gpu_check.card_for("NVIDIA GeForce GTX 1080") is None


def test_the_roofline_is_the_slower_of_compute_and_memory():
    card = gpu_check.Card("test", bandwidth=1e12, fp32=1e13)
    assert gpu_check.roofline_seconds(1e10, 1e6, card) == pytest.approx(1e-3)  # compute
    assert gpu_check.roofline_seconds(1e6, 1e10, card) == pytest.approx(1e-2)  # memory


def _runs(fail=False, nondeterministic=False):
    x = torch.randn(4, 4, requires_grad=True)
    noise = iter(range(100))

    def ours():
        if fail:
            raise RuntimeError("kernel launch failed\nmore")
        return x * 2

    def grads():
        return [torch.full((2,), float(next(noise) if nondeterministic else 1))]

    return gpu_check.Runs(ours, ours, lambda: x * 3, lambda: x * 3, grads, lambda: None)


def _kernel(op, column, **runs_options):
    return gpu_check.Kernel(op, column, "tiny", "anchor-fn", lambda device: _runs(**runs_options),
                            flops=(2e9, 4e9), nbytes=(1e6, 2e6))


def _fake_timer(candidates, sync):
    for fn in candidates.values():
        fn()
    return {"ours forward": 2e-4, "anchor forward": 1e-4, "ours both": 6e-4, "anchor both": 3e-4}


def _report():
    passed = Cell("deform_conv2d", "torch-triton", "PASS",
                  records=[Record("random", "r", None, [Comparison("forward", Worst(0.25))])])
    missing = Cell("deform_conv2d", "jax-pallas", "n/a", reason="jax sees no GPU")
    absent = Cell("conv2d", "torch-triton", "—")
    native = Cell("conv2d", "torch", "PASS",
                  records=[Record("random", "r", None, [Comparison("forward", Worst(0.5))])])
    return Report(list(gpu_check.GPU_COLUMNS),
                  {"deform_conv2d": [passed, missing], "conv2d": [absent, native]}, 1, 0, "cuda")


def test_the_table_from_a_fake_timer():
    card = gpu_check.Card("test", bandwidth=1e12, fp32=1e13)
    kernels = [_kernel("deform_conv2d", "torch-triton"), _kernel("deform_conv2d", "jax-pallas")]
    rows = gpu_check.build_rows(_report(), kernels, "cpu", card, timer=_fake_timer,
                                jax_gpu="n/a: JAX sees no GPU")
    by_key = {(r.op, r.column): gpu_check.cells(r) for r in rows}
    assert set(by_key) == {("deform_conv2d", "torch-triton"), ("deform_conv2d", "jax-pallas"),
                           ("conv2d", "torch")}  # "—" cells get no row
    deform = dict(zip(gpu_check.COLUMNS, by_key["deform_conv2d", "torch-triton"]))
    assert deform["crosscheck"] == "PASS 0.25"
    assert deform["forward"] == "0.200 ms" and deform["forward vs anchor"] == "2.00x"
    assert deform["fwd+bwd vs anchor"] == "2.00x" and deform["anchor"] == "anchor-fn"
    # roofline: forward 2e9/1e13 = 200 us (compute bound); forward+backward 200 + 400 us
    assert deform["roofline fwd / fwd+bwd"] == "200 / 600 us"
    assert deform["of roofline fwd / fwd+bwd"] == "100% / 100%"
    assert deform["backward twice (default; deterministic mode)"] == "bitwise"
    pallas = dict(zip(gpu_check.COLUMNS, by_key["deform_conv2d", "jax-pallas"]))
    assert pallas["crosscheck"] == "n/a: jax sees no GPU" and pallas["forward"] == "n/a: JAX sees no GPU"
    assert by_key["conv2d", "torch"][2] == "PASS 0.5"
    assert not gpu_check.failed(rows)
    text = gpu_check.markdown(rows, "header line", gpu_check.NOTES)
    assert text.startswith("header line\n") and text.count("\n| deform_conv2d |") == 2


def test_a_failing_kernel_and_a_nondeterministic_backward_show_in_their_rows():
    kernels = [_kernel("tanprod_conv2d", "torch-triton", fail=True),
               _kernel("max_pool2d", "torch-triton", nondeterministic=True)]
    rows = gpu_check.build_rows(Report([], {}, 1, 0, "cuda"), kernels, "cpu", None,
                                timer=_fake_timer)
    broken, pool = (dict(zip(gpu_check.COLUMNS, gpu_check.cells(r))) for r in rows)
    assert broken["forward"] == "FAILED: RuntimeError: kernel launch failed"
    assert broken["crosscheck"] == "not run"
    assert pool["backward twice (default; deterministic mode)"] == "differs (gradient 0)"
    assert pool["roofline fwd / fwd+bwd"] == ""  # unknown card
    assert gpu_check.failed(rows)


def test_every_kernel_entry_names_an_op_and_a_gpu_column():
    from crossconv.registry import OPS

    assert {k.column for k in gpu_check.KERNELS} == {"torch-triton", "jax-pallas"}
    for kernel in gpu_check.KERNELS:
        assert kernel.op in OPS and kernel.column in gpu_check.GPU_COLUMNS
        assert all(v > 0 for v in kernel.flops + kernel.nbytes)
