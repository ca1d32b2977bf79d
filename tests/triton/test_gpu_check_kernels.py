"""The GPU check's torch-triton kernel entries, built and run once on the CPU (the
interpreter) at a tiny shape: their callables, gradients and determinism check work. The
slow interpreted ones (deform_conv2d, conv2_5d) are left to the GPU run."""

import pytest

from crossconv import gpu_check

FAST = ("tanprod_conv2d", "max_pool2d", "avg_pool2d")


@pytest.mark.parametrize("op", FAST)
def test_the_kernel_entry_runs(monkeypatch, op):
    monkeypatch.setattr(gpu_check, "N", 1)
    monkeypatch.setattr(gpu_check, "C", 2)
    monkeypatch.setattr(gpu_check, "O", 2)
    monkeypatch.setattr(gpu_check, "HW", 4)
    monkeypatch.setattr(gpu_check, "M", 16)
    kernel = next(k for k in gpu_check.KERNELS if k.op == op and k.column == "torch-triton")
    calls = []

    def once(candidates, sync):
        for name, fn in candidates.items():
            fn()
            calls.append(name)
        return dict.fromkeys(candidates, 1e-3)

    row = gpu_check.kernel_row(kernel, "cpu", gpu_check.card_for("NVIDIA H100 80GB HBM3"), once)
    assert not row.problem, row.problem
    assert calls == ["ours forward", "anchor forward", "ours both", "anchor both"]
    assert row.determinism == "bitwise; bitwise"
