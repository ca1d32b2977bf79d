"""``make crosscheck``: every op x every implementation column, against the float64 reference.

Columns: the reference against its loop oracle ("oracle": random, boundary and golden
cases), against finite differences ("finite diff") and against the golden values
("golden"); then one column per implementation name in the registry (``torch``,
``torch-triton``, ``lua-5.4``, ``torch-anchor``, ...). An implementation column runs, for
each implementation of the op under that name:

- seeded random cases from the op's strategy narrowed by the implementation's limits
  (``examples`` x ``impl.examples`` of them), forward and every gradient;
- the golden cases (forward against the known values, gradients against the reference);
- the op's boundary cases that its limits admit (:mod:`crossconv.boundary`), in each of
  its dtypes (only the first for a slow implementation, ``impl.examples < 1``), forward
  and every gradient;
- an empty batch (not for the anchors, which follow torch's own rules there).

A cell's number is the worst error seen, in units of the dtype's tolerance (<= 1
passes). Every case is kept as a :class:`Record` (configuration and, per output or
gradient, the worst element, its index and both values) for the JSON and Markdown
reports (:mod:`crossconv.report`), and every cell its wall time, so the cost of each
column is visible.

``device="cuda"`` builds every adapter on the GPU (the reference columns stay NumPy);
an adapter without a ``device`` parameter (a CPU-only backend) makes its column n/a. The
CLI exits 2 up front when no framework here sees a CUDA device (:func:`device_problem`),
rather than printing a matrix of n/a.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from . import boundary, checks, frameworks, measure
from .cases import Case
from .compare import Worst, assert_close
from .goldens import GOLDENS
from .measure import Comparison
from .registry import OPS, ORACLE, Implementation, implementation_names, implementations
from .storage import hypothesis_storage

REFERENCE_COLUMNS = ("oracle", "finite diff", "golden")


@dataclass
class Record:
    """One case of one cell: where it came from and how each output compared."""

    kind: str  # "random", "golden", "boundary", "empty batch"
    name: str
    case: Case
    comparisons: list[Comparison]
    implementation: str = ""

    @property
    def worst(self) -> Comparison:
        return measure.worst(self.comparisons)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)


@dataclass
class Cell:
    """One op x column: PASS/FAIL (with the worst ratio), n/a (with the reason) or —."""

    op: str
    column: str
    status: str  # "PASS", "FAIL", "n/a", "—"
    reason: str = ""
    records: list[Record] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def worst(self) -> float:
        return max((r.worst.ratio for r in self.records), default=0.0)

    @property
    def failures(self) -> list[Record]:
        return [r for r in self.records if not r.passed]

    def text(self) -> str:
        if self.status in ("PASS", "FAIL") and self.records:
            worst = self.worst
            return f"{self.status} {'inf' if math.isinf(worst) else f'{worst:.2g}'}"
        return self.status


@dataclass
class Report:
    columns: list[str]
    cells: dict[str, list[Cell]]  # op -> cells in column order
    examples: int
    seed: int
    device: str
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return any(c.status == "FAIL" for cells in self.cells.values() for c in cells)

    def column_seconds(self) -> dict[str, float]:
        return {column: sum(cells[i].seconds for cells in self.cells.values())
                for i, column in enumerate(self.columns)}


# ----------------------------------------------------------------------------- running cases


def _settings(examples: int):
    """Seeded (not derandomized) draws, no shrinking: a failing case is recorded as drawn,
    every case is recorded, and the property never raises."""
    return settings(max_examples=examples, derandomize=False, database=None, deadline=None,
                    phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))


def draw_cases(strategy, examples: int, seed: int, visit: Callable[[Case], None]) -> None:
    """Call ``visit`` on ``examples`` cases drawn from ``strategy`` with Hypothesis seed ``seed``."""

    @hypothesis_seed(seed)
    @_settings(examples)
    @given(strategy)
    def run(case):
        visit(case)

    with hypothesis_storage():  # never a .hypothesis/ folder in the user's directory
        run()


def cast(case: Case, dtype: str) -> Case:
    tensors = {k: None if v is None else np.asarray(v).astype(dtype) for k, v in case.tensors.items()}
    return Case(case.op, tensors, case.params, case.seed)


def _quietly(fn, *args, **kwargs):
    """Non-finite cases warn in NumPy and the frameworks by design."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _measure(impl: Implementation, adapter, fn, case: Case, expected=None) -> list[Comparison]:
    comparisons = _quietly(measure.measure_forward, adapter, fn, case, impl.extra, expected)
    if impl.grad:
        comparisons += _quietly(measure.measure_vjp, adapter, fn, case, impl.extra)
    return comparisons


