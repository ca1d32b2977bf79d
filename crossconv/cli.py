"""Command line: python -m crossconv [crosscheck|verify|list|bench|figures] (or crossconv ...).

Exit codes: 0 everything passed, 1 a check failed, 2 a bad option or an environment
that cannot run what was asked (unknown op or backend, no CUDA device for
--device cuda, a module that does not import).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import frameworks
from .registry import BACKENDS, IMPLEMENTATIONS, OPS, implementation_names

#: What the reference column of the op x implementation table says.
REFERENCE_CELL = "definition"


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def _crosscheck(args, console: Console) -> int:
    from . import report as reports
    from .crosscheck import crosscheck, device_problem, select_columns

    ops, backends = _names(args.ops), _names(args.backends)
    unknown = sorted(set(ops or ()) - set(OPS))
    known_backends = {"reference", *BACKENDS, *implementation_names()}
    unknown += sorted(set(backends or ()) - known_backends)
    if unknown:
        console.print(f"crosscheck: unknown op or backend {', '.join(unknown)}; ops: {', '.join(OPS)}; "
                      f"backends: {', '.join(sorted(known_backends))}", highlight=False)
        return 2
    problem = device_problem(args.device)
    if problem:
        console.print(f"crosscheck --device {args.device}: {problem}. Run without --device to "
                      f"check on the CPU.", highlight=False)
        return 2
    command = "crossconv " + shlex.join(args.argv)
    progress_console = Console(stderr=True)
    total = len(ops or OPS) * len(select_columns(backends))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=progress_console, transient=True) as progress:
        task = progress.add_task("crosscheck", total=total)

        def advance(op, column):
            if progress.tasks[task].description != "crosscheck":
                progress.advance(task)
            progress.update(task, description=f"{op} / {column}")

        report = crosscheck(examples=args.examples, ops=ops, backends=backends, seed=args.seed,
                            device=args.device, progress=advance)
        progress.advance(task)
    console.print(reports.rich_table(report))
    console.print(reports.LEGEND, highlight=False)
    for line in reports.na_lines(report) + reports.skipped_lines(report):
        console.print(f"[yellow]{escape(line)}[/]", highlight=False, soft_wrap=True)
    for line in reports.failure_lines(report):
        console.print(f"[bold red]{escape(line)}[/]", highlight=False, soft_wrap=True)
    if args.json:
        reports.write_json(report, args.json, command)
    if args.markdown:
        reports.write_markdown(report, args.markdown, command)
    verdict = "[bold red]FAIL[/]" if report.failed else "[green]PASS[/]"
    console.print(f"{verdict} in {report.seconds:.1f} s"
                  + "".join(f"; written to {p}" for p in (args.json, args.markdown) if p))
    return 1 if report.failed else 0


def implementation_table() -> tuple[list[str], list[list[str]]]:
    """The op x implementation table of the registry: ``(header, rows)``. A cell lists
    what narrows the implementation (limits, dtypes, no gradients, extra arguments)."""
    columns = implementation_names()
    rows = []
    for op in OPS:
        row = [f"`{op}`", REFERENCE_CELL]
        for column in columns:
            impls = [i for i in IMPLEMENTATIONS if i.op == op and i.name == column]
            row.append("; ".join(_describe(i) for i in impls) or "—")
        rows.append(row)
    return ["op", "reference", *columns], rows


def _describe(impl) -> str:
    notes = [f"{k}={v!r}" for k, v in {**impl.limits, **impl.extra}.items()]
    if tuple(impl.dtypes) != ("float32", "float64"):
        notes.append(" / ".join(impl.dtypes) + " only")
    if not impl.grad:
        notes.append("forward only")
    return "✓" + (f" ({', '.join(notes)})" if notes else "")


def implementation_markdown() -> str:
    header, rows = implementation_table()
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


README = Path(__file__).resolve().parents[1] / "README.md"
TABLE_START, TABLE_END = "<!-- registry-table -->\n", "<!-- /registry-table -->"


def update_readme(path: Path = README) -> bool:
    """Rewrite the op x implementation table between README.md's markers; True if it changed."""
    text = path.read_text()
    before, rest = text.split(TABLE_START, 1)
    after = rest.split(TABLE_END, 1)[1]
    new = before + TABLE_START + implementation_markdown() + TABLE_END + after
    path.write_text(new)
    return new != text


