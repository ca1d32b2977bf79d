"""A seeded fuzz of every op of every backend: hostile arguments, huge integers, wrong
kinds, empty sizes, non-finite data, forward and gradient paths (onnx_impl: forward only),
each column in a child process so that a crash or a hang is a finding, not the end of the
test run.

Asserted per call (:func:`fuzz_runner.judge`): no crash, no hang, no invalid call
accepted, every error a ``ValueError``/``TypeError`` (``MemoryError`` for a call too
large for memory) naming the argument, and valid calls (empty batches, NaN and inf
data, huge windows, ...) give the reference's result.

Bounded by default (``make test``): a seeded sample of each column's calls (:data:`PLAN`).
``CROSSCONV_PROFILE=thorough`` runs every call; ``CROSSCONV_FUZZ_SEED`` draws another
sample; ``CROSSCONV_FUZZ_TIMEOUT`` is the seconds a call may take before it counts as a
hang; ``CROSSCONV_FUZZ_REPORT=<file>`` appends each column's counts there as JSON lines;
``CROSSCONV_FUZZ_LOG=<file>`` appends one line per call (its time and outcome).
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
from dataclasses import dataclass

import pytest
from fuzz_calls import OPS, all_calls, computes, sample
from fuzz_runner import judge, known, run_column

THOROUGH = os.environ.get("CROSSCONV_PROFILE") == "thorough"
SEED = int(os.environ.get("CROSSCONV_FUZZ_SEED", "0"))
TIMEOUT = float(os.environ.get("CROSSCONV_FUZZ_TIMEOUT", "60"))

KERNEL_OPS = ("tanprod_conv2d", "conv2_5d", "deform_conv2d", "max_pool2d", "avg_pool2d",
              "depthaware_conv2d", "depthaware_avg_pool2d")
LUA_OPS = ("conv2d", "tanprod_conv2d")


@dataclass(frozen=True)
class Column:
    """One backend (and implementation) the fuzz runs: ``fuzz_worker.COLUMNS`` builds it."""

    ops: tuple
    module: str  # what it needs installed
    switch: str | None = None  # the argument choosing the implementation: hostile values
    grad_output: bool = False  # hostile grad_output values (a VJP that takes one)
    vjp: bool = True  # a gradient path


COLUMNS = {
    "reference": Column(tuple(OPS), "numpy", grad_output=True),
    "torch-native": Column(tuple(OPS), "torch", switch="impl"),
    "torch-triton": Column(KERNEL_OPS, "triton"),
    "jax-native": Column(tuple(OPS), "jax", switch="impl"),
    "jax-pallas": Column(KERNEL_OPS, "jax"),
    "lua-luajit": Column(LUA_OPS, "lupa", grad_output=True),
    "lua-5.4": Column(LUA_OPS, "lupa", grad_output=True),
    "onnx": Column(tuple(OPS), "onnxruntime", switch="runtime", vjp=False),
}
#: The bounded run: per column, how many calls that compute and how many that must fail
#: (None: all). Computing calls cost a compile in JAX and an interpreted kernel in
#: Triton/Pallas; failing ones stop in the checks.
PLAN = {
    "reference": (None, None),
    "torch-native": (None, None),
    "torch-triton": (40, 300),
    "jax-native": (80, 600),
    "jax-pallas": (20, 300),
    "lua-luajit": (None, None),
    "lua-5.4": (None, None),
    "onnx": (None, None),
}

#: Problems this fuzz finds in code that other parts of the project own, expected to be
#: fixed there (remove an entry once its fix is in). Keys: see ``fuzz_runner.known``.
#: Matching problems are printed, not failed; ``skip`` entries (hangs) are not run
#: outside the thorough run. Empty: every column holds to the reference.
KNOWN_ELSEWHERE: list[dict] = []


def _available(column) -> str | None:
    module = COLUMNS[column].module
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    if column.startswith("lua-"):
        from lua_port.runtimes import available_runtimes

        if column.removeprefix("lua-") not in available_runtimes():
            return f"this lupa has no {column.removeprefix('lua-')} runtime"
    return None


def plan(column):
    c = COLUMNS[column]
    calls = all_calls(c.ops, switch=c.switch, grad_output=c.grad_output, vjp=c.vjp)
    if THOROUGH:
        return calls
    computing, failing = PLAN[column]
    return sample(calls, computing, failing, SEED)


#: What a problem is, by a fragment of its description (first match wins).
KINDS = (("crash", "crash"), ("hang", "hang"), ("fuzz:", "fuzz"), ("accepted", "accepted invalid"),
         ("unclear error", "unclear error"), ("does not name", "error not naming the argument"),
         ("refused", "refused valid"))


def _kind(problem: str) -> str:
    return next((kind for fragment, kind in KINDS if fragment in problem), "wrong result")


@pytest.mark.parametrize("column", list(COLUMNS))
def test_fuzz_finds_no_crash_hang_accepted_invalid_call_or_unclear_error(column):
    reason = _available(column)
    if reason:
        pytest.skip(reason)
    calls = plan(column)

    def skip(call):
        entry = [e for e in KNOWN_ELSEWHERE if e.get("skip") and known([e], column, call)]
        return bool(entry) and not THOROUGH

    results, starts = run_column(column, calls, TIMEOUT, skip)
    problems, expected = [], []
    for result in results:
        problem = judge(column, result)
        if problem:
            why = known(KNOWN_ELSEWHERE, column, result.call, problem)
            (expected if why else problems).append((result.call, problem, why))
    counts = {
        "column": column, "calls": len(results), "skipped": len(calls) - len(results),
        "computing": sum(computes(r.call) for r in results), "processes": starts,
        "seconds": round(sum(r.seconds for r in results), 1),
        "problems": dict(collections.Counter(_kind(p) for _, p, _ in problems)),
        "known elsewhere": dict(collections.Counter(_kind(p) for _, p, _ in expected)),
    }
    print(json.dumps(counts))
    for call, problem, why in expected:
        print(f"known ({why}): {call}: {problem.splitlines()[0]}")
    if os.environ.get("CROSSCONV_FUZZ_REPORT"):
        with open(os.environ["CROSSCONV_FUZZ_REPORT"], "a") as report:
            report.write(json.dumps({**counts, "details": [
                {"call": str(c), "problem": p, "known": w} for c, p, w in problems + expected]})
                + "\n")
    listed = "\n".join(f"- {call}: {problem[:300]}" for call, problem, _ in problems[:60])
    assert not problems, f"{len(problems)} problems in {column}:\n{listed}"
