"""``make bench``: every benchmark module's tables, printed and written to docs/benchmarks.md
(``crossconv bench`` alone writes build/benchmarks.md; ``--update-docs`` the docs page).

A benchmark module is a file ``benchmarks/bench_<name>.py`` with a ``TITLE`` and a
function ``sections(repeats) -> list[Section]``; it imports what it measures (and may
raise ``ImportError`` or return ``[]`` when a framework is missing: the section is then
reported as skipped). Ratios are what matter on these shared, noisy machines, so the
candidates of one comparison are timed interleaved, round by round
(:func:`side_by_side`), and each reported figure is the median of its rounds.

docs/benchmarks.md holds one block per module between ``<!-- bench:<name> -->`` markers;
a run rewrites the blocks of the modules it ran and leaves the others as they were, with
the machine description and command of each block's own run. ``make bench`` runs each
module in a fresh process (:func:`run_module_isolated`), so one framework's thread pools
and allocator do not change another module's figures.

A section may carry :class:`Bar` s (one timed candidate each, grouped by comparison);
they are kept in their block as a JSON comment, and after every run the chart
``figures/benchmarks.png`` beside the Markdown file is redrawn from all blocks
(:func:`draw_chart`): per comparison, each candidate's time relative to the group's
first bar, ours beside the anchors.

:class:`Competitor` runs processes spinning on every core, switched on and off between
rounds, for the benchmarks of an op under load.
"""

from __future__ import annotations

import datetime
import importlib
import json
import math
import multiprocessing
import os
import pickle
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "benchmarks"
DOC = ROOT / "docs" / "benchmarks.md"


@dataclass
class Bar:
    """One bar of the chart: ``label``'s median ``seconds`` in comparison ``group``;
    ``ours`` tells the project's implementations from the anchors."""

    group: str
    label: str
    seconds: float
    ours: bool


@dataclass
class Section:
    """One table: ``rows`` are lists of cell strings under ``columns``; ``notes`` follow it;
    ``bars`` go to the chart."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def table(self) -> Table:
        table = Table(title=self.title, title_justify="left")
        for i, column in enumerate(self.columns):
            table.add_column(column, justify="left" if i == 0 else "right")
        for row in self.rows:
            table.add_row(*row)
        return table


def side_by_side(candidates: dict[str, Callable[[], object]], repeats: int = 5,
                 warmup: int = 1, clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median seconds of each candidate, timed round-robin so that load on the machine
    hits every candidate alike. ``warmup`` untimed rounds come first (caches, JIT).
    ``clock``: wall time by default; ``time.process_time`` counts only this process's
    CPU time, the steadier figure on a busy machine for single-threaded candidates."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for round_ in range(warmup + repeats):
        for name, fn in candidates.items():
            start = clock()
            fn()
            elapsed = clock() - start
            if round_ >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _spin(switch, deadline: float) -> None:
    """A competitor process: spin while ``switch`` is set, sleep while it is clear, stop at
    ``deadline`` (time.monotonic) whatever happens to the benchmark."""
    while time.monotonic() < deadline:
        if not switch.wait(0.2):
            continue
        while switch.is_set() and time.monotonic() < deadline:
            pass


class Competitor:
    """``processes`` processes (default: one per core) spinning on the CPU while switched
    on, bounded by ``seconds`` of life and terminated on exit::

        with Competitor(seconds=300) as load:
            load.switch(True)   # every core busy
            ...
            load.switch(False)  # quiet again
    """

    def __init__(self, processes: int | None = None, seconds: float = 600.0):
        self.processes = processes or os.cpu_count() or 1
        self.seconds = seconds
        self.workers = []

    def __enter__(self):
        context = multiprocessing.get_context("spawn")  # nothing of the parent's state
        self.on = context.Event()
        deadline = time.monotonic() + self.seconds
        self.workers = [context.Process(target=_spin, args=(self.on, deadline), daemon=True)
                        for _ in range(self.processes)]
        for worker in self.workers:
            worker.start()
        return self

    def switch(self, on: bool, settle: float = 0.2) -> None:
        """Switch the spinning on or off and give the scheduler ``settle`` seconds."""
        (self.on.set if on else self.on.clear)()
        time.sleep(settle)

    def __exit__(self, *exc):
        self.on.clear()
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.join(5)
        return False


def quiet_and_loaded(candidates: dict[str, Callable[[], object]], competitor: Competitor,
                     repeats: int = 5, warmup: int = 1) -> dict[tuple[str, bool], float]:
    """Median seconds of each candidate with the competitor off (False) and on (True),
    rounds alternating quiet and loaded, so that other load on the machine weighs on both."""
    times: dict[tuple[str, bool], list[float]] = {(n, on): [] for n in candidates for on in (0, 1)}
    for round_ in range(warmup + repeats):
        for on in (False, True):
            competitor.switch(on)
            for name, fn in candidates.items():
                start = time.perf_counter()
                fn()
                if round_ >= warmup:
                    times[name, on].append(time.perf_counter() - start)
    competitor.switch(False)
    return {key: statistics.median(ts) for key, ts in times.items()}


def seconds(t: float) -> str:
    return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def machine() -> str:
    """One line: CPU model, cores, memory, OS, Python and framework versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    versions = []
    for module in ("numpy", "torch", "jax", "lupa"):
        if module in sys.modules:
            versions.append(f"{module} {getattr(sys.modules[module], '__version__', '?')}")
    return (f"{cpu}, {os.cpu_count()} cores{memory}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}; " + ", ".join(versions))


