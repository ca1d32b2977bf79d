"""Project rules that are cheap to check: dependency direction, pins, the CLI, and that
docs and code speak of the project itself only."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from crossconv.cli import main
from crossconv.registry import implementations

ROOT = Path(__file__).resolve().parents[1]


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return set(out.stdout.split())


def test_reference_imports_no_framework():
    modules = _imported_after("import reference")
    assert not modules & {"torch", "jax", "lupa", "crossconv", "hypothesis"}


def test_the_harness_imports_frameworks_lazily():
    modules = _imported_after("import crossconv.registry, crossconv.cli, crossconv.frameworks")
    assert not modules & {"torch", "jax", "lupa", "torch_impl", "jax_impl", "lua_port"}


def test_every_pin_in_pyproject_is_in_the_lock_file():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        pins += [p for p in extra if "==" in p]
    lock = {
        line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
        for line in (ROOT / "requirements.lock").read_text().split()
        if "==" in line
    }
    for pin in pins:
        name, version = pin.split("==")
        assert lock.get(name.lower().replace("_", "-")) == version, pin


def test_crosscheck_prints_the_table_and_exits_0(capsys):
    assert main(["crosscheck", "--examples", "2", "--ops", "conv2d,max_pool2d"]) == 0
    out = capsys.readouterr().out
    for word in ("conv2d", "max_pool2d", "oracle", "finite diff", "golden", "torch-anchor"):
        assert word in out


def test_list_shows_every_backend_and_each_of_its_ops_once(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("torch", "jax", "lua", "torch-anchor"):
        assert name in out
    backends = out.split("ops x implementations")[0]
    # Each backend implementing tanprod_conv2d names it once, however many columns it has
    # (torch and jax have a kernel column too).
    implementing = {impl.backend for impl in implementations("tanprod_conv2d")}
    assert backends.count("tanprod_conv2d") == len(implementing) >= 3
    assert backends.count("torch-triton") == 1 and backends.count("lua-5.4") == 1


#: Files users do not have (the contract lives in docs/) and words about how the project
#: was built rather than what it does. SPEC is matched case-sensitively ("spec" is a word).
OUTSIDE_REFERENCES = re.compile(r"SPEC\.md|\bSPEC\b|\.\./shared|shared/seeds|00[0-4]_[0-9a-f]{6}")
BUILD_WORDS = re.compile(
    r"seed 00[0-4]|seed `00|the seed's|seed posts?\b|seed files?\b|lent to this|was lent|"
    r"this session|the helpers'|helpers' guide|developers' brief|project brief|the issue's|"
    r"\bissue \d+|on this branch|another branch|its branch|scratch merge",
    re.IGNORECASE)


def _project_texts():
    """Every .md, .py and .lua file of the tree, not descending into .venv, .git, build/..."""
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("build", "__pycache__"))
        for name in sorted(files):
            path = Path(top) / name
            if path.suffix in (".md", ".py", ".lua") and path != Path(__file__):
                yield path


def test_docs_and_code_cite_nothing_outside_the_repository_and_say_nothing_of_how_it_was_built():
    found = []
    for path in _project_texts():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            for pattern in (OUTSIDE_REFERENCES, BUILD_WORDS):
                match = pattern.search(line)
                if match:
                    found.append(f"{path.relative_to(ROOT)}:{number}: {match.group()!r}: {line.strip()[:80]}")
    assert len(list(_project_texts())) > 100  # the walk sees the tree
    assert not found, "cite docs/<page>.md or the blog post by its subject instead:\n" + "\n".join(found)