def _checked(kind: str, name: str, case: Case, check: str, run) -> Record:
    """A reference check (``run(case)`` returns the worst ratio or raises) as a record."""
    try:
        comparison = Comparison(check, Worst(_quietly(run, case)))
    except AssertionError as error:
        comparison = measure.failure(check, str(error))
    except Exception as error:  # noqa: BLE001 - reported in the matrix, not raised
        comparison = measure.raised(check, error)
    return Record(kind, name, case, [comparison], "reference")


def _golden_check(golden):
    def check(_case):
        return assert_close(*golden.run(), ORACLE, f"golden {golden.name} ({golden.source})")

    return check


# ----------------------------------------------------------------------------- cells


def _oracle_cell(op, examples: int, seed: int) -> Cell:
    cell = Cell(op.name, "oracle", "PASS")
    draw_cases(op.cases(dtypes=("float64",)), examples, seed, lambda case: cell.records.append(
        _checked("random", "", case, "oracle", checks.check_oracle)))
    for b in op.boundary():
        reason = boundary.admits(op.cases, {}, b)
        if reason:  # beyond a default draw (xcorr's tracking shape): too large for a loop
            cell.skipped.append(f"{b.name}: {reason}")
            continue
        cell.records.append(_checked("boundary", b.name, b.case, "oracle", checks.check_oracle))
    for golden in GOLDENS:
        if golden.op == op.name:
            cell.records.append(_checked("golden", golden.name, golden.case, "oracle",
                                         checks.check_oracle))
    return cell


def _finite_difference_cell(op, examples: int, seed: int) -> Cell:
    cell = Cell(op.name, "finite diff", "PASS")
    strategy = op.cases(dtypes=("float64",), **op.fd_options)
    draw_cases(strategy, examples, seed, lambda case: cell.records.append(
        _checked("random", "", case, "finite diff", checks.check_finite_differences)))
    return cell


def _golden_cell(op) -> Cell:
    goldens = [g for g in GOLDENS if g.op == op.name]
    if not goldens:
        return Cell(op.name, "golden", "—", "no golden case for this op")
    cell = Cell(op.name, "golden", "PASS")
    for golden in goldens:
        cell.records.append(_checked("golden", golden.name, golden.case, "golden",
                                     _golden_check(golden)))
    return cell


def _implementation_records(impl: Implementation, op, examples: int, seed: int, device: str,
                            cell: Cell) -> None:
    adapter, fn = frameworks.load(impl, device)
    label = f"{impl.name} ({impl.backend}.{impl.function_name})" if impl.label else impl.backend

    def record(kind, name, case, expected=None):
        cell.records.append(Record(kind, name, case, _measure(impl, adapter, fn, case, expected),
                                   label))

    strategy = op.cases(dtypes=impl.dtypes, **impl.limits)
    count = max(1, round(examples * impl.examples))
    draw_cases(strategy, count, seed, lambda case: record("random", "", case))
    dtype = "float64" if "float64" in impl.dtypes else impl.dtypes[0]
    for golden in GOLDENS:
        if golden.op == op.name:
            record("golden", golden.name, cast(golden.case, dtype), golden.expected.astype(dtype))
    admitted = []
    for b in op.boundary():
        reason = boundary.admits(op.cases, {"dtypes": impl.dtypes, **impl.limits}, b)
        if reason:
            cell.skipped.append(f"{b.name}: {reason}")
            continue
        admitted.append(b)
        for dtype in impl.dtypes if impl.examples >= 1 else impl.dtypes[:1]:
            record("boundary", b.name, cast(b.case, dtype))
    if not impl.backend.endswith("anchor") and admitted:
        empty = cast(admitted[0].case, impl.dtypes[0])
        cell.records.append(Record("empty batch", admitted[0].name, empty.with_batch(0),
                                   [_empty_batch(impl, empty, device)], label))


