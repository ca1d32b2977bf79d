"""The parent's side of the worker process (:mod:`crossconv.verification.worker`).

The function under test runs in one long-lived worker, so a segfault, an abort, an
out-of-memory kill or a call that never returns ends that worker, not verify: the case
fails with what happened (the signal, or the timeout) and the next one runs in a fresh
worker, started at once so that it boots while the parent computes the next reference.

How the worker gets the function:

- a ``MODULE:FUNCTION`` name (the CLI; the API given a string): the worker imports it;
- a callable that :mod:`pickle` sends by name (a module-level function, a method of a
  module-level class, a ``functools.partial`` of those): pickled, and the worker imports
  its module (with the caller's ``sys.path``, so test modules import too);
- any other callable (a lambda, a closure, a function defined inside a test): the worker
  is a fork of the calling process (POSIX only). A forked worker runs torch with one
  thread (its thread pool does not survive a fork) and JAX warns that forking a
  multithreaded process may deadlock: pass a named function for those.

Its stdout and stderr go to a temporary file; the last lines are shown when it dies.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from .worker import Loaded, Setup, prepare_process, serve

#: Seconds a worker may take to import the function and its framework.
STARTUP_SECONDS = 180.0
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class StartupError(Exception):
    """The worker could not load the function (an import error, a missing attribute)."""


@dataclass
class Abnormal:
    """A call that ended its worker: ``kind`` "crash" or "timeout"."""

    kind: str
    index: int
    message: str
    output: str = ""


def pickled_by_name(fn) -> bytes:
    """``fn`` pickled, if pickle sends it by reference (name) and it loads back as itself;
    else b''."""
    try:
        data = pickle.dumps(fn)
        return data if pickle.loads(data) is not None else b""
    except Exception:  # noqa: BLE001 - lambdas, closures, local functions: not by name
        return b""


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if -returncode == signal.SIGKILL:
            return f"was killed by {name} (as the out-of-memory killer does)"
        return f"crashed with {name}"
    return f"exited with status {returncode}"


class _Process:
    """A worker process, spawned (``python -m ...worker``) or forked."""

    def __init__(self, fork_with=None):
        self.log = tempfile.NamedTemporaryFile(prefix="crossconv-verify-", suffix=".log",
                                               delete=False)
        ours, theirs = socket.socketpair()
        if fork_with is not None:
            fn, vjp = fork_with
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the worker
                try:
                    ours.close()
                    os.dup2(self.log.fileno(), 1)
                    os.dup2(self.log.fileno(), 2)
                    prepare_process()
                    _single_threaded()
                    serve(Connection(theirs.detach()), fn=fn, vjp=vjp)
                finally:
                    os._exit(0)
            self.pid, self.popen = pid, None
        else:
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
            env.setdefault("PYTHONFAULTHANDLER", "1")
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "crossconv.verification.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=self.log,
                stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
            self.pid = self.popen.pid
        theirs.close()
        self.connection = Connection(ours.detach())
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            if self.popen is not None:
                self.returncode = self.popen.poll()
            else:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, seconds: float) -> int | None:
        deadline = time.monotonic() + seconds
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait(10)

    def output_tail(self, lines: int = 12) -> str:
        try:
            text = Path(self.log.name).read_text(errors="replace")
        except OSError:
            return ""
        kept = [line for line in text.rstrip().splitlines() if not line.startswith("Extension modules:")]
        return "\n".join(kept[-lines:])

    def close(self) -> None:
        try:
            self.connection.send(("exit", None))
        except OSError:
            pass
        if self.wait(5) is None:
            self.kill()
        self.connection.close()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def _single_threaded() -> None:
    """A forked torch cannot use its parent's thread pool."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


