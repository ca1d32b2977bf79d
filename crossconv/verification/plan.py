"""One case, every check: the calls verify makes and how their results are judged.

For each case (a :class:`Draw`: the arguments, and the dtype the function gets) the
function is called, in one job of the worker:

1. ``forward``: the output(s), against the float64 reference, with the dtype's
   tolerance (pooling indices exactly); the result must have the input's dtype.
2. ``gradients`` (with ``grad``): the VJP of a fixed cotangent for every differentiable
   argument given, against the reference VJP (and the output again).
3. ``..., again``: the same call a second time: outputs and gradients must be bitwise
   equal to the first (else non-deterministic: a failure, or a warning when allowed).
4. one call per extra memory layout of the framework (torch: a strided view at an
   offset, and channels_last): output and gradients against the reference, a failure
   naming the layout.
5. ``batch variant`` (N >= 2): the other samples of the batch changed, sample n kept:
   sample n's output must be bitwise unchanged (batch invariance: reported; a failure
   when required).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..cases import UNBATCHED, Case, as_outputs
from ..compare import Worst
from ..measure import TRIVIAL, Comparison, compare, failure, present, trivially_zero
from ..registry import OPS
from . import dtypes as dt
from .runners import Call, Result


@dataclass(frozen=True)
class Draw:
    """A case and the dtype the function gets; ``kind`` "drawn", "boundary", "golden" or
    "smallest" (the smallest case, run first in each dtype); ``expected``: known outputs
    (golden cases) instead of the reference's."""

    kind: str
    name: str
    case: Case
    dtype: str
    expected: tuple | None = None

    def describe(self) -> str:
        text = self.case.describe()
        return text.replace(f"[{self.case.dtype}", f"[{self.dtype}", 1)


@dataclass(frozen=True)
class Options:
    grad: bool = False
    layouts: tuple[str, ...] = ("contiguous",)
    determinism: bool = True
    batch_invariance: bool = True
    allow_nondeterministic: bool = False
    require_batch_invariance: bool = False
    float64_ok: bool = False


@dataclass
class Check:
    """One judged output of one case: ``check`` ("forward", "indices", "d/d<arg>",
    "determinism", "batch invariance"), the call's label, and the comparison."""

    check: str
    call: str
    comparison: Comparison
    severity: str = "fail"  # what a miss means: "fail" or "warn"

    @property
    def passed(self) -> bool:
        return self.comparison.passed

    def describe(self) -> str:
        return f"{self.check} ({self.call}): {self.comparison.describe()}"


@dataclass
class Outcome:
    """Everything verify learned from one case."""

    draw: Draw
    checks: list[Check] = field(default_factory=list)
    abnormal: object = None  # isolation.Abnormal
    calls: list[Call] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    batch_sample: int | None = None
    seconds: float = 0.0

    @property
    def failure(self) -> Check | None:
        return next((c for c in self.checks if not c.passed and c.severity == "fail"), None)

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if not c.passed and c.severity == "warn"]

    @property
    def batch_invariant(self) -> bool | None:
        found = [c for c in self.checks if c.check == "batch invariance"]
        return found[0].passed if found else None


