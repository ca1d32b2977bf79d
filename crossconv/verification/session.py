"""A verify run: the cases, in order, through the worker, until a counterexample.

1. The function's signature decides the automatic limits (an argument it lacks is only
   drawn at its default) and the worker loads it.
2. The smallest case, in each dtype: a dtype the function refuses there (it raises) is
   unsupported, and left out of the draw, unless the dtypes were asked for.
3. The boundary cases the limits admit (float32 and float64) and the golden cases.
4. ``examples`` drawn cases: the dtype first (half dtypes for torch and JAX, half of
   those image-like), then the op's strategy under the limits.

A failing drawn case is shrunk by Hypothesis, a crash or a timeout like any other failure;
shrinking stops after ``shrink_seconds`` (each crash restarts the worker, each timeout
waits for it), keeping the smallest failure so far.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, example, find, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from .. import boundary
from ..crosscheck import cast
from ..goldens import GOLDENS
from ..registry import OPS
from ..storage import hypothesis_storage
from . import dtypes as dt
from .frameworks import FRAMEWORKS
from .options import follow_signature
from .plan import Check, Draw, Options, Outcome, Plan
from .report import Report, stress_of


class _Found(Exception):
    """A failing case, inside Hypothesis."""

    def __init__(self, outcome: Outcome, plan: Plan):
        super().__init__(outcome.failure.describe())
        self.outcome, self.plan = outcome, plan


class _StopShrinking(BaseException):
    """Out of shrinking time: Hypothesis lets a BaseException through at once."""


@dataclass
class Settings:
    op: str
    framework: str = "numpy"
    grad: bool = False
    examples: int = 100
    seed: int = 0
    limits: dict = field(default_factory=dict)
    allow_nondeterministic: bool = False
    require_batch_invariance: bool = False
    shrink_seconds: float = 60.0


@dataclass
class Result:
    """The run's report, and the failing case with its plan (None when it passed)."""

    report: Report
    outcome: Outcome | None = None
    plan: Plan | None = None


