"""A crosscheck :class:`~crossconv.crosscheck.Report` as a terminal table, JSON and Markdown.

The matrix has one row per op and one column per reference check or implementation; a
cell reads ``PASS 0.31`` / ``FAIL 4.2e+03`` (the worst error in units of the tolerance),
``n/a`` (cannot run here; the reason is listed under the table) or ``—`` (not
implemented). The JSON and Markdown reports hold everything: every case with its
configuration and, per output or gradient, the worst element, its index and both values;
per cell its wall time, the boundary cases its limits skipped and why.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import numpy as np
from rich.table import Table

from .bench import machine
from .cases import Case
from .crosscheck import Cell, Record, Report
from .registry import BACKENDS, implementations

STYLE = {"PASS": "green", "FAIL": "bold red", "n/a": "yellow", "—": "dim"}
LEGEND = ("PASS/FAIL x: worst error in units of the dtype's tolerance (<= 1 passes); "
          "n/a: cannot run here (reason below); —: not implemented")


def _number(value):
    """JSON has no NaN or infinities: they become the strings "nan", "inf", "-inf"."""
    if value is None:
        return None
    value = float(value)
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _number(value)
    return value


def configuration(case: Case) -> dict:
    """What reproduces a case's call: op, dtype, shapes, keyword arguments, seed."""
    present = [v for v in case.tensors.values() if v is not None]
    return {
        "op": case.op,
        "dtype": np.dtype(present[0].dtype).name if present else None,
        "shapes": {k: None if v is None else list(v.shape) for k, v in case.tensors.items()},
        "params": {k: _plain(v) for k, v in case.params.items()},
        "seed": case.seed,
    }


def _record(record: Record, cell: Cell) -> dict:
    return {
        "op": cell.op,
        "column": cell.column,
        "implementation": record.implementation,
        "kind": record.kind,
        "name": record.name,
        "passed": record.passed,
        "configuration": configuration(record.case),
        "checks": [
            {"check": c.check, "passed": c.passed, "ratio": _number(c.ratio),
             "index": None if c.worst.index is None else list(c.worst.index),
             "actual": _number(c.worst.actual), "expected": _number(c.worst.expected),
             "problem": c.problem}
            for c in record.comparisons
        ],
    }


def to_json(report: Report, command: str = "") -> dict:
    matrix = {
        op: {cell.column: {"status": cell.status, "worst": _number(cell.worst) if cell.records else None,
                           "seconds": round(cell.seconds, 3), "reason": cell.reason,
                           "cases": len(cell.records), "failed": len(cell.failures),
                           "skipped": cell.skipped}
             for cell in cells}
        for op, cells in report.cells.items()
    }
    return {
        "report": "crossconv crosscheck",
        "command": command,
        "machine": machine(),
        "examples": report.examples,
        "seed": report.seed,
        "device": report.device,
        "seconds": round(report.seconds, 3),
        "passed": not report.failed,
        "columns": report.columns,
        "column_seconds": {k: round(v, 3) for k, v in report.column_seconds().items()},
        "matrix": matrix,
        "cases": [_record(r, cell) for cells in report.cells.values() for cell in cells
                  for r in cell.records],
    }


def write_json(report: Report, path, command: str = "") -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(report, command), indent=1, allow_nan=False) + "\n")


def read_json(path) -> dict:
    return json.loads(Path(path).read_text())


# ----------------------------------------------------------------------------- text


def _seconds(t: float) -> str:
    return f"{t:.1f} s"


def rich_table(report: Report) -> Table:
    table = Table(title=f"crossconv crosscheck: {report.examples} random cases per check, "
                        f"seed {report.seed}, device {report.device}")
    table.add_column("op")
    for column in report.columns:
        table.add_column(column, justify="right")
    for op, cells in report.cells.items():
        table.add_row(op, *(f"[{STYLE[c.status]}]{c.text()}[/]" for c in cells))
    seconds = report.column_seconds()
    table.add_row("[dim]seconds[/]", *(f"[dim]{seconds[c]:.1f}[/]" for c in report.columns),
                  end_section=True)
    return table


