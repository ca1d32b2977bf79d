"""Command line: ``python -m crossconv [crosscheck|list|bench]``."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from . import frameworks
from .registry import BACKENDS, IMPLEMENTATIONS, OPS

STYLE = {"pass": "green", "FAIL": "bold red", "n/a": "yellow", "—": "dim"}


def _crosscheck(args, console: Console) -> int:
    from .crosscheck import crosscheck

    ops = args.ops.split(",") if args.ops else None
    backends = args.backends.split(",") if args.backends else None
    columns, rows = crosscheck(examples=args.examples, ops=ops, backends=backends)
    table = Table(title=f"crossconv crosscheck ({args.examples} cases per check)")
    table.add_column("op")
    for column in columns:
        table.add_column(column, justify="right")
    details = []
    for op_name, cells in rows.items():
        table.add_row(op_name, *(f"[{STYLE[c.status]}]{c.text()}[/]" for c in cells))
        details += [(op_name, col, c) for col, c in zip(columns, cells) if c.detail]
    console.print(table)
    console.print("ok x: worst error / tolerance (<= 1 passes); — not implemented; n/a cannot run here")
    for op_name, column, cell in details:
        console.print(f"[{STYLE[cell.status]}]{cell.status}[/] {op_name} / {column}: {cell.detail}",
                      markup=True, highlight=False, soft_wrap=True)
    failed = any(c.status == "FAIL" for cells in rows.values() for c in cells)
    return 1 if failed else 0


def _list(args, console: Console) -> int:
    table = Table(title="backends")
    for column in ("backend", "module", "status", "ops"):
        table.add_column(column)
    for backend in BACKENDS.values():
        status = frameworks.backend_status(backend) or "available"
        ops = ", ".join(i.op for i in IMPLEMENTATIONS if i.backend == backend.name) or "—"
        table.add_row(backend.name, backend.module, status, ops)
    console.print(table)
    console.print("ops: " + ", ".join(OPS))
    return 0


def _bench(args, console: Console) -> int:
    from .bench import run_benchmarks

    only = args.only.split(",") if args.only else None
    command = "python -m crossconv bench" + (f" --only {args.only}" if args.only else "")
    return run_benchmarks(console, repeats=args.repeats, only=only, write=not args.no_write,
                          command=command)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crossconv", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("crosscheck", help="every check of the registry, as one table")
    check.add_argument("--examples", type=int, default=20, help="cases per check (default 20)")
    check.add_argument("--ops", help="comma-separated op names (default: all)")
    check.add_argument("--backends", help="comma-separated backend names (default: all)")
    sub.add_parser("list", help="backends, their status and the ops they implement")
    bench = sub.add_parser("bench", help="benchmarks (ratios measured side by side)")
    bench.add_argument("--repeats", type=int, default=5, help="timed rounds per comparison")
    bench.add_argument("--only", help="comma-separated benchmark modules (benchmarks/bench_*.py)")
    bench.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args(argv)
    console = Console(width=160)
    if args.command in (None, "crosscheck"):
        if args.command is None:
            args = parser.parse_args(["crosscheck", *(argv or [])])
        return _crosscheck(args, console)
    return {"list": _list, "bench": _bench}[args.command](args, console)


if __name__ == "__main__":
    sys.exit(main())
