"""A seeded fuzz of every op of every backend: hostile arguments, huge integers, wrong
kinds, empty sizes, non-finite data, forward and gradient paths, each column in a child
process so that a crash or a hang is a finding, not the end of the test run.

Asserted per call (:func:`fuzz_runner.judge`): no crash, no hang, no invalid call
accepted, every error a ``ValueError``/``TypeError`` (``MemoryError`` for a call too
large for memory) naming the argument, and valid calls (empty batches, NaN and inf
data, huge windows, ...) give the reference's result.

Bounded by default (``make test``): a seeded sample of each column's calls (:data:`PLAN`).
``CROSSCONV_PROFILE=thorough`` runs every call; ``CROSSCONV_FUZZ_SEED`` draws another
sample; ``CROSSCONV_FUZZ_TIMEOUT`` is the seconds a call may take before it counts as a
hang; ``CROSSCONV_FUZZ_REPORT=<file>`` appends each column's counts there as JSON lines.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os

import pytest
from fuzz_calls import OPS, all_calls, computes, sample
from fuzz_runner import judge, known, run_column

THOROUGH = os.environ.get("CROSSCONV_PROFILE") == "thorough"
SEED = int(os.environ.get("CROSSCONV_FUZZ_SEED", "0"))
TIMEOUT = float(os.environ.get("CROSSCONV_FUZZ_TIMEOUT", "60"))

KERNEL_OPS = ("tanprod_conv2d", "conv2_5d", "deform_conv2d", "max_pool2d", "avg_pool2d")
#: column -> (ops, hostile impl values, hostile grad_output values, module it needs)
COLUMNS = {
    "reference": (tuple(OPS), False, True, "numpy"),
    "torch-native": (tuple(OPS), True, False, "torch"),
    "torch-triton": (KERNEL_OPS, False, False, "triton"),
    "jax-native": (tuple(OPS), True, False, "jax"),
    "jax-pallas": (KERNEL_OPS, False, False, "jax"),
    "lua-luajit": (("conv2d", "tanprod_conv2d"), False, True, "lupa"),
    "lua-5.4": (("conv2d", "tanprod_conv2d"), False, True, "lupa"),
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
}

_TENSORS = ("input", "weight", "offset", "depth", "search", "template")
#: Problems this fuzz finds in code that other parts of the project own, expected to be
#: fixed there (remove an entry once its fix is in). Keys: see ``fuzz_runner.known``.
#: Matching problems are printed, not failed; ``skip`` entries (hangs) are not run
#: outside the thorough run.
KNOWN_ELSEWHERE: list[dict] = [
    {"column": "torch-*", "mutated": _TENSORS, "label": "None", "problem": "unclear",
     "why": "torch_impl/common.py check_tensors lets a required tensor be None: "
            "AttributeError (pools: StopIteration) instead of a TypeError naming it"},
    {"column": "torch-native", "mutated": ("ceil_mode", "count_include_pad"),
     "label": "np.bool_(*)", "problem": "refused",
     "why": "torch_impl/pool.py hands the unchecked flag to F.max_pool2d / F.avg_pool2d, "
            "which refuse numpy.bool_; the shared check accepts it (pass its result on)"},
    {"column": "torch-native", "op": "conv2d", "label": "weight * on zero padding*float32",
     "vjp": False, "problem": "differs",
     "why": "torch_impl/conv2d.py inherits F.conv2d: a NaN/inf weight on zero padding gives "
            "a number for batches >= 2 in float32 (pad explicitly when the weight is not "
            "all finite)"},
    {"column": "torch-native", "op": "conv2d", "label": "NaN/inf in weight, float32",
     "vjp": False, "problem": "differs", "why": "the same F.conv2d padding case"},
    {"column": "torch-native", "op": "deform_conv2d", "label": "*", "vjp": False,
     "problem": "output 0: differs",
     "why": "torch_impl/native/deform.py folds the mask into the bilinear corner weights: an "
            "infinite mask meets a zero corner weight (inf * 0 = NaN) where docs/deform.md "
            "multiplies the mask by the sample"},
    {"column": "torch-native", "op": "deform_conv2d", "vjp": True, "problem": "d/doffset",
     "why": "torch_impl/native/deform.py backward: with an infinite weight the offset "
            "gradient multiplies each corner by the infinite column gradient before summing "
            "the corners (NaN where the reference's sum over corners first gives inf)"},
    {"column": "jax-native", "op": "deform_conv2d", "vjp": True, "problem": "d/doffset",
     "why": "jax_impl/deform.py backward (numerics, not argument handling): the same corner "
            "order as torch_impl's native backward"},
    {"column": "torch-triton", "op": "conv2_5d", "vjp": True, "problem": "d/dinput",
     "why": "torch_impl/kernels/conv2_5d.py backward: a NaN/inf weight's input gradient "
            "(the NaN/inf pattern differs from the reference's)"},
    {"column": "torch-triton", "op": "*", "label": "kernel (2**16, 1)*", "skip": True,
     "why": "torch_impl/kernels/pool.py loops over every tap of a window (65536 per "
            "output in Triton's interpreter); reference.common.Geometry.input_taps gives "
            "the few that read the input"},
    {"column": "lua-*", "mutated": _TENSORS + ("bias",),
     "label": ("nested list", "ragged list", "other framework's tensor", "None"),
     "why": "lua_port/_ops.py check_call converts tensors with np.asarray before the "
            "checks: lists and other frameworks' tensors are accepted, None is an "
            "AttributeError, a ragged list NumPy's ValueError (and a float32 input is "
            "copied to float64 before the arguments are checked)"},
]


def _available(column) -> str | None:
    module = COLUMNS[column][3]
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    if column.startswith("lua-"):
        from lua_port.runtimes import available_runtimes

        if column.removeprefix("lua-") not in available_runtimes():
            return f"this lupa has no {column.removeprefix('lua-')} runtime"
    return None


def plan(column):
    ops, impl_switch, grad_output, _ = COLUMNS[column]
    calls = all_calls(ops, impl_switch=impl_switch, grad_output=grad_output)
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
