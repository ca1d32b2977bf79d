"""docs/onnx.md stays true: its examples run, and each reproduction of an upstream
discrepancy still prints the output the page shows (a fixed bug fails here)."""

import contextlib
import io
import re
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

DOC = Path(__file__).resolve().parents[2] / "docs" / "onnx.md"
BLOCK = re.compile(r"^```python\n(.*?)^```\n(?:\n[^`\n][^\n]*\n\n```text\n(.*?)^```)?", re.S | re.M)
CRASH = "Floating point exception"


def _blocks():
    """``(code, shown output or None)`` for every python block, in order."""
    return [(textwrap.dedent(code), output) for code, output in BLOCK.findall(DOC.read_text())]


def _reproductions():
    return [(code, output) for code, output in _blocks() if output]


def _needs(code):
    for module in ("torch", "onnxscript"):
        if re.search(rf"^(import|from) {module}\b", code, re.M):
            pytest.importorskip(module)


def test_the_examples_run():
    examples = [code for code, output in _blocks() if not output]
    assert len(examples) >= 3
    namespace = {}
    for i, code in enumerate(examples):
        _needs(code)
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, f"{DOC.name} example {i + 1}", "exec"), namespace)  # noqa: S102


@pytest.mark.parametrize("number", range(1, 15))
def test_each_reproduction_still_shows_its_output(number):
    reproductions = _reproductions()
    assert len(reproductions) == 14
    code, shown = reproductions[number - 1]
    _needs(code)
    if CRASH in shown:  # the process dies: run it in its own
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == -signal.SIGFPE, done
        assert done.stdout == shown.split(CRASH)[0]
        return
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, f"{DOC.name} reproduction {number}", "exec"), {})  # noqa: S102
    assert out.getvalue() == shown
