"""The fuzz's parent side: runs calls in a child process per column (restarted after a
crash or a hang) and judges each outcome against the reference and the call's ``expect``.

Judging a call (see :mod:`fuzz_calls` for ``expect``):

- a crash (the child died) or a hang (no answer within the timeout) is always a problem;
- an error must be a ``ValueError``, ``TypeError`` or ``MemoryError`` whose message names
  one of the call's changed arguments;
- ``"error"``: the reference and the backend both raise; ``"ok"``: both return, and the
  backend's result equals the reference's (NaN where it has NaN, the same infinities,
  finite values to 1e-8, 1e-4 for float32 results); ``"same"``: the backend does what the reference does;
- a backend may refuse a valid call only for a feature it lacks (``LIMITS``), with an
  error naming the argument.
"""

from __future__ import annotations

import fnmatch
import os
import pickle
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossconv.compare import Tolerance, ratios

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
CLEAR_ERRORS = ("ValueError", "TypeError", "MemoryError")
TOLERANCE = Tolerance(rtol=1e-8, atol=1e-8)
FLOAT32_TOLERANCE = Tolerance(rtol=1e-4, atol=1e-4)  # float32 inputs, short sums
#: Features a column lacks: it may refuse these arguments in calls the reference accepts.
LIMITS = {"lua-*": ("dilation", "groups", "padding")}


@dataclass
class Result:
    call: object
    reference: tuple | None
    backend: tuple | None  # None for the reference column
    crash: str | None = None  # "crash: ...", "hang: ...", "fuzz: ..." (its own bug)
    seconds: float = 0.0