class Worker:
    """Runs jobs (lists of :class:`~crossconv.verification.runners.Call`) in a worker
    process, one at a time, with a timeout per call; restarts it after a crash or timeout."""

    def __init__(self, setup: Setup, timeout: float, fn=None, vjp=None):
        self.setup = setup
        self.timeout = timeout
        self.fork_with = None
        if fn is not None:
            pickled = pickled_by_name(fn)
            vjp_pickled = pickled_by_name(vjp) if vjp is not None else b""
            if pickled and (vjp is None or vjp_pickled):
                self.setup = Setup(**{**setup.__dict__, "pickled": pickled,
                                      "vjp_pickled": vjp_pickled})
            elif hasattr(os, "fork"):
                self.fork_with = (fn, vjp)
            else:
                raise StartupError("this callable cannot be sent to a worker by name (a lambda "
                                   "or a local function) and this system cannot fork: pass a "
                                   "module-level function, or isolate=False")
        self.how = "forked" if self.fork_with else "spawned"
        self.process: _Process | None = None
        self.accepted: list[str] | None = None
        self.restarts = 0
        self.in_flight: str = ""

    def start(self) -> None:
        """Start a worker and ask it to load the function (it answers when loaded)."""
        self.process = _Process(self.fork_with)
        self.process.connection.send(("load", self.setup))
        self._loaded = False

    def _ensure_loaded(self) -> None:
        if self.process is None:
            self.start()
        if self._loaded:
            return
        process = self.process
        if not process.connection.poll(max(STARTUP_SECONDS, self.timeout)):
            process.kill()
            raise StartupError(f"the worker did not load the function within "
                               f"{max(STARTUP_SECONDS, self.timeout):.0f} s")
        try:
            kind, payload = process.connection.recv()
        except (EOFError, OSError):
            process.wait(10)
            raise StartupError(f"the worker {describe_exit(process.returncode)} while loading "
                               f"the function:\n{process.output_tail()}") from None
        if kind == "failed":
            process.close()
            self.process = None
            raise StartupError(payload)
        self.accepted = payload
        self._loaded = True

    def signature(self) -> list[str] | None:
        """The argument names the function accepts (None: it takes anything)."""
        self._ensure_loaded()
        return self.accepted

    def run(self, calls, on_call=None):
        """``(results, abnormal)``: one Result per call that returned, and an
        :class:`Abnormal` when a call crashed the worker or ran past the timeout (the
        worker is then restarted in the background)."""
        self._ensure_loaded()
        connection = self.process.connection
        connection.send(("job", calls))
        results = []
        for index, call in enumerate(calls):
            self.in_flight = call.label
            if on_call:
                on_call(call)
            if not connection.poll(self.timeout):
                output = self.process.output_tail()
                self._replace()
                return results, Abnormal("timeout", index, f"did not return within "
                                                           f"{self.timeout:g} s", output)
            try:
                _, result = connection.recv()
            except (EOFError, OSError):
                self.process.wait(10)
                message = describe_exit(self.process.returncode)
                output = self.process.output_tail()
                self._replace()
                return results, Abnormal("crash", index, message, output)
            results.append(result)
        self.in_flight = ""
        return results, None

    def _replace(self) -> None:
        self.process.kill()
        self.process.close()
        self.restarts += 1
        self.start()

    def close(self) -> None:
        if self.process is not None:
            if not self._loaded:  # a replacement still loading: nothing to wait for
                self.process.kill()
            self.process.close()
            self.process = None


class InProcess:
    """The same interface without a worker (``isolate=False``): no protection from
    crashes or hangs, no process start-up."""

    how = "in this process"
    restarts = 0
    in_flight = ""

    def __init__(self, setup: Setup, timeout: float, fn=None, vjp=None):
        try:
            self.loaded = Loaded(setup, fn, vjp)
        except (ImportError, AttributeError, TypeError, ValueError) as error:
            raise StartupError(str(error)) from None
        self.accepted = self.loaded.accepted

    def signature(self):
        return self.accepted

    def run(self, calls, on_call=None):
        results = []
        for call in calls:
            self.in_flight = call.label
            if on_call:
                on_call(call)
            results.append(self.loaded.run(call))
        self.in_flight = ""
        return results, None

    def close(self) -> None:
        pass
