"""What verify survives and finds beyond arithmetic: one planted mistake per capability
(a crash, a hang, a batch-chunking bug, a tile remainder, a large-template path, a
contiguity assumption, half-precision accumulation, a non-deterministic backward, a
batch-dependent result), the Python API, Ctrl-C, the saved regression test, and the
kernels of the tutorial posts (docs/verify.md)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import crossconv
import reference
from crossconv.cli import main
from crossconv.registry import OPS
from crossconv.strategy_options import PINS
from crossconv.verification.options import spec_arguments
from crossconv.verification.report import stress_of
from tests.tool import planted_mistakes

ROOT = Path(__file__).resolve().parents[2]
PLANTED = "tests.tool.planted_mistakes"
USER = "tests.tool.user_kernels"


def verify(capsys, *args):
    code = main(["verify", *args])
    return code, capsys.readouterr().out


def first_line(out: str) -> str:
    return out.splitlines()[0]


# ----------------------------------------------------------------------------- survives


def test_a_segfault_fails_its_case_and_verify_goes_on(capsys):
    code, out = verify(capsys, f"{PLANTED}:conv2d_segfaulting_on_nan", "--op", "conv2d",
                       "--examples", "0")
    assert code == 1
    assert "crashed with SIGSEGV" in first_line(out)
    assert "NaN, +inf and -inf input cells" in out  # the case that crashed it, as a snippet
    assert "result = implementation(input=tensor(input, 'contiguous')" in out


def test_a_hang_times_out_and_the_snippet_exits_1_the_same_way(capsys):
    code, out = verify(capsys, f"{PLANTED}:avg_pool2d_hanging_on_nan", "--op", "avg_pool2d",
                       "--examples", "0", "--timeout", "2")
    assert code == 1 and "did not return within 2 s" in first_line(out)
    assert "_give_up_after(2)" in out
    result = subprocess.run([sys.executable, "-c", out], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1, result.stderr
    assert "still differs: did not return within 2 s" in result.stdout


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_ctrl_c_prints_the_case_in_flight_and_exits_130():
    process = subprocess.Popen(
        [sys.executable, "-m", "crossconv", "verify", f"{PLANTED}:avg_pool2d_hanging_on_nan",
         "--op", "avg_pool2d", "--examples", "0", "--timeout", "120"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _children(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # the worker loads, runs the cases before the NaN one and hangs there
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130, out
    assert "interrupted (Ctrl-C) while running avg_pool2d" in out
    assert "def test_counterexample():" in out


# ----------------------------------------------------------------------------- finds


@pytest.mark.parametrize("function, op, case", [
    ("conv2d_in_batch_chunks", "conv2d", "a batch of 3"),
    ("max_pool2d_dropping_the_last_tile", "max_pool2d", "an output row of 33"),
    ("xcorr2d_fft_path_for_large_templates", "xcorr2d", "a 17x17 template"),
])
def test_a_bug_that_lives_only_in_large_cases_is_caught(capsys, function, op, case):
    code, out = verify(capsys, f"{PLANTED}:{function}", "--op", op, "--examples", "0",
                       "--in-process")
    assert code == 1 and "mismatch" in first_line(out) and case in out


@pytest.mark.parametrize("stress, check", [
    ("batch", lambda case: case.tensors["input"].shape[0] in (3, 5, 7)),
    ("size", lambda case: max(OPS["conv2d"].reference(**case.tensors, **case.params).shape[-2:]) > 32),
    ("kernel", lambda case: max(case.tensors["weight"].shape[-2:]) > 3),
])
def test_the_large_tier_reaches_where_kernels_break(stress, check):
    seen = []

    @settings(max_examples=40, database=None, suppress_health_check=list(HealthCheck))
    @given(OPS["conv2d"].cases(large=1.0, nonfinite=False))
    def draw(case):
        if stress_of(case) == stress:
            seen.append(check(case))

    draw()
    assert seen and any(seen)


def test_xcorr_and_deform_large_draws_have_long_templates_and_many_offset_groups():
    templates, groups = [], []

    @settings(max_examples=30, database=None, suppress_health_check=list(HealthCheck))
    @given(OPS["xcorr2d"].cases(large=1.0), OPS["deform_conv2d"].cases(large=1.0))
    def draw(xcorr, deform):
        templates.append(max(xcorr.tensors["template"].shape[-2:]))
        taps = int(np.prod(deform.tensors["weight"].shape[-2:]))
        groups.append(deform.tensors["offset"].shape[1] // (2 * taps))

    draw()
    assert max(templates) > 16 and max(groups) > 2


def test_a_contiguity_assumption_fails_naming_the_layout(capsys):
    pytest.importorskip("torch")
    code, out = verify(capsys, f"{PLANTED}:conv2d_assuming_contiguous_input", "--op", "conv2d",
                       "--framework", "torch", "--examples", "0", "--in-process")
    assert code == 1 and "[non-contiguous]" in first_line(out)


def test_half_precision_accumulation_fails(capsys):
    """F.conv2d passes the same half-precision draws (test_verify_command.py)."""
    pytest.importorskip("torch")
    code, out = verify(capsys, f"{PLANTED}:conv2d_accumulating_in_half_precision", "--op", "conv2d",
                       "--framework", "torch", "--examples", "15", "--in-process",
                       "--limit", "dtypes=('float16',)")
    assert code == 1 and "mismatch" in first_line(out) and "[float16" in out


def test_a_nondeterministic_backward_fails_or_warns_when_allowed(capsys):
    pytest.importorskip("torch")
    args = ["--op", "conv2d", "--framework", "torch", "--grad", "--examples", "0", "--in-process",
            "--limit", "dtypes=('float32',)"]
    code, out = verify(capsys, f"{PLANTED}:conv2d_with_nondeterministic_weight_gradient", *args)
    assert code == 1 and "non-deterministic" in first_line(out) and "d/dweight" in first_line(out)
    code, out = verify(capsys, f"{PLANTED}:conv2d_with_nondeterministic_weight_gradient", *args,
                       "--allow", "nondeterministic")
    assert code == 0 and "warning (" in out and "non-deterministic" in out


def test_a_batch_dependent_result_is_reported_and_fails_when_invariance_is_required(capsys):
    pytest.importorskip("torch")
    args = ["--op", "conv2d", "--framework", "torch", "--examples", "0", "--in-process"]
    code, out = verify(capsys, f"{PLANTED}:conv2d_scaled_by_the_batch_maximum", *args)
    assert code == 0 and "batch invariance: held on" in out and "changed when the other samples" in out
    code, out = verify(capsys, f"{PLANTED}:conv2d_scaled_by_the_batch_maximum", *args,
                       "--require", "batch-invariance")
    assert code == 1 and "batch invariance" in first_line(out)


# ----------------------------------------------------------------------------- the API


def test_the_api_returns_a_report_and_raises_a_counterexample_with_the_snippet(tmp_path):
    report = crossconv.verify(reference.conv2d, op="conv2d", examples=5, isolate=False)
    assert report.passed and report.features.kinds["drawn"] == 5
    with pytest.raises(AssertionError) as raised:
        crossconv.verify(planted_mistakes.conv2d_in_batch_chunks, op="conv2d", examples=0,
                         save_counterexample=tmp_path / "test_regression.py")
    assert isinstance(raised.value, crossconv.Counterexample)
    assert "def test_counterexample():" in str(raised.value)
    saved = (tmp_path / "test_regression.py").read_text()
    assert saved == raised.value.snippet
    still = subprocess.run([sys.executable, str(tmp_path / "test_regression.py")], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert still.returncode == 1 and "still differs" in still.stdout
    fixed = saved.replace("from tests.tool.planted_mistakes import conv2d_in_batch_chunks",
                          "from reference import conv2d")
    (tmp_path / "test_fixed.py").write_text(fixed)
    done = subprocess.run([sys.executable, str(tmp_path / "test_fixed.py")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "matches the reference now" in done.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a lambda needs a forked worker")
def test_the_api_takes_a_lambda_in_a_forked_worker(capsys):
    report = crossconv.verify(lambda **kw: reference.avg_pool2d(**kw), op="avg_pool2d", examples=3,
                              progress=True)
    assert report.passed and report.isolation == "forked"
    assert "verify:" in capsys.readouterr().err  # the progress line


def test_every_argument_of_every_op_has_a_limit_key():
    for op in OPS:
        _, optional = spec_arguments(op)
        assert set(optional) == set(PINS[op]), op


# ----------------------------------------------------------------------------- the posts


def test_the_tutorial_pool2d_is_caught_mixing_channels(capsys):
    pytest.importorskip("torch")
    code, out = verify(capsys, f"{USER}:pool2d_max", "--op", "max_pool2d", "--framework", "torch",
                       "--in-process", "--limit", "dtypes=('float32',)", "--limit", "square=True")
    assert code == 1
    assert "not tested: padding, dilation, ceil_mode, return_indices" in out
    assert "worst at (0, 1," in first_line(out) or "worst at (1," in first_line(out)


def test_the_tutorial_conv2d_passes_with_the_narrowing_it_needs(capsys):
    pytest.importorskip("torch")
    code, out = verify(capsys, f"{USER}:conv2d_loops", "--op", "conv2d", "--framework", "torch",
                       "--grad", "--in-process", "--examples", "10", "--limit", "dtypes=('float32',)",
                       "--limit", "bias=True", "--limit", "square=True", "--limit",
                       "string_padding=False")
    assert code == 0, out
    assert "not tested: dilation, groups" in out


def test_the_articles_planar_offsets_are_caught(capsys):
    pytest.importorskip("torchvision")
    code, out = verify(capsys, f"{USER}:deform_conv2d_planar_offsets", "--op", "deform_conv2d",
                       "--framework", "torch", "--in-process", "--examples", "0",
                       "--limit", "nonfinite_offsets=False")
    assert code == 1 and "mismatch" in first_line(out)
