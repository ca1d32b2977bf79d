"""``crossconv verify MODULE:FUNCTION --op NAME``: the command line over :func:`crossconv.verify`.

- exit 0: every case passed; prints the configurations run, the features and checks
  exercised, what each check cost.
- exit 1: a counterexample, printed as a runnable regression test (every other line of the
  output is a comment, so ``crossconv verify ... > counterexample.py`` is a program).
- exit 2: bad options (an unknown op or ``--limit`` key, a value that is not a Python
  literal, ``--grad`` on NumPy without ``--vjp``) or a function that does not load.
- exit 130: interrupted (Ctrl-C); the case in flight is printed as a snippet.

docs/verify.md describes every check and option.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from ..registry import OPS
from .api import ALLOW, REQUIRE
from .api import run as run_verify
from .frameworks import FRAMEWORKS
from .options import UsageError, limit_help, parse_limit_items


def add_arguments(parser) -> None:
    parser.add_argument("target", metavar="MODULE:FUNCTION", nargs="?",
                        help="the implementation, e.g. torchvision.ops:deform_conv2d or mykernels:conv")
    parser.add_argument("--op", required=True, help=f"the op it implements: {', '.join(OPS)}")
    parser.add_argument("--framework", default="numpy", choices=list(FRAMEWORKS),
                        help="what FUNCTION takes and returns (default numpy)")
    parser.add_argument("--grad", action="store_true",
                        help="check gradients too (torch/jax: autodiff; numpy: needs --vjp)")
    parser.add_argument("--vjp", metavar="MODULE:FUNCTION",
                        help="a NumPy VJP, called as vjp(grad_output, <the op's arguments>) and "
                             "returning a dict like reference.<op>_vjp; implies --grad")
    parser.add_argument("--examples", type=int, default=100,
                        help="drawn configurations (default 100), after the smallest, boundary "
                             "and golden cases")
    parser.add_argument("--limit", action="append", default=[], metavar="KEY=VALUE",
                        help="narrow the draw like a registry limit, VALUE a Python literal "
                             "(e.g. max_dilation=1, nonfinite=False, dtypes=('float32',)); "
                             "repeatable; --limit help lists the keys of --op")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="a call running longer fails its case as a hang (default 60)")
    parser.add_argument("--allow", action="append", default=[], choices=ALLOW,
                        help="nondeterministic: report run-to-run differences as a warning")
    parser.add_argument("--require", action="append", default=[], choices=REQUIRE,
                        help="batch-invariance: fail when a sample's output depends on the "
                             "other samples of its batch")
    parser.add_argument("--save-counterexample", metavar="PATH",
                        help="write the counterexample as a regression test (exits 1 while the "
                             "function differs, 0 once fixed)")
    parser.add_argument("--json", metavar="PATH", help="write the whole run (every case and check)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawn cases (default 0)")
    parser.add_argument("--device", default="cpu", help="torch/jax device (default cpu)")
    parser.add_argument("--in-process", action="store_true",
                        help="call the function in verify's own process (no protection from "
                             "crashes and hangs)")


def run(args, console) -> int:
    try:
        return _run(args, console)
    except UsageError as error:
        console.print(f"crossconv verify: {error}", highlight=False, soft_wrap=True, markup=False)
        return 2
    except KeyboardInterrupt:
        return 130


def _print(console, text: str, **style) -> None:
    console.print(text, highlight=False, soft_wrap=True, markup=False, **style)


def _run(args, console) -> int:
    if args.op not in OPS:
        raise UsageError(f"--op {args.op}: unknown op; ops: {', '.join(OPS)}")
    if [item.strip() for item in args.limit] == ["help"] or "help" in args.limit:
        _print(console, limit_help(args.op))
        return 0
    if not args.target:
        raise UsageError("which function? crossconv verify MODULE:FUNCTION --op NAME")
    limits = parse_limit_items(args.op, args.limit)
    command = "crossconv verify " + " ".join(
        _quote(token) for token in getattr(args, "argv", [])[1:] or [args.target, "--op", args.op])
    report, found = run_verify(
        args.target, args.op, args.framework, args.grad, limits, args.examples, args.timeout,
        args.seed, args.device, args.vjp, tuple(args.allow), tuple(args.require),
        not args.in_process, None, 60.0, command=command)
    if args.json:
        report.write_json(args.json)
    what = "forward and gradients" if report.grad else "forward"
    if found is not None:
        if args.save_counterexample:
            Path(args.save_counterexample).write_text(found.snippet)
        _print(console, f"# FAIL {args.target} does not match reference.{args.op} ({what}): "
                        f"{report.failure}")
        for line in _notes(report):
            _print(console, "# " + line)
        if args.save_counterexample:
            _print(console, f"# written to {args.save_counterexample}")
        _print(console, "# the counterexample, as a runnable regression test:\n#")
        sys.stdout.flush()
        _print(console, found.snippet.rstrip("\n"))
        return 1
    _print(console, _pass_line(report, args.target, what))
    for line in _notes(report):
        _print(console, line)
    checks = ", ".join(f"{name} x{n}" for name, n in sorted(report.checks_passed.items()))
    _print(console, f"checks passed: {checks}")
    held = report.batch_invariance
    if held:
        _print(console, f"batch invariance: held on {held['held']} of "
                        f"{held['held'] + held['violated']} batched cases")
    for warning in report.warnings:
        check = next((k for k in report.warning_counts if warning.startswith(k)), "")
        count = report.warning_counts.get(check, 1)
        _print(console, f"warning ({count} case{'s' if count > 1 else ''}; the first): {warning}")
    _print(console, "features exercised:")
    for line in report.features.lines():
        _print(console, line)
    _print(console, "cost (seconds in the function's calls): " + _costs(report))
    boundary = report.features.boundary
    _print(console, f"boundary cases ({len(boundary)}): " + "; ".join(boundary))
    if report.skipped_boundary:
        _print(console, "boundary cases not run under these limits (--limit KEY=VALUE asks for "
                        "them): " + "; ".join(report.skipped_boundary))
    return 0


def _quote(token: str) -> str:
    """A shell word as people type it: double quotes around a Python literal."""
    if shlex.quote(token) == token:
        return token
    return f'"{token}"' if not any(c in token for c in '"$`\\!') else shlex.quote(token)


def _pass_line(report, target, what) -> str:
    kinds = report.features.kinds
    return (f"PASS {target} matches reference.{report.op} ({what}, {report.framework}) on "
            f"{sum(kinds.values())} configurations: {kinds['drawn']} drawn, {kinds['boundary']} "
            f"boundary, {kinds['golden']} golden, {kinds['smallest']} smallest "
            f"({report.seconds:.1f} s)")


def _notes(report) -> list[str]:
    lines = []
    if report.untested:
        automatic = ", ".join(f"{k}={v!r}" for k, v in report.automatic_limits.items())
        lines.append(f"not tested: {', '.join(report.untested)}: your function has no such "
                     f"argument (so: {automatic or 'their defaults only'})")
    if report.unsupported:
        lines += [f"unsupported dtype {dtype}: {why}" for dtype, why in report.unsupported.items()]
    if report.dtypes:
        lines.append(f"dtypes: {', '.join(report.dtypes)}")
    return lines


def _costs(report) -> str:
    calls = ", ".join(f"{k} {v:.1f}" for k, v in report.call_seconds.items())
    tiers = ", ".join(f"{k} {v:.1f}" for k, v in sorted(report.tier_seconds.items()))
    return (f"{calls}; reference {report.reference_seconds:.1f}; by tier (whole cases): {tiers}; "
            f"{report.isolation} worker, {report.worker_restarts} restarts")