def modules() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def _block(name: str, title: str, sections: list[Section], command: str, skipped: str = "",
           on: str = "") -> str:
    today = datetime.date.today().isoformat()
    body = [f"<!-- bench:{name} -->", f"## {title}", "",
            f"Measured {today} with `{command}` on: {on or machine()}.", ""]
    if skipped:
        body += [f"{'' if skipped.startswith('FAILED') else 'Skipped: '}{skipped}", ""]
    body += [s.markdown() for s in sections]
    bars = [vars(bar) for section in sections for bar in section.bars]
    if bars:
        body.append(f"<!-- bench-bars {json.dumps(bars)} -->")
    body.append(f"<!-- /bench:{name} -->")
    return "\n".join(body)


HEADER = """# Benchmarks

Written by `make bench` (`python -m crossconv bench --update-docs`); each block below says when, on what
machine and with which command it was measured. Every comparison is timed side by side in
one run, round-robin, and reported as the median of its rounds: compare the ratios, not
the absolute times (the machines are shared and noisy).
"""


def write_blocks(blocks: dict[str, str], path: Path = DOC) -> None:
    """Replace (or append) each module's block in ``path``, keeping the others."""
    text = path.read_text() if path.exists() else HEADER
    for name, block in blocks.items():
        start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
        if start in text and end in text:
            before, rest = text.split(start, 1)
            text = before + block + rest.split(end, 1)[1]
        elif name == "chart" and "<!-- bench:" in text:  # the chart goes above the blocks
            before, rest = text.split("<!-- bench:", 1)
            text = before + block + "\n\n<!-- bench:" + rest
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


CHART = "benchmarks.png"
_BARS = re.compile(r"<!-- bench-bars (.*) -->")


def read_bars(text: str) -> list[Bar]:
    """Every :class:`Bar` kept in the blocks of a benchmarks Markdown file, in file order."""
    bars = []
    for match in _BARS.finditer(text):
        bars += [Bar(**bar) for bar in json.loads(match.group(1))]
    return bars


