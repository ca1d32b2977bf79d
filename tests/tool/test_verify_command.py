"""``crossconv verify`` through its CLI entry point: the planted mistakes are caught with a
runnable counterexample, the torch and torchvision ops pass, options behave as specified."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from crossconv import frameworks
from crossconv.cli import main

ROOT = Path(__file__).resolve().parents[2]
PLANTED = "tests.tool.planted_mistakes"
SAMPLES = "tests.tool.sample_implementations"


def verify(capsys, *args):
    code = main(["verify", *args])
    return code, capsys.readouterr().out


def snippet_of(out: str) -> str:
    return out[out.index("# crossconv verify"):]


def run_snippet(snippet: str) -> str:
    result = subprocess.run([sys.executable, "-c", snippet], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("function, op, shows", [
    ("deform_conv2d_swapped_offsets", "deform_conv2d", "mismatch"),
    ("max_pool2d_ignoring_ceil_mode", "max_pool2d", "shape"),
    ("conv2_5d_closed_bins", "conv2_5d", "mismatch"),
    ("conv2d_same_padding_off_by_one", "conv2d", "mismatch"),
])
def test_a_planted_mistake_is_caught_with_a_runnable_counterexample(capsys, function, op, shows):
    code, out = verify(capsys, f"{PLANTED}:{function}", "--op", op)
    assert code == 1
    assert out.startswith("FAIL") and shows in out.splitlines()[0]
    printed = run_snippet(snippet_of(out))
    if shows == "mismatch":  # the snippet recomputes both values at the worst element
        values = re.search(r"expected (\S+) actual (\S+)", printed).groups()
        assert float(values[0]) != pytest.approx(float(values[1]), rel=1e-3)
    else:
        assert re.search(r"expected float64 \(1, 2, 3, 3\) actual float64 \(1, 2, 2, 2\)", printed)


def test_a_drawn_counterexample_is_shrunk(capsys):
    """Wrong only with groups == 2 (no boundary case has it): found by a draw, shrunk."""
    code, out = verify(capsys, f"{SAMPLES}:conv2d_wrong_for_two_groups", "--op", "conv2d")
    assert code == 1 and "drawn, then shrunk by Hypothesis" in out
    snippet = snippet_of(out)
    assert "'groups': 2" in snippet
    # Shrunk: one sample, the smallest channel counts (2 in, 2 out), no bias.
    assert "bias = None" in snippet and re.search(r"\(input=\(1, 2, \d, \d\), weight=\(2, 1,", snippet)
    printed = run_snippet(snippet)
    expected, actual = map(float, re.search(r"expected (\S+) actual (\S+)", printed).groups())
    assert actual == pytest.approx(expected + 1, rel=1e-5, abs=1e-5)


def test_a_function_raising_on_a_valid_call_fails_with_the_call_shown(capsys):
    code, out = verify(capsys, f"{SAMPLES}:conv2d_refusing_groups", "--op", "conv2d")
    assert code == 1 and "raised NotImplementedError: groups > 1" in out
    snippet = snippet_of(out)
    assert "actual = implementation(input=input, weight=weight, bias=" in snippet
    result = subprocess.run([sys.executable, "-c", snippet], cwd=ROOT, capture_output=True, text=True)
    assert "NotImplementedError: groups > 1" in result.stderr


@pytest.mark.parametrize("target, op", [
    ("torch.nn.functional:conv2d", "conv2d"),
    ("torch.nn.functional:max_pool2d", "max_pool2d"),
    ("torch.nn.functional:avg_pool2d", "avg_pool2d"),
    ("torchvision.ops:deform_conv2d", "deform_conv2d"),
])
def test_the_torch_and_torchvision_ops_pass_forward_and_gradients(capsys, target, op):
    pytest.importorskip("torchvision")
    code, out = verify(capsys, target, "--op", op, "--framework", "torch", "--grad", "--examples", "25")
    assert code == 0, out
    assert out.startswith("PASS") and "forward and gradients" in out and "features exercised" in out
    assert "25 drawn" in out and re.search(r"[1-9]\d* boundary", out)


def test_the_boundary_cases_are_always_among_the_draws(capsys):
    code, out = verify(capsys, f"{SAMPLES}:conv2d_float64", "--op", "conv2d", "--examples", "0")
    assert code == 0, out  # float64 results for float32 input: allowed for NumPy
    # 6 finite boundary cases in 2 dtypes, the 2 golden cases; NaN ones need a limit.
    assert "0 drawn, 12 boundary, 2 golden" in out
    assert "padding wider than the kernel" in out and "nonfinite=True" in out
    code, out = verify(capsys, f"{SAMPLES}:conv2d_float64", "--op", "conv2d", "--examples", "0",
                       "--limit", "nonfinite=True", "--limit", "dtypes=('float64',)")
    assert code == 0 and "0 drawn, 7 boundary, 2 golden" in out


def test_a_function_without_an_argument_passes_when_the_limits_keep_its_default(capsys):
    target = f"{SAMPLES}:conv2d_without_dilation"
    code, out = verify(capsys, target, "--op", "conv2d", "--examples", "30")
    assert code == 1 and "has no argument 'dilation'" in out
    code, out = verify(capsys, target, "--op", "conv2d", "--examples", "30", "--limit", "max_dilation=1")
    assert code == 0, out


def test_a_numpy_vjp_is_checked_and_implies_grad(capsys):
    code, out = verify(capsys, "reference:conv2d", "--op", "conv2d", "--examples", "10",
                       "--vjp", f"{SAMPLES}:conv2d_vjp_doubling_input")
    assert code == 1 and "d/dinput" in out.splitlines()[0]
    printed = run_snippet(snippet_of(out))
    expected, actual = map(float, re.search(r"expected (\S+) actual (\S+)", printed).groups())
    assert actual == pytest.approx(2 * expected)
    code, out = verify(capsys, "reference:conv2d", "--op", "conv2d", "--examples", "10",
                       "--vjp", "reference:conv2d_vjp")
    assert code == 0 and "forward and gradients" in out


@pytest.mark.parametrize("args, message", [
    (["reference:conv2d", "--op", "conv2d", "--limit", "max_dilation=one"], "Python literal"),
    (["reference:conv2d", "--op", "conv2d", "--limit", "max_dilatoin=1"], "unknown for conv2d"),
    (["reference:conv2d", "--op", "conv3d"], "unknown op"),
    (["no_such_module:conv2d", "--op", "conv2d"], "cannot import no_such_module"),
    (["reference:conv3d", "--op", "conv2d"], "has no attribute conv3d"),
    (["reference:conv2d", "--op", "conv2d", "--grad"], "needs its VJP"),
    (["torch.nn.functional:conv2d", "--op", "conv2d", "--framework", "torch",
      "--vjp", "reference:conv2d_vjp"], "--vjp"),
])
def test_bad_options_and_imports_exit_2(capsys, args, message):
    code, out = verify(capsys, *args)
    assert code == 2 and message in out


class MinimalJaxAdapter:
    """What verify needs of the JAX backend's adapter (used only if it has not landed)."""

    def __init__(self):
        import jax

        self.jax = jax

    def forward(self, fn, case, extra):
        import numpy as np

        out = case.call(fn, self.jax.numpy.asarray, **extra)
        return tuple(np.asarray(o) for o in (out if isinstance(out, tuple) else (out,)))

    def vjp(self, fn, case, grad_output, wrt, extra):
        import numpy as np

        fixed = {k: (None if v is None else self.jax.numpy.asarray(v))
                 for k, v in case.tensors.items() if k not in wrt}

        def f(*values):
            return fn(**dict(zip(wrt, values)), **fixed, **case.params, **extra)

        out, pullback = self.jax.vjp(f, *(self.jax.numpy.asarray(case.tensors[k]) for k in wrt))
        grads = pullback(self.jax.numpy.asarray(grad_output, dtype=out.dtype))
        return {k: np.asarray(g) for k, g in zip(wrt, grads)}


def test_jax_runs_with_x64(capsys, monkeypatch):
    jax = pytest.importorskip("jax")
    if "jax" not in frameworks.ADAPTERS:
        monkeypatch.setitem(frameworks.ADAPTERS, "jax", MinimalJaxAdapter)
    code, out = verify(capsys, f"{SAMPLES}:jax_conv2d", "--op", "conv2d", "--framework", "jax",
                       "--grad", "--examples", "4", "--limit", "dtypes=('float64',)")
    assert code == 0, out
    assert jax.config.jax_enable_x64


def test_a_missing_framework_adapter_exits_2(capsys, monkeypatch):
    pytest.importorskip("jax")
    monkeypatch.delitem(frameworks.ADAPTERS, "jax", raising=False)
    code, out = verify(capsys, f"{SAMPLES}:jax_conv2d", "--op", "conv2d", "--framework", "jax")
    assert code == 2 and "no jax adapter" in out