def _empty_batch(impl, case, device) -> Comparison:
    try:
        _quietly(checks.check_empty_batch, impl, case, device)
        return Comparison("empty batch", Worst(0.0))
    except AssertionError as error:
        return measure.failure("empty batch", str(error))
    except Exception as error:  # noqa: BLE001
        return measure.raised("empty batch", error)


def _implementation_cell(op, column: str, examples: int, seed: int, device: str) -> Cell:
    impls = implementations(op.name, name=column)
    if not impls:
        return Cell(op.name, column, "—", "not implemented")
    for impl in impls:
        reason = frameworks.implementation_status(impl)
        if reason is None:
            try:
                frameworks.load(impl, device)
            except LookupError as error:
                reason = str(error)
        if reason:
            return Cell(op.name, column, "n/a", reason)
    cell = Cell(op.name, column, "PASS")
    for impl in impls:
        _implementation_records(impl, op, examples, seed, device, cell)
    return cell


# ----------------------------------------------------------------------------- the matrix


def select_columns(backends=None) -> list[str]:
    """The reference columns and the implementation columns; ``backends`` (names of
    backends or columns, "reference" for the reference's own) narrows them."""
    if backends is None:
        return [*REFERENCE_COLUMNS, *implementation_names()]
    wanted = set(backends)
    columns = list(REFERENCE_COLUMNS) if "reference" in wanted else []
    for name in implementation_names():
        if name in wanted or any(i.backend in wanted for i in implementations(name=name)):
            columns.append(name)
    return columns


def device_problem(device: str) -> str | None:
    """None when some framework here can use ``device``, else why not."""
    if device == "cpu":
        return None
    if not device.startswith("cuda"):
        return f"unknown device {device!r} (use cpu or cuda)"
    try:
        import torch

        if torch.cuda.is_available():
            return None
    except ImportError:
        pass
    try:
        import jax

        if jax.devices("gpu"):
            return None
    except (ImportError, RuntimeError):
        pass
    return "no CUDA device here (neither torch.cuda.is_available() nor jax.devices('gpu'))"


def crosscheck(examples: int = 20, ops=None, backends=None, seed: int = 0, device: str = "cpu",
               progress: Callable[[str, str], Any] | None = None) -> Report:
    """Run every selected cell; ``progress(op, column)`` is called before each one."""
    start = time.perf_counter()
    columns = select_columns(backends)
    report = Report(columns, {}, examples, seed, device)
    for op in OPS.values():
        if ops is not None and op.name not in ops:
            continue
        report.cells[op.name] = []
        for column in columns:
            if progress:
                progress(op.name, column)
            began = time.perf_counter()
            cell = _cell(op, column, examples, seed, device)
            cell.seconds = time.perf_counter() - began
            if cell.status == "PASS" and cell.failures:
                cell.status = "FAIL"
            report.cells[op.name].append(cell)
    report.seconds = time.perf_counter() - start
    return report


def _cell(op, column, examples, seed, device) -> Cell:
    try:
        if column == "oracle":
            return _oracle_cell(op, examples, seed)
        if column == "finite diff":
            return _finite_difference_cell(op, examples, seed)
        if column == "golden":
            return _golden_cell(op)
        return _implementation_cell(op, column, examples, seed, device)
    except Exception as error:  # noqa: BLE001 - a broken column must not stop the matrix
        return Cell(op.name, column, "FAIL", f"the harness raised {type(error).__name__}: {error}")