def _list(args, console: Console) -> int:
    if args.update_readme:
        changed = update_readme()
        console.print(f"README.md's table {'updated' if changed else 'was up to date'}")
        return 0
    if args.markdown:
        sys.stdout.write(implementation_markdown())
        return 0
    table = Table(title="backends")
    for column in ("backend", "module", "status", "ops"):
        table.add_column(column)
    for backend in BACKENDS.values():
        status = frameworks.backend_status(backend) or "available"
        ops = ", ".join(i.op for i in IMPLEMENTATIONS if i.backend == backend.name) or "—"
        table.add_row(backend.name, backend.module, status, ops)
    console.print(table)
    header, rows = implementation_table()
    ops_table = Table(title="ops x implementations (python -m crossconv list --markdown)")
    for column in header:
        ops_table.add_column(column)
    for row in rows:
        ops_table.add_row(*(cell.strip("`") for cell in row))
    console.print(ops_table)
    return 0


def _bench(args, console: Console) -> int:
    from .bench import run_benchmarks

    only = _names(args.only)
    command = "python -m crossconv bench" + (f" --only {args.only}" if args.only else "")
    return run_benchmarks(console, repeats=args.repeats, only=only, write=not args.no_write,
                          command=command, isolate=not args.in_process)


def _verify(args, console: Console) -> int:
    from .verification.command import run

    return run(args, console)


def _figures(args, console: Console) -> int:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        console.print("figures: matplotlib is not installed (pip install crossconv[figures])")
        return 2
    from .figures import make_figures

    return make_figures(console, out=args.out, report=args.report)


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="crossconv", description=__doc__,
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = main_parser.add_subparsers(dest="command")
    check = sub.add_parser("crosscheck", help="every op x every implementation, as one matrix")
    check.add_argument("--examples", type=int, default=20,
                       help="random cases per check (default 20; slow implementations run their "
                            "registry fraction of it)")
    check.add_argument("--ops", help="comma-separated op names (default: all)")
    check.add_argument("--backends", help="comma-separated backend or column names, 'reference' for "
                                          "the reference's own columns (default: all)")
    check.add_argument("--seed", type=int, default=0, help="seed of the random cases (default 0)")
    check.add_argument("--device", default="cpu",
                       help="cpu (default) or cuda: the frameworks' tensors (and GPU kernels) on "
                            "that device; exits 2 when no framework here can use it")
    check.add_argument("--json", metavar="PATH", help="write the full report as JSON")
    check.add_argument("--markdown", metavar="PATH", help="write the full report as Markdown")
    from .verification.command import add_arguments

    add_arguments(sub.add_parser(
        "verify", help="hold your own implementation of an op to the reference",
        description="Run an op's property suite (its strategies, boundary and golden cases) "
                    "against MODULE:FUNCTION in a worker process. Exit 0: passed; 1: a "
                    "counterexample (printed as a runnable regression test); 2: bad options or "
                    "an import error; 130: interrupted."))
    listing = sub.add_parser("list", help="backends, their status and the op x implementation table")
    listing.add_argument("--markdown", action="store_true",
                         help="print the op x implementation table as Markdown (as in README.md)")
    listing.add_argument("--update-readme", action="store_true",
                         help="rewrite that table in README.md (after adding implementations)")
    bench = sub.add_parser("bench", help="benchmarks (ratios measured side by side)")
    bench.add_argument("--repeats", type=int, default=5, help="timed rounds per comparison")
    bench.add_argument("--only", help="comma-separated benchmark modules (benchmarks/bench_*.py)")
    bench.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    bench.add_argument("--in-process", action="store_true",
                       help="run every module in this process (default: each in its own)")
    figures = sub.add_parser("figures", help="draw the figures of docs/figures/")
    figures.add_argument("--out", default=None, help="directory (default docs/figures)")
    figures.add_argument("--report", default=None,
                         help="crosscheck JSON report for the matrix heatmap (default "
                              "build/crosscheck.json; skipped with a note if missing)")
    return main_parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["crosscheck", *argv]
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: 2 for a bad option, 0 for --help
        return int(exit_.code or 0)
    args.argv = argv
    console = Console(width=200)
    commands = {"crosscheck": _crosscheck, "verify": _verify, "list": _list, "bench": _bench,
                "figures": _figures}
    return commands[args.command](args, console)


if __name__ == "__main__":
    sys.exit(main())
