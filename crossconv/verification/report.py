"""What a verify run found: counts, features exercised, checks, costs, and the JSON of it all."""

from __future__ import annotations

import json
import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .plan import Outcome, Plan


def stress_of(case) -> str:
    """The tier of a case: "small", or the dimension a large draw stresses (read back from
    its shapes: a batch above 2, an output side above 32, a kernel side above 3, ...)."""
    t, p = case.tensors, case.params
    first = next(v for v in t.values() if v is not None)
    if first.shape[0] > 2:
        return "batch"
    if case.op.startswith("xcorr"):
        template = t["template"].shape[-2:]
        if max(template) > 16:
            return "template"
        if max(s - k + 1 for s, k in zip(t["search"].shape[-2:], template)) > 32:
            return "size"
        return "small"
    if "weight" in t:
        kernel = t["weight"].shape[-2:]
    else:
        size = p["kernel_size"]
        kernel = (size, size) if np.ndim(size) == 0 else tuple(size)
    if max(kernel) > 3:
        return "kernel"
    if case.op == "conv2_5d" and t["weight"].shape[0] > 3:
        return "bins"
    if case.op == "deform_conv2d":
        taps = t["weight"].shape[2] * t["weight"].shape[3]
        if t["offset"].shape[1] // (2 * taps) > 2:
            return "groups"
        if t["offset"].shape[-1] > 32 or t["offset"].shape[-2] > 32:
            return "size"
    if case.op == "conv2d" and t["weight"].shape[1] > 3:
        return "channels"
    if max(first.shape[-2:]) > 36:
        return "size"
    return "small"