class Child:
    """A worker process for one column; :meth:`run` restarts it after a crash or hang."""

    def __init__(self, column: str, timeout: float):
        self.column, self.timeout = column, timeout
        self.process = None
        self.starts = 0

    def _start(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
        if self.column == "torch-triton":
            env["TRITON_INTERPRET"] = "1"
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "fuzz_worker.py"), self.column], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.starts += 1
        ready = self._receive(300)
        if ready != "ready":
            raise RuntimeError(f"fuzz worker {self.column} did not start: {ready!r}\n"
                               f"{self._stderr_tail()}")

    def _receive(self, timeout):
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not readable:
            return ("hang", None)
        try:
            return pickle.load(self.process.stdout)
        except (EOFError, pickle.UnpicklingError):
            self.process.wait()
            return ("crash", self.process.returncode)

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-1500:].decode(errors="replace")

    def _stop(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def run(self, call) -> Result:
        if self.process is None:
            self._start()
        start = time.monotonic()
        try:
            pickle.dump(call, self.process.stdin)
            self.process.stdin.flush()
            answer = self._receive(self.timeout)
        except BrokenPipeError:
            self.process.wait()
            answer = ("crash", self.process.returncode)
        seconds = time.monotonic() - start
        if isinstance(answer, tuple):  # the child died or hung
            kind, code = answer
            detail = (f"hang: no answer in {self.timeout:.0f} s" if kind == "hang" else
                      f"crash: the process ended with {code} "
                      f"({_signal_name(code)})\n{self._stderr_tail()}")
            self._stop()
            return Result(call, None, None, detail, seconds)
        fuzz = answer.get("fuzz")
        return Result(call, answer["reference"], answer.get("backend"),
                      f"fuzz: {fuzz}" if fuzz else None, seconds)

    def close(self):
        if self.process is not None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self._stop()
            self.process = None


def _signal_name(code) -> str:
    import signal

    if isinstance(code, int) and code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            pass
    return "exit status"


# ----------------------------------------------------------------------------- judging


def _clear(outcome, call) -> str | None:
    """Why an error outcome is not a clear error naming a changed argument (None: it is)."""
    _, mro, message = outcome
    if not any(name in mro for name in CLEAR_ERRORS):
        return f"unclear error {mro[0]}: {message}"
    if call.mutated and not any(name in message for name in call.mutated):
        return f"{mro[0]} does not name {' or '.join(call.mutated)}: {message}"
    return None


def _same_numbers(actual, expected, what) -> str | None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return f"{what}: shape {actual.shape} != the reference's {expected.shape}"
    if actual.size == 0:
        return None
    tolerance = TOLERANCE if actual.dtype.itemsize >= 8 else FLOAT32_TOLERANCE
    worst = ratios(actual, expected, tolerance).max()
    if worst > 1:
        return f"{what}: differs from the reference (worst error/allowance {worst:.3g})"
    return None


def _compare(got, ref) -> str | None:
    if isinstance(ref, dict):
        missing = set(ref) - set(got)
        if missing:
            return f"no gradient for {sorted(missing)}"
        problems = [_same_numbers(got[k], ref[k], f"d/d{k}") for k in ref]
    else:
        if len(got) != len(ref):
            return f"{len(got)} outputs, the reference has {len(ref)}"
        problems = [_same_numbers(g, r, f"output {i}") for i, (g, r) in enumerate(zip(got, ref))]
    return next((p for p in problems if p), None)


def _limited(column, call) -> bool:
    return any(fnmatch.fnmatch(column, pattern) and set(call.mutated) & set(names)
               for pattern, names in LIMITS.items())


def _judge_reference(call, ref) -> str | None:
    if ref[0] == "ok":
        return "the reference accepted an invalid call" if call.expect == "error" else None
    if call.expect == "ok":
        return f"the reference refused a valid call: {ref[2]}"
    return _clear(ref, call)


def judge(column: str, result: Result) -> str | None:
    """The problem with one call's outcome in ``column``, or None. The reference's own
    verdicts are judged in the reference column; the others are held to them."""
    call, ref, got = result.call, result.reference, result.backend
    if result.crash:
        return result.crash
    if column == "reference":
        return _judge_reference(call, ref)
    if got[0] == "error":
        problem = _clear(got, call)
        if problem:
            return problem
        if call.expect in ("error", "any") or ref[0] == "error" or _limited(column, call):
            return None
        return f"refused a call the reference accepts: {got[2]}"
    if call.expect == "error":
        return "accepted an invalid call"
    if ref[0] == "error":
        return None if call.expect == "any" else "accepted a call the reference refuses"
    return None if call.expect == "any" else _compare(got[1], ref[1])


# ----------------------------------------------------------------------------- known


def known(entries, column: str, call, problem: str = "") -> str | None:
    """The reason a problem is expected (an entry of ``entries`` matching the column, the
    call and the problem), or None. Entry keys: ``column`` (a glob), ``op`` (default
    any), ``mutated`` (argument names; one must have changed), ``label`` (globs of the
    value's label), ``vjp`` (the path), ``problem`` (a fragment of the problem)."""
    for entry in entries:
        mutated = entry.get("mutated")
        labels = entry.get("label", "*")
        labels = (labels,) if isinstance(labels, str) else labels
        if (fnmatch.fnmatch(column, entry["column"]) and entry.get("op", "*") in ("*", call.op)
                and (mutated is None or set(call.mutated) & set(mutated))
                and any(fnmatch.fnmatch(call.label, label) for label in labels)
                and entry.get("vjp", call.vjp) == call.vjp
                and (entry.get("problem") is None or entry["problem"] in problem)):
            return entry["why"]
    return None


def run_column(column: str, calls, timeout: float, skip=lambda call: False):
    """Every call's :class:`Result` (calls ``skip`` says not to run are left out)."""
    child = Child(column, timeout)
    results = []
    log = os.environ.get("CROSSCONV_FUZZ_LOG")
    try:
        for call in calls:
            if not skip(call):
                results.append(child.run(call))
                if log:
                    with open(log, "a") as stream:
                        r = results[-1]
                        what = r.crash or (r.backend or r.reference)[0]
                        stream.write(f"{column} {r.seconds:6.1f}s {call}: {what.splitlines()[0]}\n")
    finally:
        child.close()
    return results, child.starts