def draw_chart(bars: list[Bar], path: Path) -> bool:
    """A bar chart of ``bars``: one panel per comparison group, each candidate's time
    relative to the group's first bar (log scale), ours in blue beside the anchors in grey.
    False (nothing drawn) without matplotlib or bars."""
    try:
        import matplotlib
    except ImportError:
        return False
    if not bars:
        return False
    import textwrap

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    groups: dict[str, list[Bar]] = {}
    for bar in bars:
        groups.setdefault(bar.group, []).append(bar)
    columns = min(4, len(groups))
    rows = math.ceil(len(groups) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.1 * rows), squeeze=False,
                                layout="constrained")
    for axis in axes.flat[len(groups):]:
        axis.set_visible(False)
    for axis, (group, members) in zip(axes.flat, groups.items()):
        base = members[0].seconds
        values = [bar.seconds / base if base > 0 else float("nan") for bar in members]
        xs = range(len(members))
        axis.bar(xs, values, color=["tab:blue" if bar.ours else "tab:gray" for bar in members])
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        axis.yaxis.set_minor_formatter(NullFormatter())
        axis.axhline(1.0, color="black", linewidth=0.6)
        axis.set_xticks(xs, [textwrap.fill(bar.label, 14) for bar in members], fontsize=7)
        axis.tick_params(axis="y", labelsize=7)
        for x, value in zip(xs, values):
            axis.annotate(f"{value:.2g}x", (x, value), ha="center", va="bottom", fontsize=7)
        low, high = min(values + [1.0]), max(values + [1.0])
        axis.set_ylim(low / 1.6, high * 2.2)
        axis.set_title(textwrap.fill(group, 42), fontsize=8)
    figure.suptitle("Time relative to the first bar of each comparison (log scale): ours in "
                    "blue, anchors in grey; medians of side-by-side rounds", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


CHART_BLOCK = """<!-- bench:chart -->
![Every comparison of this page as bars: each candidate's time relative to the first bar of its
group, ours in blue beside the anchors in grey](figures/{chart})

The chart (`make bench` redraws it from every block below) shows each comparison's times
relative to its first bar on a log scale.
<!-- /bench:chart -->"""


@dataclass
class ModuleResult:
    """What one benchmark module produced (picklable, to come back from its own process)."""

    title: str
    sections: list[Section]
    skipped: str = ""
    failed: bool = False
    machine: str = ""


def run_module(name: str, repeats: int) -> ModuleResult:
    """Run ``benchmarks/bench_<name>.py`` in this process.

    ``ImportError`` (a framework missing) is a skip; any other exception a failure."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    module = importlib.import_module(f"benchmarks.bench_{name}")
    try:
        sections = module.sections(repeats)
        result = ModuleResult(module.TITLE, sections,
                              "" if sections else "nothing to measure on this machine")
    except ImportError as error:
        result = ModuleResult(module.TITLE, [], f"{error}")
    except Exception as error:  # noqa: BLE001 - one broken module must not hide the others
        result = ModuleResult(module.TITLE, [], f"FAILED: {type(error).__name__}: {error}", True)
    result.machine = machine()  # with the versions of what the module imported
    return result


_CHILD = """import pickle, sys
from crossconv.bench import run_module
result = run_module(sys.argv[1], int(sys.argv[2]))
with open(sys.argv[3], "wb") as f:
    pickle.dump(result, f)
"""


def run_module_isolated(name: str, repeats: int) -> ModuleResult:
    """:func:`run_module` in a fresh Python process: one module's frameworks (XLA's and
    torch's thread pools, allocators that change how fast a fresh allocation is) cannot
    slow down or speed up another module's figures. A crash of that process is a failure."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "result.pickle"
        done = subprocess.run([sys.executable, "-c", _CHILD, name, str(repeats), str(path)],
                              cwd=ROOT, capture_output=True, text=True)
        if done.returncode == 0 and path.exists():
            with open(path, "rb") as f:
                return pickle.load(f)
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return ModuleResult(name, [], f"FAILED: its process exited with {done.returncode}: {tail[0]}",
                        True)


def run_benchmarks(console, repeats: int = 5, only=None, write: bool = True,
                   command: str = "make bench", doc: Path = DOC, isolate: bool = False) -> int:
    """Run every benchmark module (or those named in ``only``); print and record them.

    A module that raises ``ImportError`` (a framework missing) is recorded as skipped; any
    other exception is printed, recorded as failed and makes the exit code 1, and the
    other modules still run. Exit 2 for an unknown name in ``only``. ``isolate``: each
    module in its own process (what ``make bench`` does).
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    unknown = sorted(set(only or ()) - set(modules()))
    if unknown:
        console.print(f"bench: no benchmark module {', '.join(unknown)}; modules: "
                      f"{', '.join(modules())}", highlight=False)
        return 2
    console.print(f"Machine: {machine()}", highlight=False, soft_wrap=True)
    blocks, failed = {}, False
    for name in modules():
        if only and name not in only:
            continue
        console.print(f"[bold]benchmarks/bench_{name}.py[/]")
        result = run_module_isolated(name, repeats) if isolate else run_module(name, repeats)
        console.print(f"[bold]{result.title}[/]")
        for section in result.sections:
            console.print(section.table())
            for note in section.notes:
                console.print(f"  - {note}", highlight=False)
        if result.skipped:
            prefix = "" if result.skipped.startswith("FAILED") else "skipped: "
            console.print(f"  {prefix}{result.skipped}", highlight=False)
        failed = failed or result.failed
        blocks[name] = _block(name, result.title, result.sections, command, result.skipped,
                              result.machine)
    if write and blocks:
        write_blocks({"chart": CHART_BLOCK.format(chart=CHART), **blocks}, doc)
        chart = doc.parent / "figures" / CHART
        drawn = draw_chart(read_bars(doc.read_text()), chart)
        written = [doc] + ([chart] if drawn else [])
        console.print("written to " + ", ".join(
            str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p) for p in written))
    return 1 if failed else 0
