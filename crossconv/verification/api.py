"""The API behind ``crossconv.verify`` (see :mod:`crossconv.verification`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..registry import OPS
from ..storage import hypothesis_storage
from . import options as _options
from .frameworks import FRAMEWORKS
from .isolation import InProcess, StartupError, Worker
from .options import UsageError
from .plan import Options
from .progress import Progress
from .report import Report
from .session import Session, Settings, interrupted_outcome
from .snippets import Snippet
from .worker import Setup

ALLOW = ("nondeterministic",)
REQUIRE = ("batch-invariance",)


class Counterexample(AssertionError):
    """verify found a case where the function differs from the reference (or crashed,
    hung, was non-deterministic, ...). ``snippet`` is that case as a runnable regression
    test; ``report`` the whole run."""

    def __init__(self, message: str, snippet: str, report: Report):
        super().__init__(message)
        self.snippet = snippet
        self.report = report


def _target_name(fn) -> str:
    """``module:qualname`` of a callable the snippet can import, else ''."""
    if isinstance(fn, str):
        return fn
    module, name = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in name or not name:
        return ""
    return f"{module}:{name}"


def verify(fn, op: str, framework: str = "numpy", grad: bool = False, limits: dict | None = None,
           examples: int = 100, timeout: float = 60.0, seed: int = 0, device: str = "cpu",
           vjp=None, allow=(), require=(), isolate: bool = True,
           save_counterexample: str | os.PathLike | None = None,
           json: str | os.PathLike | None = None, progress: bool | None = None,
           shrink_seconds: float = 60.0) -> Report:
    """Run op's property suite against ``fn``; return the report, or raise
    :class:`Counterexample`.

    Args:
        fn: the implementation (a callable, or a ``"module:function"`` name), called with
            the contract's argument names (docs/), tensors by keyword.
        op: the op it implements (``crossconv.registry.OPS``).
        framework: "numpy" (NumPy arrays in and out), "onnx" (NumPy arrays in and out of
            a function that builds and runs an ONNX graph; forward only), "torch" or "jax".
        grad: check gradients too (torch/jax autodiff; numpy: give ``vjp``).
        limits: narrow the draw (``crossconv.strategy_options.OPTIONS``; ``dtypes`` takes
            float16/bfloat16 too). Arguments ``fn`` lacks are limited automatically.
        examples: drawn cases, after the smallest, boundary and golden ones.
        timeout: seconds one call may take before the case fails as a hang.
        vjp: a NumPy VJP for ``framework="numpy"`` (implies ``grad``).
        allow: ("nondeterministic",) reports non-determinism as a warning.
        require: ("batch-invariance",) fails a batch-dependent result.
        isolate: run ``fn`` in a worker process (crash- and hang-proof; default).
        save_counterexample / json: write the counterexample file / the whole run.
        progress: a progress line on stderr (default: when stderr is a terminal).
        shrink_seconds: how long Hypothesis may shrink a failure.
    """
    report, error = run(fn, op, framework, grad, limits or {}, examples, timeout, seed, device,
                        vjp, allow, require, isolate, progress, shrink_seconds)
    if json:
        report.write_json(json)
    if error is not None:
        if save_counterexample:
            Path(save_counterexample).write_text(error.snippet)
        raise error
    return report


def run(fn, op, framework, grad, limits, examples, timeout, seed, device, vjp, allow, require,
        isolate, progress, shrink_seconds, command: str = "") -> tuple[Report, Counterexample | None]:
    """The run behind :func:`verify` and the CLI: the report, and the counterexample if any."""
    if op not in OPS:
        raise UsageError(f"--op {op}: unknown op; ops: {', '.join(OPS)}")
    if framework not in FRAMEWORKS:
        raise UsageError(f"--framework {framework}: one of {', '.join(FRAMEWORKS)}")
    fw = FRAMEWORKS[framework]
    if fw.requires:
        import importlib.util

        if importlib.util.find_spec(fw.requires) is None:
            raise UsageError(f"--framework {framework}: {fw.requires} is not installed")
    if examples < 0:
        raise UsageError("--examples must be >= 0")
    if timeout <= 0:
        raise UsageError("--timeout must be > 0")
    unknown = sorted(set(allow) - set(ALLOW)) + sorted(set(require) - set(REQUIRE))
    if unknown:
        raise UsageError(f"unknown --allow/--require {', '.join(unknown)}: --allow takes "
                         f"{', '.join(ALLOW)}, --require {', '.join(REQUIRE)}")
    grad = grad or vjp is not None
    if vjp is not None and fw.gradients != "vjp":
        raise UsageError(f"--vjp gives the gradients of a NumPy implementation; {framework} "
                         f"uses its own autodiff (--grad)")
    if grad and fw.gradients == "vjp" and vjp is None:
        raise UsageError("--grad on a NumPy implementation needs its VJP: --vjp MODULE:FUNCTION")
    if grad and not fw.gradients:
        raise UsageError(f"--grad: {framework} functions are checked forward only")
    limits = _options.check_limits(op, limits, fw.half)
    target = _target_name(fn)
    vjp_target = _target_name(vjp) if vjp is not None else ""
    setup = Setup(op, framework, device, target=fn if isinstance(fn, str) else "",
                  vjp_target=vjp if isinstance(vjp, str) else "", sys_path=tuple(sys.path),
                  cwd=os.getcwd())
    callable_fn = None if isinstance(fn, str) else fn
    callable_vjp = None if vjp is None or isinstance(vjp, str) else vjp
    worker_class = Worker if isolate else InProcess
    report = Report(target or repr(fn), op, framework, grad, limits)
    command = command or (f"crossconv verify {target or 'FUNCTION'} --op {op} --framework "
                          f"{framework}{' --grad' if grad else ''}")
    try:
        worker = worker_class(setup, timeout, callable_fn, callable_vjp)
    except StartupError as error:
        raise UsageError(str(error)) from None
    report.isolation = worker.how
    settings = Settings(op, framework, grad, examples, seed, limits,
                        allow_nondeterministic="nondeterministic" in allow,
                        require_batch_invariance="batch-invariance" in require,
                        shrink_seconds=shrink_seconds)
    show = Progress(examples, enabled=progress)
    session = Session(settings, worker, report, show.update)
    signature = None
    try:
        try:
            signature = worker.signature()
        except StartupError as error:
            raise UsageError(str(error)) from None
        with hypothesis_storage():
            result = session.run()
    except KeyboardInterrupt:
        show.clear()
        _print_interrupted(session, worker, framework, target, vjp_target, device, command,
                           timeout, signature)
        raise
    finally:
        show.clear()
        report.worker_restarts = worker.restarts
        worker.close()
        report.seconds = _elapsed(report)
    if result.outcome is None:
        return report, None
    snippet = Snippet(result.outcome, result.plan, framework, target, vjp_target, device, command,
                      timeout, signature).text()
    failure = result.outcome.failure
    report.passed = False
    report.failure = failure.describe()
    report.counterexample = snippet
    message = (f"{target or 'the function'} does not match reference.{op}: {failure.describe()}\n"
               f"on {result.outcome.draw.describe()}\n\n{snippet}")
    return report, Counterexample(message, snippet, report)


def _elapsed(report: Report) -> float:
    import time

    return time.perf_counter() - report.started


def _print_interrupted(session, worker, framework, target, vjp_target, device, command, timeout,
                       signature) -> None:
    draw = session.in_flight
    session.report.interrupted = True
    if draw is None:
        print("# interrupted (Ctrl-C) between cases", flush=True)
        return
    outcome, plan = interrupted_outcome(draw, Options(grad=session.options.grad,
                                                      layouts=session.options.layouts),
                                        worker.in_flight)
    print(f"# interrupted (Ctrl-C) while running {draw.describe()} ({worker.in_flight or 'forward'})",
          flush=True)
    print("# the case in flight, as a runnable snippet:", flush=True)
    print(Snippet(outcome, plan, framework, target, vjp_target, device, command, timeout,
                  signature).text(), flush=True)


__all__ = ["Counterexample", "Report", "UsageError", "verify"]
