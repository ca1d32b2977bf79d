"""Command line: python -m crossconv [crosscheck|verify|list|bench|figures|port-check] (or crossconv ...).

Exit codes: 0 everything passed, 1 a check failed, 2 a bad option or an environment
that cannot run what was asked (unknown op or backend, a selection with nothing to
check, no CUDA device for --device cuda, a module that does not import).

``bench`` and ``figures`` write under ``build/`` (in the current directory); with
``--update-docs`` they rewrite the repository's docs/benchmarks.md and docs/figures/.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import frameworks
from .registry import BACKENDS, IMPLEMENTATIONS, OPS, implementation_names, implementations

#: What the reference column of the op x implementation table says.
REFERENCE_CELL = "definition"
ROOT = Path(__file__).resolve().parents[1]
#: Where ``bench`` and ``figures`` write unless ``--update-docs`` (relative to the current
#: directory, like crosscheck's ``--json build/crosscheck.json``).
BUILD = Path("build")


def version() -> str:
    """The installed distribution's version; in a checkout that is not installed,
    pyproject.toml's."""
    try:
        return metadata.version("crossconv")
    except metadata.PackageNotFoundError:
        return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def _crosscheck(args, console: Console) -> int:
    from . import report as reports
    from .crosscheck import REFERENCE_COLUMNS, crosscheck, device_problem, select_columns

    ops, backends = _names(args.ops), _names(args.backends)
    unknown = sorted(set(ops or ()) - set(OPS))
    known_backends = {"reference", *BACKENDS, *implementation_names()}
    unknown += sorted(set(backends or ()) - known_backends)
    if unknown:
        console.print(f"crosscheck: unknown op or backend {', '.join(unknown)}; ops: {', '.join(OPS)}; "
                      f"backends: {', '.join(sorted(known_backends))}", highlight=False)
        return 2
    columns = select_columns(backends)
    checked = [(op, column) for op in (ops or OPS) for column in columns
               if column in REFERENCE_COLUMNS or implementations(op, name=column)]
    if not checked:
        verb = "implements" if len(backends or ()) == 1 else "implement"
        console.print(f"crosscheck: nothing to check: {', '.join(backends or ())} {verb} none of "
                      f"{', '.join(ops or OPS)} (crossconv list shows who implements what)",
                      highlight=False)
        return 2
    problem = device_problem(args.device)
    if problem:
        console.print(f"crosscheck --device {args.device}: {problem}. Run without --device to "
                      f"check on the CPU.", highlight=False)
        return 2
    command = "crossconv " + shlex.join(args.argv)
    progress_console = Console(stderr=True)
    total = len(ops or OPS) * len(columns)
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
    for column in ("backend", "module", "status", "columns", "ops"):
        table.add_column(column)
    for backend in BACKENDS.values():
        status = frameworks.backend_status(backend) or "available"
        impls = [i for i in IMPLEMENTATIONS if i.backend == backend.name]
        # One backend has several implementations of an op (torch and torch-triton): each
        # op and each column once, in registry order.
        columns = ", ".join(dict.fromkeys(i.name for i in impls)) or "—"
        ops = ", ".join(dict.fromkeys(i.op for i in impls)) or "—"
        table.add_row(backend.name, backend.module, status, columns, ops)
    console.print(table)
    header, rows = implementation_table()
    ops_table = Table(title="ops x implementations (python -m crossconv list --markdown)")
    for column in header:
        ops_table.add_column(column)
    for row in rows:
        ops_table.add_row(*(cell.strip("`") for cell in row))
    console.print(ops_table)
    return 0


def _docs(console: Console, command: str) -> Path | None:
    """The repository's docs/ for ``--update-docs``, or None (printed) when crossconv runs
    from an installation without it."""
    docs = ROOT / "docs"
    if not docs.is_dir():
        console.print(f"{command} --update-docs: no docs/ beside the crossconv package ({ROOT}); "
                      f"it rewrites a checkout's docs (pip install -e)", highlight=False)
        return None
    return docs


def _bench(args, console: Console) -> int:
    from .bench import run_benchmarks

    only = _names(args.only)
    command = "python -m crossconv bench" + (" --update-docs" if args.update_docs else "") + (
        f" --only {args.only}" if args.only else "")
    if args.update_docs:
        docs = _docs(console, "bench")
        if docs is None:
            return 2
        doc = docs / "benchmarks.md"
    else:
        doc = BUILD / "benchmarks.md"
        if not args.no_write:
            doc.parent.mkdir(parents=True, exist_ok=True)
    return run_benchmarks(console, repeats=args.repeats, only=only, write=not args.no_write,
                          command=command, doc=doc, isolate=not args.in_process)


def _verify(args, console: Console) -> int:
    from .verification.command import run

    return run(args, console)


def _port_check(args, console: Console) -> int:
    from .port_check import run

    return run(args, console)


def _figures(args, console: Console) -> int:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        console.print("figures: matplotlib is not installed (pip install crossconv[figures])")
        return 2
    from .figures import make_figures

    out = args.out
    if args.update_docs:
        docs = _docs(console, "figures")
        if docs is None:
            return 2
        out = docs / "figures"
    return make_figures(console, out=out or BUILD / "figures", report=args.report)


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="crossconv", description=__doc__,
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
    main_parser.add_argument("--version", action="version", version=f"crossconv {version()}")
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
    bench = sub.add_parser("bench", help="benchmarks (ratios measured side by side), printed and "
                                         "written to build/benchmarks.md")
    bench.add_argument("--repeats", type=int, default=5, help="timed rounds per comparison")
    bench.add_argument("--only", help="comma-separated benchmark modules (benchmarks/bench_*.py)")
    written = bench.add_mutually_exclusive_group()
    written.add_argument("--no-write", action="store_true", help="print only; write nothing")
    written.add_argument("--update-docs", action="store_true",
                         help="rewrite the modules' blocks of docs/benchmarks.md instead of "
                              "build/benchmarks.md (what make bench does)")
    bench.add_argument("--in-process", action="store_true",
                       help="run every module in this process (default: each in its own)")
    from .port_check import add_arguments as port_check_arguments

    port_check_arguments(sub.add_parser(
        "port-check", help="a Torch7 model (.t7) against its PyTorch port, layer by layer",
        description="Run a Torch7 model in lua_port's Lua shim and a PyTorch port of it on the same "
                    "input and weights, forward and backward, and report the first layer where they "
                    "part. Exit 0: they agree; 1: they part; 2: bad arguments or a file that cannot "
                    "be loaded."))
    figures = sub.add_parser("figures", help="draw the figures of docs/figures/ into build/figures")
    drawn = figures.add_mutually_exclusive_group()
    drawn.add_argument("--out", default=None, help="directory (default build/figures)")
    drawn.add_argument("--update-docs", action="store_true",
                       help="draw into docs/figures/ (what make figures does)")
    figures.add_argument("--report", default=None,
                         help="crosscheck JSON report for the matrix heatmap (default "
                              "build/crosscheck.json; skipped with a note if missing)")
    return main_parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["crosscheck", *argv]
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: 2 for a bad option, 0 for --help
        return int(exit_.code or 0)
    args.argv = argv
    console = Console(width=200)
    commands = {"crosscheck": _crosscheck, "verify": _verify, "list": _list, "bench": _bench,
                "figures": _figures, "port-check": _port_check}
    return commands[args.command](args, console)


if __name__ == "__main__":
    sys.exit(main())
