"""``crossconv verify`` through its CLI entry point: the planted mistakes are caught with a
runnable counterexample, the torch and torchvision ops pass, options behave as specified.

Most runs here use ``--in-process`` (no worker to start); the tests of what only a worker
survives (a segfault, a hang, Ctrl-C) and the default path use the worker."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from crossconv.cli import main

ROOT = Path(__file__).resolve().parents[2]
PLANTED = "tests.tool.planted_mistakes"
SAMPLES = "tests.tool.sample_implementations"


def verify(capsys, *args):
    code = main(["verify", *args])
    return code, capsys.readouterr().out


def run_program(text: str, expect: int = 1) -> str:
    """Run printed output as a program; it must exit ``expect``."""
    result = subprocess.run([sys.executable, "-c", text], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == expect, (result.stdout, result.stderr)
    return result.stdout + result.stderr


def worst_values(printed: str) -> tuple[float, float]:
    actual, expected = re.search(r"worst at \([\d, ]*\): (\S+) vs expected (\S+)", printed).groups()
    return float(actual.rstrip(":")), float(expected)


@pytest.mark.parametrize("function, op, shows", [
    ("deform_conv2d_swapped_offsets", "deform_conv2d", "mismatch"),
    ("max_pool2d_ignoring_ceil_mode", "max_pool2d", "shape"),
    ("conv2_5d_closed_bins", "conv2_5d", "mismatch"),
    ("conv2d_same_padding_off_by_one", "conv2d", "mismatch"),
])
def test_a_planted_mistake_is_caught_and_the_output_is_a_runnable_regression_test(capsys, function,
                                                                                   op, shows):
    code, out = verify(capsys, f"{PLANTED}:{function}", "--op", op)
    assert code == 1
    assert out.startswith("# FAIL") and shows in out.splitlines()[0]
    printed = run_program(out)  # the whole output: comments and the program
    assert "still differs" in printed and shows in printed
    if shows == "mismatch":
        actual, expected = worst_values(printed)
        assert actual != pytest.approx(expected, rel=1e-3)


def test_a_drawn_counterexample_is_shrunk(capsys):
    """Wrong only with groups == 2 (no boundary case has it): found by a draw, shrunk."""
    code, out = verify(capsys, f"{SAMPLES}:conv2d_wrong_for_two_groups", "--op", "conv2d",
                       "--in-process")
    assert code == 1 and "drawn, then shrunk by Hypothesis" in out
    assert "'groups': 2" in out
    # Shrunk: one sample, the smallest channel counts (2 in, 2 out), no bias.
    assert "bias = None" in out and re.search(r"\(input=\(1, 2, \d+, \d+\), weight=\(2, 1,", out)
    actual, expected = worst_values(run_program(out))
    assert actual == pytest.approx(expected + 1, rel=1e-5, abs=1e-5)


def test_a_function_raising_on_a_valid_call_fails_with_the_call_shown(capsys):
    code, out = verify(capsys, f"{SAMPLES}:conv2d_refusing_groups", "--op", "conv2d", "--in-process")
    assert code == 1 and "raised NotImplementedError: groups > 1" in out
    assert "result = implementation(input=tensor(input, 'contiguous'), weight=" in out
    assert "NotImplementedError: groups > 1" in run_program(out)


def test_a_wrong_return_type_is_described(capsys):
    code, out = verify(capsys, f"{SAMPLES}:max_pool2d_returning_a_list", "--op", "max_pool2d",
                       "--in-process", "--examples", "0")
    assert code == 1
    assert "returned a list of 2 items; return a tuple (values, indices) of arrays" in out


@pytest.mark.parametrize("target, op, limits", [
    ("torch.nn.functional:conv2d", "conv2d", []),
    ("torch.nn.functional:max_pool2d", "max_pool2d", []),
    ("torch.nn.functional:avg_pool2d", "avg_pool2d", []),
    # torchvision crashes on NaN offsets; its float16 kernel computes sample coordinates in
    # half precision and is off by up to ~2%: docs/verify.md.
    ("torchvision.ops:deform_conv2d", "deform_conv2d",
     ["--limit", "nonfinite_offsets=False", "--limit", "dtypes=('float32', 'float64')"]),
])
def test_the_torch_and_torchvision_ops_pass_forward_gradients_layouts_and_half(capsys, target, op,
                                                                                limits):
    pytest.importorskip("torchvision")
    code, out = verify(capsys, target, "--op", op, "--framework", "torch", "--grad", "--examples",
                       "6", "--in-process", *limits)
    assert code == 0, out
    assert out.startswith("PASS") and "forward and gradients" in out and "features exercised" in out
    assert "6 drawn" in out and re.search(r"[1-9]\d* boundary", out)
    assert "forward [channels_last]" in out and "forward [non-contiguous]" in out
    assert "determinism x" in out and "batch invariance: held on" in out
    if not limits:  # every dtype, half precision included
        assert "dtypes: float32, float64, float16, bfloat16" in out


def test_torchvisions_deform_is_reported_crashing_on_a_nan_offset(capsys):
    pytest.importorskip("torchvision")
    code, out = verify(capsys, "torchvision.ops:deform_conv2d", "--op", "deform_conv2d",
                       "--framework", "torch", "--examples", "0")
    assert code == 1
    assert "crashed with SIGSEGV" in out.splitlines()[0]
    assert "a NaN in one offset coordinate" in out


def test_the_boundary_cases_are_always_among_the_draws(capsys):
    code, out = verify(capsys, f"{SAMPLES}:conv2d_float64", "--op", "conv2d", "--examples", "0",
                       "--in-process")
    assert code == 0, out  # float64 results for float32 input: allowed for NumPy
    # 10 boundary cases (NaN ones included) in 2 dtypes, 2 golden, the smallest per dtype.
    assert "0 drawn, 20 boundary, 2 golden, 2 smallest" in out
    assert "padding wider than the kernel" in out and "a batch of 3" in out
    code, out = verify(capsys, f"{SAMPLES}:conv2d_float64", "--op", "conv2d", "--examples", "0",
                       "--in-process", "--limit", "nonfinite=False", "--limit", "dtypes=('float64',)")
    assert code == 0 and "0 drawn, 9 boundary, 2 golden, 1 smallest" in out
    assert "NaN, +inf and -inf input cells (needs nonfinite=True, the limits give False)" in out


def test_a_function_without_an_argument_is_checked_where_it_keeps_its_default(capsys):
    target = f"{SAMPLES}:conv2d_without_dilation"
    code, out = verify(capsys, target, "--op", "conv2d", "--examples", "20", "--in-process")
    assert code == 0, out
    assert "not tested: dilation: your function has no such argument" in out
    code, out = verify(capsys, target, "--op", "conv2d", "--examples", "20", "--in-process",
                       "--limit", "max_dilation=2")  # asked for: a case needs it
    assert code == 1 and "has no argument 'dilation'" in out


def test_a_numpy_vjp_is_checked_and_implies_grad(capsys):
    code, out = verify(capsys, "reference:conv2d", "--op", "conv2d", "--examples", "10", "--in-process",
                       "--vjp", f"{SAMPLES}:conv2d_vjp_doubling_input")
    assert code == 1 and "d/dinput" in out.splitlines()[0]
    actual, expected = worst_values(run_program(out))
    assert actual == pytest.approx(2 * expected)
    code, out = verify(capsys, "reference:conv2d", "--op", "conv2d", "--examples", "10",
                       "--in-process", "--vjp", "reference:conv2d_vjp")
    assert code == 0 and "forward and gradients" in out


@pytest.mark.parametrize("args, message", [
    (["reference:conv2d", "--op", "conv2d", "--limit", "max_dilation=one"], "Python literal"),
    (["reference:conv2d", "--op", "conv2d", "--limit", "max_dilatoin=1"], "unknown for conv2d"),
    (["reference:conv2d", "--op", "conv2d", "--limit", "dtypes=('float16',)"], "float32, float64"),
    (["reference:conv2d", "--op", "conv3d"], "unknown op"),
    (["no_such_module:conv2d", "--op", "conv2d"], "cannot import no_such_module"),
    (["reference:conv3d", "--op", "conv2d"], "has no attribute conv3d"),
    (["reference:conv2d", "--op", "conv2d", "--grad"], "needs its VJP"),
    (["reference:conv2d", "--op", "conv2d", "--timeout", "0"], "--timeout"),
    (["reference:max_pool2d", "--op", "conv2d"], "has no argument 'weight'"),
    (["torch.nn.functional:conv2d", "--op", "conv2d", "--framework", "torch",
      "--vjp", "reference:conv2d_vjp"], "--vjp"),
])
def test_bad_options_and_imports_exit_2(capsys, args, message):
    code, out = verify(capsys, *args)
    assert code == 2 and message in out


def test_limit_help_lists_a_key_for_every_argument(capsys):
    code, out = verify(capsys, "--op", "max_pool2d", "--limit", "help")
    assert code == 0
    for key in ("ceil_mode=None", "max_padding=3", "max_dilation=2", "return_indices=None",
                "square=False", "stride_none=None", "large=0.1", "nonfinite=True"):
        assert key in out
    assert "[argument ceil_mode]" in out and "[argument padding]" in out


def test_jax_runs_with_x64(capsys):
    pytest.importorskip("jax")
    # XLA:CPU leaks inf*0 across the groups of a float64 grouped convolution: no NaN/inf here.
    code, out = verify(capsys, f"{SAMPLES}:jax_conv2d", "--op", "conv2d", "--framework", "jax",
                       "--grad", "--examples", "4", "--in-process", "--limit", "dtypes=('float64',)",
                       "--limit", "nonfinite=False")
    assert code == 0, out


def test_verify_and_crosscheck_write_no_hypothesis_directory_into_the_current_one(capsys, tmp_path,
                                                                                 monkeypatch):
    from crossconv.crosscheck import crosscheck

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, _ = verify(capsys, "reference:conv2d", "--op", "conv2d", "--examples", "3", "--in-process",
                     "--json", str(tmp_path / "run.json"))
    assert code == 0
    assert not crosscheck(examples=1, ops=["avg_pool2d"], backends=["reference"]).failed
    assert not (tmp_path / ".hypothesis").exists()
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["passed"] and run["cases"] and run["cases"][0]["checks"]
    assert {"forward", "determinism"} <= {c["check"] for case in run["cases"] for c in case["checks"]}
