"""``make crosscheck``: every check of the registry, one table row per operation.

Columns: the reference against its loop oracle, against finite differences, its golden
cases, then one column per backend (forward and gradients against the reference). A
number is the worst error seen as a fraction of the tolerance (<= 1 passes); "—" means
the backend does not implement the op, "n/a" that it cannot run here (and why, below the
table).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings

from . import checks, frameworks
from .compare import assert_close
from .goldens import GOLDENS
from .registry import OPS, ORACLE, implementation_names, implementations


@dataclass(frozen=True)
class Cell:
    status: str  # "pass", "FAIL", "n/a", "—"
    worst: float = 0.0
    detail: str = ""

    def text(self) -> str:
        if self.status == "pass":
            return f"ok {self.worst:.1e}"
        return self.status


def run_property(strategy, check, examples: int) -> float:
    """Run ``check`` on ``examples`` derandomized draws; the worst ratio, or raise."""
    worst = [0.0]

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def prop(case):
        worst[0] = max(worst[0], check(case))

    prop()
    return worst[0]


def _cell(run) -> Cell:
    try:
        return Cell("pass", run())
    except AssertionError as error:
        return Cell("FAIL", detail=str(error))
    except Exception as error:  # a crash of a backend is a failure, reported, not raised
        return Cell("FAIL", detail=f"{type(error).__name__}: {error}")


def _golden_cell(op_name: str) -> Cell:
    goldens = [g for g in GOLDENS if g.op == op_name]
    if not goldens:
        return Cell("—")

    def run():
        return max(assert_close(*g.run(), ORACLE, f"golden {g.name} ({g.source})") for g in goldens)

    return _cell(run)


def _backend_cell(op, column: str, examples: int) -> Cell:
    impls = implementations(op.name, name=column)
    if not impls:
        return Cell("—")
    reasons = [frameworks.implementation_status(impl) for impl in impls]
    if any(reasons):
        return Cell("n/a", detail=next(r for r in reasons if r))

    def run():
        worst = 0.0
        for impl in impls:
            strategy = op.cases(dtypes=impl.dtypes, **impl.limits)
            count = max(1, round(examples * impl.examples))
            worst = max(worst, run_property(strategy, lambda c: checks.check_forward(impl, c), count))
            if impl.grad:
                worst = max(worst, run_property(strategy, lambda c: checks.check_vjp(impl, c), count))
        return worst

    return _cell(run)


def crosscheck(examples: int = 20, ops=None, backends=None):
    """``(columns, rows)``: rows map each op name to its cells, in column order."""
    backend_names = implementation_names(backends)
    columns = ["oracle", "finite diff", "golden", *backend_names]
    rows = {}
    for op in OPS.values():
        if ops is not None and op.name not in ops:
            continue
        float64 = ("float64",)
        rows[op.name] = [
            _cell(lambda: run_property(op.cases(dtypes=float64), checks.check_oracle, examples)),
            _cell(lambda: run_property(op.cases(dtypes=float64, **op.fd_options),
                                       checks.check_finite_differences, examples)),
            _golden_cell(op.name),
            *(_backend_cell(op, name, examples) for name in backend_names),
        ]
    return columns, rows