def failure_lines(report: Report, limit: int = 3) -> list[str]:
    """The worst failing cases of each failing cell, one paragraph each."""
    lines = []
    for cells in report.cells.values():
        for cell in cells:
            if cell.status != "FAIL":
                continue
            if not cell.records:
                lines.append(f"FAIL {cell.op} / {cell.column}: {cell.reason}")
            failures = sorted(cell.failures, key=lambda r: -r.worst.ratio)
            for record in failures[:limit]:
                worst = record.worst
                lines.append(f"FAIL {cell.op} / {cell.column} ({record.implementation}), "
                             f"{_source(record)}: {worst.check} on {record.case.describe()}: "
                             f"{worst.describe()}")
            if len(failures) > limit:
                lines.append(f"  ... and {len(failures) - limit} more failing cases in "
                             f"{cell.op} / {cell.column} (see --json / --markdown)")
            lines += [f"  a shrunk counterexample: {hint}" for hint in verify_hints(cell)]
    return lines


def verify_hints(cell: Cell) -> list[str]:
    """``crossconv verify`` commands that reproduce a failing cell's implementations (those
    without extra keyword arguments, which verify cannot pass)."""
    hints = []
    for impl in implementations(cell.op, name=cell.column):
        if impl.extra or impl.backend not in BACKENDS:
            continue
        backend = BACKENDS[impl.backend]
        limits = "".join(f" --limit {shlex.quote(f'{k}={v!r}')}" for k, v in impl.limits.items())
        grad = " --grad" if impl.grad else ""
        hints.append(f"crossconv verify {backend.module}:{impl.function_name} --op {impl.op} "
                     f"--framework {backend.framework}{grad}{limits}")
    return hints


def _source(record: Record) -> str:
    return f"{record.kind} case" + (f" '{record.name}'" if record.name else "")


def na_lines(report: Report) -> list[str]:
    seen, lines = set(), []
    for cells in report.cells.values():
        for cell in cells:
            if cell.status == "n/a" and (cell.column, cell.reason) not in seen:
                seen.add((cell.column, cell.reason))
                lines.append(f"n/a {cell.column}: {cell.reason}")
    return lines


def skipped_lines(report: Report) -> list[str]:
    lines = []
    for cells in report.cells.values():
        for cell in cells:
            if cell.skipped:
                count = len(cell.skipped)
                lines.append(f"{cell.op} / {cell.column}: {count} boundary case{'s' * (count != 1)} "
                             f"not admitted by its limits ({'; '.join(cell.skipped)})")
    return lines


# ----------------------------------------------------------------------------- markdown


def _md_value(value) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def markdown(report: Report, command: str = "") -> str:
    data = to_json(report, command)
    out = ["# crossconv crosscheck report", ""]
    if command:
        out.append(f"Command: `{command}`  ")
    out += [f"Machine: {data['machine']}  ",
            f"{report.examples} random cases per check, seed {report.seed}, device "
            f"{report.device}; {_seconds(report.seconds)} in all. "
            f"Result: **{'FAIL' if report.failed else 'PASS'}**.", "",
            "## Matrix", "", LEGEND + ".", "",
            "| op | " + " | ".join(report.columns) + " |",
            "|---|" + "---|" * len(report.columns)]
    for op, cells in report.cells.items():
        out.append(f"| {op} | " + " | ".join(c.text() for c in cells) + " |")
    seconds = report.column_seconds()
    out.append("| seconds | " + " | ".join(f"{seconds[c]:.1f}" for c in report.columns) + " |")
    for title, lines in (("Failures", failure_lines(report, limit=10**6)),
                         ("Not available here", na_lines(report)),
                         ("Boundary cases skipped by limits", skipped_lines(report))):
        if lines:
            out += ["", f"## {title}", ""] + [f"- {line}" for line in lines]
    out += ["", "## Every case", ""]
    for cells in report.cells.values():
        for cell in cells:
            if not cell.records:
                continue
            out += [f"<details><summary>{cell.op} / {cell.column}: {cell.text()}, "
                    f"{len(cell.records)} cases, {cell.seconds:.2f} s</summary>", "",
                    "| case | configuration | check | ratio | worst index | actual | expected | problem |",
                    "|---|---|---|---|---|---|---|---|"]
            for record in cell.records:
                for c in record.comparisons:
                    out.append(
                        f"| {_source(record)} | `{record.case.describe()}` | {c.check} | "
                        f"{_md_value(_number(c.ratio))} | {'' if c.worst.index is None else c.worst.index} | "
                        f"{_md_value(c.worst.actual)} | {_md_value(c.worst.expected)} | "
                        f"{c.problem.replace('|', '/')} |")
            out += ["", "</details>", ""]
    return "\n".join(out).rstrip() + "\n"


def write_markdown(report: Report, path, command: str = "") -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(report, command))
