"""``crossconv bench`` prints and records every module; the oracles live one file per op."""

import re
import sys
import types
from pathlib import Path

import pytest
from rich.console import Console

import reference
from crossconv import bench, oracles
from crossconv.bench import Section

ROOT = Path(__file__).resolve().parents[2]


def _module(name, title, sections):
    module = types.ModuleType(f"benchmarks.bench_{name}")
    module.TITLE = title
    module.sections = sections
    return module


def test_bench_prints_every_module_and_writes_its_block_with_the_machine(monkeypatch, tmp_path):
    def good(repeats):
        section = Section("fast vs slow", ["case", "ratio"], [["x", "2.00x"]], ["a note"])
        return [section]

    def missing(repeats):
        raise ImportError("no module named jax")

    def broken(repeats):
        raise RuntimeError("boom")

    for name, title, fn in (("good", "Good", good), ("missing", "Missing", missing),
                            ("broken", "Broken", broken)):
        monkeypatch.setitem(sys.modules, f"benchmarks.bench_{name}", _module(name, title, fn))
    monkeypatch.setattr(bench, "modules", lambda: ["broken", "good", "missing"])
    doc = tmp_path / "benchmarks.md"
    doc.write_text(bench.HEADER + "\n<!-- bench:good -->\nold\n<!-- /bench:good -->\n")
    console = Console(record=True, width=120)
    assert bench.run_benchmarks(console, repeats=1, command="test", doc=doc) == 1  # broken failed
    printed = console.export_text()
    assert "fast vs slow" in printed and "skipped: no module named jax" in printed
    assert "FAILED: RuntimeError: boom" in printed and f"Machine: {bench.machine()}" in printed
    text = doc.read_text()
    assert "old" not in text and text.count("<!-- bench:good -->") == 1
    assert f"on: {bench.machine()}" in text and "| x | 2.00x |" in text
    assert "Skipped: no module named jax" in text
    assert bench.run_benchmarks(console, only=["nope"], doc=doc) == 2


def test_the_machine_description_names_cpu_cores_and_python():
    assert re.search(r"\d+ cores.*Python 3\.\d+", bench.machine())


def test_every_op_has_its_oracle_in_the_file_named_like_the_references():
    files = {p.stem for p in (ROOT / "reference").glob("*.py")} - {"__init__", "common"}
    oracle_files = {p.stem for p in (ROOT / "crossconv" / "oracles").glob("*.py")}
    assert files <= oracle_files and oracle_files - files == {"__init__", "common"}
    for name in reference.__all__:
        defined_in = getattr(reference, name).__module__.rsplit(".", 1)[1]
        oracle = getattr(oracles, "oracle_" + name)
        assert oracle.__module__ == f"crossconv.oracles.{defined_in}", name


@pytest.mark.parametrize("name", ["oracle_conv2d", "oracle_deform_conv2d_vjp", "seed_customconv_2d"])
def test_the_package_keeps_the_old_names(name):
    assert callable(getattr(oracles, name))


def test_make_bench_runs_each_module_in_its_own_process(monkeypatch, tmp_path):
    """The isolated run gets its results back from a child process (the Lua module is the
    cheapest real one): the sections arrive and the child's machine line names lupa,
    which this process has not imported for it."""
    pytest.importorskip("lupa")
    result = bench.run_module_isolated("lua", 1)
    assert not result.failed, result.skipped
    assert result.sections and all(s.rows for s in result.sections)
    assert "lupa" in result.machine
    broken = bench.run_module_isolated("no_such_module", 1)
    assert broken.failed and "exited with" in broken.skipped