class Session:
    def __init__(self, settings: Settings, worker, report: Report, progress=None):
        self.settings = settings
        self.worker = worker
        self.report = report
        self.progress = progress
        self.op = OPS[settings.op]
        self.framework = FRAMEWORKS[settings.framework]
        self.in_flight: Draw | None = None
        self.shrinking = False
        self.first_failure_at: float | None = None
        self.smallest_failure: tuple[Outcome, Plan] | None = None
        self.options = Options(grad=settings.grad, layouts=self.framework.layouts,
                               allow_nondeterministic=settings.allow_nondeterministic,
                               require_batch_invariance=settings.require_batch_invariance,
                               float64_ok=self.framework.float64_ok)

    # ------------------------------------------------------------------------- setup

    def limits(self) -> tuple[dict, tuple[str, ...], bool]:
        """The strategy's limits (the user's and the signature's), the dtypes, and whether
        the user chose the dtypes."""
        user = dict(self.settings.limits)
        automatic, untested = follow_signature(self.op.name, self.worker.signature(), user)
        self.report.automatic_limits, self.report.untested = automatic, untested
        chosen = "dtypes" in user
        dtypes = tuple(user.pop("dtypes", dt.ALL if self.framework.half else dt.FLOATS))
        return {**automatic, **user}, dtypes, chosen

    def evaluate(self, draw: Draw) -> tuple[Outcome, Plan]:
        self.in_flight = draw
        if self.progress:
            self.progress(self.report, draw, self.shrinking)
        started = time.perf_counter()
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            plan = Plan(draw, self.options, self.op)
            prepared = time.perf_counter()
            results, abnormal = self.worker.run(plan.calls)
            checks = plan.judge(results, abnormal)
        outcome = Outcome(draw, checks, abnormal, plan.calls, results, plan.batch_sample,
                          time.perf_counter() - started)
        self.report.reference_seconds += prepared - started
        self.report.record(outcome, plan, shrinking=self.shrinking)
        self.in_flight = None
        return outcome, plan

    def smallest(self, limits: dict, dtype: str) -> Draw:
        """The smallest case the limits allow, in ``dtype``."""
        strategy = self.op.cases(**{**limits, "dtypes": (dt.storage(dtype),), "large": 0})
        case = find(strategy, lambda _: True,
                    settings=settings(database=None, max_examples=20, deadline=None,
                                      phases=(Phase.generate, Phase.shrink),
                                      suppress_health_check=list(HealthCheck)))
        return Draw("smallest", "", dt.as_dtype(case, dtype), dtype)

    def fixed(self, limits: dict, dtypes) -> list[Draw]:
        """The boundary cases the limits admit (in float32/float64; in the half dtypes when
        only those run) and the golden cases."""
        floats = [d for d in dtypes if d in dt.FLOATS]
        if not floats:  # half precision only: the boundary cases in it (finite by default)
            limits = {**dt.half_limits(self.op.name, self.settings.limits), **limits}
        draws = []
        for b in self.op.boundary():
            reason = boundary.admits(self.op.cases, {**limits, "dtypes": tuple(dtypes)}, b)
            if reason:
                self.report.skipped_boundary.append(f"{b.name} ({reason})")
                continue
            draws += [Draw("boundary", b.name, dt.as_dtype(b.case, d), d) for d in floats or dtypes]
        golden_dtype = "float64" if "float64" in floats else (floats or ["float32"])[0]
        if not floats:
            return draws
        for golden in GOLDENS:
            if golden.op == self.op.name:
                draws.append(Draw("golden", golden.name, cast(golden.case, golden_dtype),
                                  golden_dtype, (golden.expected.astype(golden_dtype),)))
        return draws

    def strategy(self, limits: dict, dtypes):
        """Draws: the dtype, then (half dtypes: half of them image-like) the op's case."""
        op = self.op

        def for_dtype(dtype):
            cases = op.cases(**{**limits, "dtypes": (dt.storage(dtype),)})
            if dtype in dt.HALF:
                half = {**dt.half_limits(op.name, self.settings.limits), **limits,
                        "dtypes": ("float32",)}
                cases = op.cases(**half)
                if "image_like" not in limits:
                    cases = st.booleans().flatmap(
                        lambda image: op.cases(**{**half, "image_like": image}))
            return cases.map(lambda case: Draw("drawn", "", dt.as_dtype(case, dtype), dtype))

        return st.sampled_from(list(dtypes)).flatmap(for_dtype)

    # ------------------------------------------------------------------------- running

    def run(self) -> Result:
        limits, dtypes, chosen = self.limits()
        supported = []
        for dtype in dtypes:
            outcome, plan = self.evaluate(self.smallest(limits, dtype))
            failure = outcome.failure
            refused = (failure is not None and outcome.abnormal is None
                       and failure.comparison.problem.startswith("raised"))
            if refused and not chosen:
                self.report.unsupported[dtype] = failure.comparison.problem
                continue
            if failure is not None:
                return Result(self.report, outcome, plan)
            supported.append(dtype)
        self.report.dtypes = tuple(supported)
        if not supported:  # every dtype refused: that is a failure after all
            return Result(self.report, *self._refusal(limits, dtypes[0]))
        fixed = self.fixed(limits, supported)
        return self._hypothesis(limits, supported, fixed)

    def _refusal(self, limits, dtype):
        return self.evaluate(self.smallest(limits, dtype))

    def _hypothesis(self, limits, dtypes, fixed) -> Result:
        def check(draw: Draw):
            if self.first_failure_at is not None:
                self.shrinking = True
                if time.perf_counter() - self.first_failure_at > self.settings.shrink_seconds:
                    raise _StopShrinking
            outcome, plan = self.evaluate(draw)
            if outcome.failure is not None:
                if self.first_failure_at is None:
                    self.first_failure_at = time.perf_counter()
                self.smallest_failure = (outcome, plan)
                raise _Found(outcome, plan)

        test = given(self.strategy(limits, dtypes))(check)
        for draw in reversed(fixed):  # explicit examples run in the order given
            test = example(draw)(test)
        examples = self.settings.examples
        phases = list(Phase) if examples else [Phase.explicit]
        test = settings(max_examples=max(examples, 1), derandomize=False, database=None,
                        deadline=None, report_multiple_bugs=False, verbosity=Verbosity.quiet,
                        print_blob=False, phases=phases,
                        suppress_health_check=list(HealthCheck))(test)
        test = hypothesis_seed(self.settings.seed)(test)
        try:
            with hypothesis_storage():
                test()
        except _Found as found:
            return Result(self.report, found.outcome, found.plan)
        except _StopShrinking:
            return Result(self.report, *self.smallest_failure)
        except BaseExceptionGroup as group:  # a flaky function: Hypothesis groups its failures
            found = group.subgroup(lambda error: isinstance(error, _Found))
            if found is None:
                raise
            if self.smallest_failure is not None:
                return Result(self.report, *self.smallest_failure)
            while isinstance(found, BaseExceptionGroup):
                found = found.exceptions[0]
            return Result(self.report, found.outcome, found.plan)
        except Exception:
            if self.smallest_failure is not None:  # e.g. Flaky: the replay passed
                return Result(self.report, *self.smallest_failure)
            raise
        return Result(self.report)


def interrupted_outcome(draw: Draw, options: Options, call: str) -> tuple[Outcome, Plan]:
    """The case in flight at Ctrl-C, as an outcome whose snippet reruns it."""
    from ..measure import failure

    plan = Plan(draw, options)
    check = Check("interrupted", call or "forward",
                  failure("interrupted", f"interrupted (Ctrl-C) during the {call or 'forward'} call"))
    return Outcome(draw, [check], None, plan.calls), plan


__all__ = ["Session", "Settings", "Result", "interrupted_outcome", "stress_of"]
