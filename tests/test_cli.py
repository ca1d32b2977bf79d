"""The command line as a user meets it: the installed ``crossconv`` from any directory,
``--version``, ``list``, empty selections, and where ``bench`` and ``figures`` write."""

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from crossconv import cli
from crossconv.cli import main

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

# A user's own max_pool2d that ignores ceil_mode: verify finds it on a boundary case.
USER_KERNEL = '''
import reference


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return reference.max_pool2d(input, kernel_size, stride=stride, padding=padding,
                                dilation=dilation, return_indices=return_indices)
'''


def installed_here() -> Path:
    """The ``crossconv`` script of this environment, installed from this checkout."""
    try:
        dist = metadata.distribution("crossconv")
    except metadata.PackageNotFoundError:
        pytest.fail("crossconv is not installed in this environment: make setup installs it")
    url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    if Path(url.removeprefix("file://")).resolve() != ROOT:
        pytest.skip(f"this environment's crossconv is installed from {url}, not {ROOT}")
    return Path(sys.executable).parent / "crossconv"


def run(command, cwd, timeout=300):
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def test_the_installed_command_and_its_counterexample_run_outside_the_repository(tmp_path):
    script = installed_here()
    assert run([str(script), "--version"], tmp_path) == (0, f"crossconv {VERSION}\n")
    code, out = run([sys.executable, "-c", "import reference, crossconv, torch_impl, jax_impl, "
                     "lua_port; print(reference.__file__, torch_impl.__file__)"], tmp_path)
    assert code == 0, out
    assert all(Path(path).is_relative_to(ROOT) for path in out.split())
    (tmp_path / "my_kernels.py").write_text(USER_KERNEL)
    code, out = run([str(script), "verify", "my_kernels:max_pool2d", "--op", "max_pool2d",
                     "--examples", "5"], tmp_path)
    assert code == 1 and out.startswith("# FAIL my_kernels:max_pool2d"), out
    (tmp_path / "counterexample.py").write_text(out)  # the report is the runnable test
    code, printed = run([sys.executable, "counterexample.py"], tmp_path)
    assert code == 1 and printed.startswith("still differs: shape"), printed
    assert re.search(r"shape \(\d+, \d+, \d+, \d+\) != expected \(\d+, \d+, \d+, \d+\)",
                     printed), printed


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"crossconv {VERSION}\n"
    assert cli.version() == VERSION


def test_an_empty_selection_is_an_error_not_a_pass(capsys):
    assert main(["crosscheck", "--ops", "max_pool2d", "--backends", "lua"]) == 2
    out = capsys.readouterr().out
    assert "nothing to check" in out and "PASS" not in out


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """Run bench and figures in an empty directory, recording where they would write."""
    from crossconv import bench, figures

    calls = {}
    monkeypatch.setattr(figures, "make_figures",
                        lambda console, out=None, report=None: calls.update(figures=Path(out)) or 0)
    monkeypatch.setattr(bench, "run_benchmarks",
                        lambda console, write=True, doc=None, **_: calls.update(bench=(write, doc)) or 0)
    pytest.importorskip("matplotlib")  # figures exits 2 without it
    monkeypatch.chdir(tmp_path)
    return calls


def test_figures_and_bench_write_under_build_unless_asked_to_update_the_docs(recorded, tmp_path):
    assert main(["figures"]) == 0 and main(["bench"]) == 0
    assert recorded["figures"].resolve() == tmp_path / "build" / "figures"
    write, doc = recorded["bench"]
    assert write and doc.resolve() == tmp_path / "build" / "benchmarks.md"
    assert doc.parent.is_dir()
    assert main(["figures", "--update-docs"]) == 0 and main(["bench", "--update-docs"]) == 0
    assert recorded["figures"] == ROOT / "docs" / "figures"
    assert recorded["bench"] == (True, ROOT / "docs" / "benchmarks.md")
    assert main(["bench", "--no-write"]) == 0 and recorded["bench"][0] is False
    assert main(["bench", "--no-write", "--update-docs"]) == 2
    assert not (tmp_path / "docs").exists()