class Plan:
    """The calls for one draw, and the judgement of their results."""

    def __init__(self, draw: Draw, options: Options, op=None):
        self.draw = draw
        self.options = options
        self.op = op or OPS[draw.case.op]
        case = draw.case
        with np.errstate(all="ignore"):
            self.expected = (draw.expected if draw.expected is not None
                             else as_outputs(case.call(self.op.reference)))
        self.out_shape = self.expected[0].shape
        self.wrt = tuple(present(case, self.op.differentiable))
        self.zero = tuple(present(case, self.op.nondifferentiable))
        self.grad = options.grad and bool(self.wrt)
        self.cotangent = dt.cotangent(case, self.out_shape, draw.dtype) if self.grad else None
        self._expected_grads = None
        self.batch_sample = None
        self.calls = self._calls()

    @property
    def expected_grads(self) -> dict:
        if self._expected_grads is None:
            vjp = self.op.reference_vjp
            with np.errstate(all="ignore"):
                self._expected_grads = self.draw.case.call(lambda **kw: vjp(self.cotangent, **kw))
        return self._expected_grads

    def _call(self, label, case=None, layout="contiguous", grad=False) -> Call:
        case = case or self.draw.case
        return Call(label, case.tensors, case.params, self.draw.dtype, layout,
                    self.cotangent if grad else None, self.wrt + self.zero if grad else (),
                    len(self.expected))

    def _calls(self) -> list[Call]:
        calls = [self._call("forward")]
        if self.grad:
            calls.append(self._call("gradients", grad=True))
        if self.options.determinism:
            last = calls[-1]
            calls.append(self._call(f"{last.label}, again", grad=self.grad))
        for layout in self.options.layouts:
            if layout != "contiguous":
                calls.append(self._call(f"{'gradients' if self.grad else 'forward'} [{layout}]",
                                        layout=layout, grad=self.grad))
        variant = self._batch_variant() if self.options.batch_invariance else None
        if variant is not None:
            calls.append(self._call("batch variant", case=variant))
        return calls

    def _batch_variant(self) -> Case | None:
        """The case with every sample but one replaced by a shuffle of the other samples'
        values times 1.5 (so still valid: offsets stay offsets, depths depths, and a
        batch statistic such as the largest value changes); None for N < 2."""
        case = self.draw.case
        first = next(v for v in case.tensors.values() if v is not None)
        n = first.shape[0]
        if n < 2:
            return None
        keep = case.seed % n
        self.batch_sample = keep
        rng = np.random.default_rng(case.seed + 3)
        tensors = {}
        for name, value in case.tensors.items():
            if value is None or name in UNBATCHED:
                tensors[name] = value
                continue
            changed = value.copy()
            others = np.delete(np.arange(n), keep)
            block = changed[others]
            changed[others] = rng.permutation(block.ravel()).reshape(block.shape) * 1.5
            tensors[name] = dt.round_to(changed, self.draw.dtype).astype(value.dtype)
        return Case(case.op, tensors, case.params, case.seed)

    # ------------------------------------------------------------------------- judging

    def judge(self, results: list[Result], abnormal=None) -> list[Check]:
        """The checks, in the order a failure is reported: forward, gradients, layouts,
        determinism, batch invariance. A crash or timeout is a failure of its call."""
        checks = []
        by_label = dict(zip((c.label for c in self.calls), results))
        if trivially_zero(self.expected[0]):
            return [Check("forward", "forward", failure("forward", TRIVIAL))]
        if abnormal is not None:
            label = self.calls[abnormal.index].label
            word = "crashed" if abnormal.kind == "crash" else "timed out"
            problem = (f"the function {abnormal.message}" if abnormal.kind == "crash"
                       else f"the call {abnormal.message}")
            checks.append(Check(word, label, failure(word, problem)))
        first = by_label.get("forward")
        if first is not None:
            checks += self._outputs(first, "forward")
        if self.grad and "gradients" in by_label:
            checks += self._outputs(by_label["gradients"], "gradients")
            checks += self._gradients(by_label["gradients"], "gradients")
        for call in self.calls:
            if "[" in call.label and call.label in by_label:
                checks += self._outputs(by_label[call.label], call.label)
                if self.grad:
                    checks += self._gradients(by_label[call.label], call.label)
        again = next((c.label for c in self.calls if c.label.endswith(", again")), None)
        if again in by_label:
            base = by_label["gradients" if self.grad else "forward"]
            checks.append(self._determinism(base, by_label[again], again))
        if "batch variant" in by_label and first is not None:
            checks.append(self._invariance(first, by_label["batch variant"]))
        return checks

    def _allowed_dtypes(self) -> set[str]:
        return {self.draw.dtype} | ({"float64"} if self.options.float64_ok else set())

    def _outputs(self, result: Result, label: str) -> list[Check]:
        if result.error:
            return [Check("forward", label, failure("forward", result.error))]
        if len(result.outputs) != len(self.expected):
            return [Check("forward", label, failure(
                "forward", f"{len(result.outputs)} outputs, expected {len(self.expected)}"))]
        if result.dtypes[0] not in self._allowed_dtypes():
            return [Check("forward", label, failure(
                "forward", f"returned {result.dtypes[0]}, expected the input's {self.draw.dtype}"))]
        tolerance = dt.tolerance(self.draw.case, self.draw.dtype, "forward", self.out_shape)
        checks = [Check("forward", label, compare("forward", result.outputs[0], self.expected[0],
                                                  tolerance))]
        for actual, expected in zip(result.outputs[1:], self.expected[1:]):
            checks.append(Check("indices", label, _exactly("indices", actual, expected)))
        return checks

    def _gradients(self, result: Result, label: str) -> list[Check]:
        if result.error:
            return []  # reported by _outputs
        if result.grads is None:
            return [Check("gradients", label, failure("gradients", "no gradients came back"))]
        checks = []
        for name in self.wrt:
            check = f"d/d{name}"
            tolerance = dt.tolerance(self.draw.case, self.draw.dtype, check, self.out_shape)
            expected = self.expected_grads[name]
            actual = result.grads.get(name)
            if trivially_zero(expected) and name not in self.op.vanishing:
                comparison = failure(check, TRIVIAL, tolerance)
            elif actual is None:
                comparison = failure(check, "no gradient", tolerance)
            else:
                comparison = compare(check, actual, expected, tolerance)
            checks.append(Check(check, label, comparison))
        for name in self.zero:
            actual = result.grads.get(name)
            if actual is not None and np.any(np.asarray(actual) != 0):
                checks.append(Check(f"d/d{name}", label, failure(
                    f"d/d{name}", f"{name} is not differentiable, got a non-zero gradient")))
        return checks

    def _determinism(self, first: Result, second: Result, label: str) -> Check:
        severity = "warn" if self.options.allow_nondeterministic else "fail"
        if first.error or second.error:
            return Check("determinism", label, Comparison("determinism", Worst(0.0)), severity)
        pairs = [("output", a, b) for a, b in zip(first.outputs, second.outputs)]
        for name in self.wrt:
            a = (first.grads or {}).get(name)
            b = (second.grads or {}).get(name)
            if a is not None and b is not None:
                pairs.append((f"d/d{name}", a, b))
        for what, a, b in pairs:
            if not dt.bits_equal(a, b):
                size, index = dt.largest_difference(a, b)
                worst = _worst(index, b, a)
                problem = (f"non-deterministic: two identical calls gave different {what} "
                           f"(largest difference {size:.3g}"
                           + (f" at {index}: {worst.expected!r} then {worst.actual!r})"
                              if index is not None else ")"))
                return Check("determinism", label, Comparison("determinism", worst, None, problem),
                             severity)
        return Check("determinism", label, Comparison("determinism", Worst(0.0)), severity)

    def _invariance(self, first: Result, variant: Result) -> Check:
        severity = "fail" if self.options.require_batch_invariance else "warn"
        n = self.batch_sample
        passed = Comparison("batch invariance", Worst(0.0))
        if first.error or variant.error or not first.outputs or not variant.outputs:
            return Check("batch invariance", "batch variant", passed, severity)
        a, b = np.asarray(first.outputs[0])[n], np.asarray(variant.outputs[0])[n]
        if dt.bits_equal(a, b):
            return Check("batch invariance", "batch variant", passed, severity)
        size, index = dt.largest_difference(a, b)
        worst = _worst(index, b, a)
        if index is not None:
            worst = Worst(worst.ratio, (n, *index), worst.actual, worst.expected)
            index = worst.index
        problem = (f"sample {n}'s output changed when the other samples of the batch changed "
                   f"(largest difference {size:.3g}"
                   + (f" at {index}: {worst.expected!r} became {worst.actual!r})"
                      if index is not None else ")"))
        return Check("batch invariance", "batch variant",
                     Comparison("batch invariance", worst, None, problem), severity)


def _worst(index, actual, expected) -> Worst:
    """A bitwise difference as a :class:`Worst` (``actual``: the later value)."""
    if index is None:
        return Worst(math.inf)
    return Worst(math.inf, index, float(np.asarray(actual)[index]), float(np.asarray(expected)[index]))


def _exactly(check: str, actual, expected) -> Comparison:
    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape:
        return failure(check, f"shape {a.shape} != expected {e.shape}")
    differ = np.argwhere(a != e)
    if not len(differ):
        return Comparison(check, Worst(0.0))
    index = tuple(int(i) for i in differ[0])
    return Comparison(check, Worst(math.inf, index, float(a[index]), float(e[index])),
                      problem=f"{check} differ at {index}: {a[index]!r} vs expected {e[index]!r}")