class Features:
    """What the cases exercised: dtypes, tiers, batch sizes, optional tensors, every
    parameter's values."""

    def __init__(self):
        self.kinds = Counter()
        self.values = defaultdict(Counter)
        self.boundary: list[str] = []

    def add(self, outcome: Outcome) -> None:
        draw = outcome.draw
        case, t = draw.case, draw.case.tensors
        self.kinds[draw.kind] += 1
        if draw.kind == "boundary" and draw.name not in self.boundary:
            self.boundary.append(draw.name)
        first = next(v for v in t.values() if v is not None)
        self.values["dtype"][draw.dtype] += 1
        self.values["tier"][stress_of(case)] += 1
        self.values["batch N"][first.shape[0]] += 1
        kernel = t.get("weight", t.get("template"))
        if kernel is not None:
            self.values["kernel kh x kw"]["x".join(map(str, kernel.shape[-2:]))] += 1
        self.values["output h x w"][_size_bucket(outcome)] += 1
        if case.op == "deform_conv2d":
            self.values["weight groups"][t["input"].shape[1] // t["weight"].shape[1]] += 1
            taps = t["weight"].shape[2] * t["weight"].shape[3]
            self.values["offset groups"][t["offset"].shape[1] // (2 * taps)] += 1
        if case.op == "conv2_5d":
            self.values["depth bins B"][t["weight"].shape[0]] += 1
        for name in ("bias", "mask"):
            if name in t:
                self.values[name]["given" if t[name] is not None else "None"] += 1
        for name, value in t.items():
            if value is not None and not np.isfinite(value).all():
                self.values["non-finite values in"][name] += 1
        for name, value in case.params.items():
            self.values[name][value] += 1
        for call in outcome.calls:
            if call.layout != "contiguous":
                self.values["memory layouts"][call.layout] += 1

    def lines(self) -> list[str]:
        out = []
        for key, counts in self.values.items():
            items = sorted(counts.items(), key=lambda kv: _sort_key(kv[0]))
            text = ", ".join(f"{_label(v)} x{n}" for v, n in items[:12])
            more = f", ... ({len(items)} distinct)" if len(items) > 12 else ""
            out.append(f"  {key:<22} {text}{more}")
        return out

    def as_dict(self) -> dict:
        return {key: {_label(v): n for v, n in counts.items()} for key, counts in self.values.items()}


def _size_bucket(outcome: Outcome) -> str:
    shape = outcome.results[0].outputs[0].shape if outcome.results and outcome.results[0].outputs \
        else None
    if shape is None or len(shape) < 2:
        return "?"
    side = max(shape[-2:])
    return "<= 32" if side <= 32 else "33-64" if side <= 64 else "65-128" if side <= 128 else "> 128"


def _sort_key(value):
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else (1, 0, repr(value))


def _label(value) -> str:
    return value if isinstance(value, str) else repr(value)


def _call_kind(label: str) -> str:
    """A call's cost bucket: forward, gradients, again (determinism), a layout, batch variant."""
    if label.endswith(", again"):
        return "determinism (second call)"
    if "[" in label:
        return "layout " + label.split("[", 1)[1].rstrip("]")
    return label


@dataclass
class Report:
    """A verify run, as the API returns it and ``--json`` writes it."""

    target: str
    op: str
    framework: str
    grad: bool
    limits: dict
    automatic_limits: dict = field(default_factory=dict)
    untested: list[str] = field(default_factory=list)
    dtypes: tuple[str, ...] = ()
    unsupported: dict[str, str] = field(default_factory=dict)
    skipped_boundary: list[str] = field(default_factory=list)
    isolation: str = ""
    passed: bool = True
    counterexample: str = ""
    failure: str = ""
    interrupted: bool = False
    seconds: float = 0.0
    features: Features = field(default_factory=Features)
    checks_passed: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)  # the first of each kind
    warning_counts: Counter = field(default_factory=Counter)
    batch_invariance: Counter = field(default_factory=Counter)
    call_seconds: Counter = field(default_factory=Counter)
    tier_seconds: Counter = field(default_factory=Counter)
    reference_seconds: float = 0.0
    worker_restarts: int = 0
    cases: list[dict] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def record(self, outcome: Outcome, plan: Plan, shrinking: bool = False) -> None:
        self.cases.append(_case_record(outcome, shrinking))
        if shrinking:
            return
        self.features.add(outcome)
        self.tier_seconds[stress_of(outcome.draw.case)] += outcome.seconds
        for call, result in zip(outcome.calls, outcome.results):
            self.call_seconds[_call_kind(call.label)] += result.seconds
        for check in outcome.checks:
            if check.passed:
                self.checks_passed[check.check if "[" not in check.call
                                   else f"{check.check} [{check.call.split('[', 1)[1]}"] += 1
        invariant = outcome.batch_invariant
        if invariant is not None:
            self.batch_invariance["held" if invariant else "violated"] += 1
        for warning in outcome.warnings:
            self.warning_counts[warning.check] += 1
            if self.warning_counts[warning.check] == 1:
                self.warnings.append(f"{warning.describe()} on {outcome.draw.describe()}")

    def as_dict(self) -> dict:
        return {
            "target": self.target, "op": self.op, "framework": self.framework, "grad": self.grad,
            "passed": self.passed, "interrupted": self.interrupted, "failure": self.failure,
            "counterexample": self.counterexample, "seconds": round(self.seconds, 3),
            "limits": _jsonable(self.limits), "automatic_limits": _jsonable(self.automatic_limits),
            "untested_arguments": self.untested, "dtypes": list(self.dtypes),
            "unsupported_dtypes": self.unsupported, "skipped_boundary_cases": self.skipped_boundary,
            "isolation": self.isolation, "worker_restarts": self.worker_restarts,
            "configurations": dict(self.features.kinds), "features": self.features.as_dict(),
            "checks_passed": dict(self.checks_passed), "warnings": self.warnings,
            "warning_counts": dict(self.warning_counts),
            "batch_invariance": dict(self.batch_invariance),
            "seconds_by_call": {k: round(v, 3) for k, v in self.call_seconds.items()},
            "seconds_by_tier": {k: round(v, 3) for k, v in self.tier_seconds.items()},
            "cases": self.cases,
        }

    def write_json(self, path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=1, default=_jsonable) + "\n")


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (np.integer, np.floating)):
        return _jsonable(value.item())
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _case_record(outcome: Outcome, shrinking: bool) -> dict:
    draw = outcome.draw
    return {
        "kind": draw.kind, "name": draw.name, "shrinking": shrinking,
        "case": draw.describe(), "dtype": draw.dtype, "tier": stress_of(draw.case),
        "seconds": round(outcome.seconds, 4),
        "passed": outcome.failure is None,
        "checks": [
            {"check": c.check, "call": c.call, "severity": c.severity, "passed": c.passed,
             "ratio": _jsonable(c.comparison.ratio),
             "problem": c.comparison.problem,
             "worst_index": _jsonable(c.comparison.worst.index),
             "actual": _jsonable(c.comparison.worst.actual),
             "expected": _jsonable(c.comparison.worst.expected)}
            for c in outcome.checks
        ],
        "calls": [{"call": call.label, "layout": call.layout,
                   "seconds": round(result.seconds, 4), "error": result.error}
                  for call, result in zip(outcome.calls, outcome.results)],
    }
