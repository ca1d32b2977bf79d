"""Running a user's Torch7 snippet: ``lua_port.run(code)``.

People paste old Torch7 code here to study it. The snippet runs with ``torch`` and ``nn``
(the shim) in a Lua runtime of its own, in a process of its own: never in the caller's
process. Two lines of defence:

In Lua (lua/sandbox.lua lists the isolation):

- no way to Python (no ``python``, builtins, attributes), no ``os``, ``io``, ``ffi``,
  ``debug``, ``package``, ``require``, ``dofile``/``loadfile``; ``load``/``loadstring``
  compile text only, into the snippet's environment;
- an instruction budget and a wall-clock limit, enforced by a count hook with LuaJIT's
  JIT off in this runtime (compiled traces never call hooks); a ``pcall`` in the snippet
  cannot swallow the stop, and nothing a snippet does turns the hook off;
- a memory limit (lupa's ``max_memory``), around the snippet alone;
- C calls nested through Lua callbacks (``string.gsub`` with a function, coroutines) are
  counted: too many is a "C stack overflow" error, not a crash.

Around Lua, in the operating system (lua_port/sandbox_worker.py):

- a worker process holds the sandbox runtime with the shim loaded and the next
  snippet's environment built, and forks one child per snippet: each snippet starts
  from the same pristine copy (nothing one snippet does reaches the next), and no run
  pays for loading the shim. The child for the next run is forked as soon as a run is
  over;
- each child has an address-space limit (a few times ``max_memory``) and a CPU-time
  limit; the worker waits for it only until the snippet's deadline plus a short grace,
  so a single long C call that no hook can interrupt (a backtracking ``string.find``)
  ends in a :class:`~lua_port.errors.LuaLimitError` when its child is killed;
- a crash of the runtime (a LuaJIT segfault, a Lua panic) ends that run with
  :class:`~lua_port.errors.LuaCrashError` naming the signal; the caller's process, the
  worker and the next run are unharmed;
- the worker answers with plain data only (unpickled here with every class and
  function refused), and a file reaches a snippet only if the caller grants it (below).

``print`` output is captured and written to ``sys.stdout`` (or ``stdout=``) after the run.
Results come back as Python values: numbers as ``float`` (Torch7's numbers are doubles),
strings, booleans, None, tensors and storages as float64 NumPy arrays, ``x:size()`` as a
tuple of ints, tables as lists (keys 1..n) or dicts, nn modules as dicts of their fields.

Files
-----
A snippet reaches no file unless the caller grants it: ``run(code, files={"model.t7":
"r", "out.t7": "w"})`` (or ``files=["model.t7"]`` for reading only; modes ``"r"``,
``"w"``, ``"rw"``). The caller's side checks each grant before anything runs (a readable
file must exist, a writable one must be in an existing directory), resolves symlinks,
and reads the granted files; the worker never opens a file itself. Inside the snippet
one function reaches them::

    __crossconv_open(path, "r")   --> the file's bytes, as a Lua string
    __crossconv_open(path, "w")   --> a writer: w:write(s, ...), w:close()

``path`` is made absolute against the caller's working directory, ``.`` and empty parts
are dropped, and any ``..`` part is refused; the result must be a granted file, under the
path the caller gave or its real path (symlinks resolved). Anything else is a Lua error
naming the path. What a closed writer wrote replaces the file when the run ends (after a
result, a Lua error or a stop alike; not after a crash or a kill), and a later read in
the same run sees it.

How the shim uses it: ``__crossconv_open`` is a global of the environment the shim is
loaded into (shim code may keep a reference from load time: it always reaches the
current run's files). ``torch.load(path)`` reads ``__crossconv_open(path, "rb")`` and
decodes the bytes; ``torch.save(path, object)`` encodes the object, then
``local f = __crossconv_open(path, "wb"); f:write(bytes); f:close()``. lua_port's trusted
runtime has no ``__crossconv_open``: there the shim has no files to reach, and its
errors should say so (Python reads and writes .t7 files itself).
"""

from __future__ import annotations

import atexit
import io
import math
import numbers
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import LuaCrashError, LuaError, LuaLimitError, LuaMemoryError, LuaSyntaxError, snippet_line
from .runtimes import LUA_DIR, SHIM_FILES, lupa_module, resolve_runtime

#: Defaults of :func:`run`: generous for studying code, bounded for runaway snippets.
MAX_INSTRUCTIONS = 1_000_000_000
TIMEOUT = 20.0
MAX_MEMORY = 512 * 2**20

#: Upper bounds of the limits (beyond them a limit means nothing and the numbers overflow).
MAX_INSTRUCTIONS_LIMIT = 10**15
MAX_MEMORY_LIMIT = 2**48
TIMEOUT_LIMIT = 10**6

#: Seconds a worker may take to start (imports on a cold, busy machine).
STARTUP_TIMEOUT = 60.0

WORKER_SCRIPT = Path(__file__).resolve().parent / "sandbox_worker.py"
#: A frame's length prefix (as in sandbox_worker).
HEADER = struct.Struct("<Q")
MODES = ("r", "w", "rw")


class _Unreachable(Exception):
    """The worker died or stopped answering (with what the caller should be told)."""

    def __init__(self, error: LuaError):
        super().__init__(str(error))
        self.error = error


class _RestrictedUnpickler(pickle.Unpickler):
    """Plain data only: a worker's answer names no class or function."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"lua_port's sandbox worker sent a global ({module}.{name})")


def _plain_data(payload: bytes):
    return _RestrictedUnpickler(io.BytesIO(payload)).load()


class _Worker:
    """One worker process (see :mod:`lua_port.sandbox_worker`), seen from the caller."""

    def __init__(self, runtime: str):
        from . import sandbox_worker  # POSIX only (fork, resource limits)

        self.protocol = sandbox_worker
        self.runtime = runtime
        self.owner = os.getpid()
        self.ready = False
        #: Whether a snippet was sent (then a failure is that snippet's, not retried).
        self.took_request = False
        self.stderr = tempfile.TemporaryFile()
        lupa_dir = str(Path(lupa_module(runtime).__file__).resolve().parent.parent)
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(WORKER_SCRIPT), lupa_dir, runtime],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, close_fds=True,
        )
        init = {"shim": [(f"@lua_port/{path}", str(LUA_DIR / path)) for path in SHIM_FILES],
                "controller": str(LUA_DIR / "sandbox.lua")}
        self._send(init)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.process.poll() is None

    # ------------------------------------------------------------------ frames

    def _send(self, value) -> None:
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.process.stdin.write(HEADER.pack(len(payload)) + payload)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise _Unreachable(self._failure("stopped taking requests")) from None

    def _read_exact(self, size: int, deadline: float) -> bytes:
        fd = self.process.stdout.fileno()
        chunks, left = [], size
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise _Unreachable(self._failure("stopped answering"))
            chunk = os.read(fd, min(left, 2**20))
            if not chunk:
                raise _Unreachable(self._failure("ended"))
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _receive(self, deadline: float, max_size: int) -> bytes:
        (size,) = HEADER.unpack(self._read_exact(HEADER.size, deadline))
        if size > max_size:
            raise _Unreachable(self._failure(f"sent {size} bytes, more than {max_size}"))
        return self._read_exact(size, deadline)

    def _receive_data(self, deadline: float, max_size: int):
        payload = self._receive(deadline, max_size)
        try:
            return _plain_data(payload)
        except Exception as error:
            raise _Unreachable(self._failure(f"sent a malformed answer ({error})")) from None

    # ------------------------------------------------------------------ life cycle

    def wait_ready(self) -> None:
        if not self.ready:
            if self._receive_data(time.monotonic() + STARTUP_TIMEOUT, 2**16) != ("ready",):
                raise _Unreachable(self._failure("did not start"))
            self.ready = True

    def request(self, request: dict, timeout: float) -> dict:
        """Send one snippet; its report, or the error that ended it."""
        self._send(request)
        self.took_request = True
        # The worker enforces the snippet's deadline itself; this one only catches a
        # worker that stops answering.
        deadline = (time.monotonic() + timeout + self.protocol.grace(timeout)
                    + self.protocol.REPLY_SECONDS + STARTUP_TIMEOUT)
        status = self._receive_data(deadline, 2**20)
        if not isinstance(status, dict) or status.get("status") not in _STATUSES:
            raise _Unreachable(self._failure("sent a malformed status"))
        reply = None
        if status.get("reply"):
            payload = self._receive(deadline, request["max_reply"])
            try:
                reply = _plain_data(payload)
            except Exception:
                reply = None
        kind = status["status"]
        if kind == "done":
            if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
                raise LuaCrashError("the snippet's process sent a malformed report", runtime=self.runtime)
            return reply
        if kind == "timeout":
            raise LuaLimitError(
                f"snippet stopped: it ran past its time limit of {timeout:g} s inside one long call "
                f"that no Lua hook can interrupt (such as a backtracking string.find); its process "
                f"was killed", runtime=self.runtime)
        if kind == "too large":
            raise LuaMemoryError(f"snippet stopped: its results are larger than its memory limit "
                                 f"allows ({request['max_reply']} bytes)", runtime=self.runtime)
        if kind == "late":
            raise LuaCrashError(f"the snippet's process took more than {self.protocol.REPLY_SECONDS:g} s "
                                f"to send its results and was killed", runtime=self.runtime)
        raise _crash_error(status, self.runtime)

    def kill(self) -> None:
        """End the worker now (our own child: by its pid, never by name)."""
        if self.owner != os.getpid():
            return  # a forked copy of the caller: the worker belongs to the original
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.stderr.close()

    def _failure(self, what: str) -> LuaCrashError:
        """The worker itself failed (it runs no snippet: a bug or an outside kill)."""
        self.kill()
        status = self.process.returncode
        detail = ""
        try:
            self.stderr.seek(0)
        except (OSError, ValueError):
            pass
        else:
            lines = [line for line in self.stderr.read()[-2000:].decode("utf-8", "replace").splitlines()
                     if line.strip()]
            detail = f": {lines[-1].strip()}" if lines else ""
        return LuaCrashError(f"lua_port's sandbox worker {what} (exit status {status}){detail}; a new "
                             f"one starts with the next run", runtime=self.runtime, exit_status=status)


_STATUSES = ("done", "crashed", "timeout", "late", "too large")


def _crash_error(status: dict, runtime: str) -> LuaCrashError:
    code = status.get("exit_status")
    sig = status.get("signal")
    name = None
    if isinstance(sig, int):
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        what = f"killed by {name}"
    else:
        what = f"exit status {code}"
    lines = [line.strip() for line in str(status.get("stderr", "")).splitlines() if line.strip()]
    message = f"the Lua runtime crashed running the snippet ({what})"
    if lines:
        message += f": {lines[-1]}"
    return LuaCrashError(message + "; the next run starts from a fresh copy", runtime=runtime,
                         signal=name, exit_status=code if isinstance(code, int) else None)


# ----------------------------------------------------------------------------- arguments


def _check_int(value, name: str, low: int, high: int, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"lua_port.run: {name} must be an int ({unit}), got {name}={value!r}")
    if not low <= value <= high:
        raise ValueError(f"lua_port.run: {name} must be between {low} and {high} {unit}, "
                         f"got {name}={value!r}")
    return int(value)


def _check_timeout(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"lua_port.run: timeout must be a number of seconds, got timeout={value!r}")
    if not (math.isfinite(value) and 0 < value <= TIMEOUT_LIMIT):
        raise ValueError(f"lua_port.run: timeout must be a positive number of seconds, at most "
                         f"{TIMEOUT_LIMIT}, got timeout={value!r}")
    return float(value)


def _check_stdout(stdout):
    if stdout is not None and not callable(getattr(stdout, "write", None)):
        raise TypeError(f"lua_port.run: stdout must be a text stream (an object with a write "
                        f"method) or None for sys.stdout, got stdout={stdout!r}")
    return stdout


@dataclass
class _Grant:
    """A file the caller granted to a run: its real path, mode, bytes, and the names it
    may be opened by."""

    real: str
    mode: str
    data: bytes | None = None
    aliases: set = field(default_factory=set)


def _check_files(files, max_memory: int) -> list[_Grant]:
    """The caller's ``files=`` as grants; ``TypeError``/``ValueError`` naming the file."""
    if files is None:
        return []
    if isinstance(files, (str, bytes, os.PathLike)):
        raise TypeError(f"lua_port.run: files must be a mapping of paths to modes or a list of paths, "
                        f"got the single path {files!r} (write files=[{files!r}])")
    if isinstance(files, Mapping):
        items = list(files.items())
    elif isinstance(files, Iterable):
        items = [(path, "r") for path in files]
    else:
        raise TypeError(f"lua_port.run: files must be a mapping of paths to modes or a list of paths, "
                        f"got files={files!r}")
    grants: dict[str, _Grant] = {}
    for path, mode in items:
        if not isinstance(path, (str, bytes, os.PathLike)):
            raise TypeError(f"lua_port.run: files: each path must be a str or a path, got {path!r}")
        name = os.fsdecode(os.fspath(path))
        if not name or "\0" in name:
            raise ValueError(f"lua_port.run: files: {path!r} is not a path")
        if mode not in MODES:
            raise ValueError(f"lua_port.run: files: the mode of {name!r} must be one of "
                             f"{', '.join(map(repr, MODES))}, got {mode!r}")
        real = os.path.realpath(name)
        grant = grants.setdefault(real, _Grant(real, ""))
        grant.mode = "".join(m for m in "rw" if m in grant.mode + mode)
        grant.aliases |= {os.path.abspath(name), real}
    for grant in grants.values():
        exists = os.path.isfile(grant.real)
        if os.path.exists(grant.real) and not exists:
            raise ValueError(f"lua_port.run: files: {grant.real!r} is not a regular file")
        if grant.mode == "r" and not exists:
            raise ValueError(f"lua_port.run: files: {grant.real!r} is granted for reading but does not exist")
        if "w" in grant.mode and not os.path.isdir(os.path.dirname(grant.real)):
            raise ValueError(f"lua_port.run: files: {grant.real!r} is granted for writing but its "
                             f"directory does not exist")
        if "r" in grant.mode and exists:
            size = os.path.getsize(grant.real)
            if size > max_memory:
                raise ValueError(f"lua_port.run: files: {grant.real!r} has {size} bytes, more than "
                                 f"max_memory={max_memory}")
            with open(grant.real, "rb") as file:
                grant.data = file.read()
    return list(grants.values())


# ----------------------------------------------------------------------------- the sandbox


class Sandbox:
    """A worker process for untrusted snippets (``runtime``: ``"luajit"``, ``"5.4"`` or
    None for the default): it holds a ready Lua runtime and forks a process per snippet.
    :func:`run` keeps one per runtime; make your own to keep snippets of different users
    apart, and :meth:`close` it (or use ``with``) when done. The worker starts in the
    background when the sandbox is made."""

    def __init__(self, runtime: str | None = None):
        self.runtime = resolve_runtime(runtime)
        self._lock = threading.Lock()
        self._worker: _Worker | None = _Worker(self.runtime)

    @property
    def worker_pid(self) -> int | None:
        """The worker process's id, or None when closed."""
        return None if self._worker is None else self._worker.pid

    def close(self) -> None:
        """End the worker process (a later :meth:`run` starts a new one)."""
        with self._lock:
            if self._worker is not None:
                self._worker.kill()
                self._worker = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self):
        worker = getattr(self, "_worker", None)
        if worker is not None:
            try:
                worker.kill()
            except Exception:
                pass

    def run(self, code: str, *, max_instructions: int = MAX_INSTRUCTIONS, timeout: float = TIMEOUT,
            max_memory: int = MAX_MEMORY, stdout=None, files=None):
        """Execute ``code`` (see :func:`lua_port.run`); return its results as Python values."""
        if not isinstance(code, str):
            raise TypeError(f"lua_port.run: code must be a str, got code={type(code).__name__}")
        max_instructions = _check_int(max_instructions, "max_instructions", 1, MAX_INSTRUCTIONS_LIMIT,
                                      "Lua instructions")
        timeout = _check_timeout(timeout)
        max_memory = _check_int(max_memory, "max_memory", 1, MAX_MEMORY_LIMIT, "bytes")
        stdout = _check_stdout(stdout)
        grants = _check_files(files, max_memory)
        request = {
            "code": code.encode("utf-8", "surrogatepass"),
            "max_instructions": max_instructions, "timeout": timeout, "max_memory": max_memory,
            # A report holds at most what the snippet could allocate, copied a few times.
            "max_reply": 8 * max_memory + 2**26,
            "files": {"paths": {alias: key for key, grant in enumerate(grants, 1) for alias in grant.aliases},
                      "entries": {key: (grant.mode, grant.data) for key, grant in enumerate(grants, 1)}},
            "cwd": os.getcwd() if grants else "/",  # only granted files need it
        }
        with self._lock:
            reply = self._exchange(request, timeout)
        _write_files(reply.get("written"), grants)
        _write(reply.get("output"), stdout)
        if reply["ok"]:
            values = _decode_values(reply.get("values", []))
            return None if not values else values[0] if len(values) == 1 else tuple(values)
        raise self._error(reply, max_memory)

    def _exchange(self, request: dict, timeout: float) -> dict:
        """One snippet through a healthy worker (a new one if the last has died)."""
        for attempt in (1, 2):
            if self._worker is None or not self._worker.alive():
                if self._worker is not None:
                    self._worker.kill()
                self._worker = _Worker(self.runtime)
            worker = self._worker
            try:
                worker.wait_ready()
                return worker.request(request, timeout)
            except _Unreachable as unreachable:
                self._worker = None
                # A worker that failed before taking the snippet: one more try with a new one.
                if attempt == 2 or worker.took_request:
                    raise unreachable.error from None
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ errors

    def _error(self, reply: dict, max_memory: int) -> LuaError:
        kind = reply.get("kind")
        # A position in the controller means the snippet's frame is gone (a tail call).
        message = _strip_controller(str(reply.get("message", "")))
        traceback = str(reply.get("traceback") or "")
        line = snippet_line(message, traceback)
        if kind == "memory":
            return LuaMemoryError(f"snippet stopped: it asked for more than its memory limit of "
                                  f"{max_memory} bytes", line=line, runtime=self.runtime)
        if kind == "internal":
            return LuaCrashError(f"lua_port's sandbox failed running the snippet: {message}",
                                 runtime=self.runtime)
        cls = {"syntax": LuaSyntaxError, "limit": LuaLimitError}.get(kind, LuaError)
        return cls(message, line=line, lua_traceback=traceback.strip(), runtime=self.runtime)


def _strip_controller(message: str) -> str:
    prefix = "lua_port/sandbox.lua:"
    if message.startswith(prefix):
        head, sep, rest = message[len(prefix):].partition(": ")
        if sep and head.isdigit():
            return rest
    return message


# ----------------------------------------------------------------------------- values


def _decode_values(values: list) -> list:
    try:
        return [_decode(v) for v in values]
    except RecursionError:
        raise LuaCrashError("the snippet's process sent a malformed value") from None


def _decode(node):
    """A worker's plain-data value (see ``sandbox_worker.Worker._value``) as a Python value."""
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, (int, float)):
        return float(node)
    if isinstance(node, bytes):
        return _text(node, strict=True)
    if not isinstance(node, tuple) or not node:
        raise LuaCrashError("lua_port's sandbox worker sent a malformed value")
    kind = node[0]
    if kind == "tensor":
        _, sizes, data = node
        numbers_ = _floats(data, math.prod(sizes) if sizes else None)
        return numbers_.reshape(sizes) if sizes else numbers_
    if kind == "storage":
        return _floats(node[1])
    if kind == "numbers":
        return _floats(node[1]).tolist()
    if kind == "sizes":
        return tuple(int(s) for s in node[1])
    if kind == "list":
        return [_decode(v) for v in node[1]]
    if kind == "dict":
        result = {}
        for key, value in node[1]:
            key = _decode(key)
            result[int(key) if isinstance(key, float) and key.is_integer() else key] = _decode(value)
        return result
    raise LuaCrashError(f"lua_port's sandbox worker sent a value of unknown kind {kind!r}")


def _floats(data, count=None) -> np.ndarray:
    if not isinstance(data, bytes) or len(data) % 8 or (count is not None and len(data) != 8 * count):
        raise LuaCrashError("lua_port's sandbox worker sent malformed numbers")
    return np.frombuffer(data, dtype=np.float64).copy()


def _text(value, strict: bool = False):
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value if strict else value.decode("utf-8", "replace")


def _write(output, stdout) -> None:
    if output:
        stream = sys.stdout if stdout is None else stdout
        stream.write(_text(output))


def _write_files(written, grants: list[_Grant]) -> None:
    """Write what the snippet's closed writers wrote, to writable grants only."""
    for key, data in (written or {}).items():
        if isinstance(key, int) and 1 <= key <= len(grants) and isinstance(data, bytes):
            grant = grants[key - 1]
            if "w" in grant.mode:
                with open(grant.real, "wb") as file:
                    file.write(data)


# ----------------------------------------------------------------------------- run()


_sandboxes: dict[str, Sandbox] = {}
_sandboxes_lock = threading.Lock()


@atexit.register
def _close_sandboxes() -> None:
    for shared in list(_sandboxes.values()):
        shared.close()


def sandbox(runtime: str | None = None) -> Sandbox:
    """The shared :class:`Sandbox` of ``runtime`` (created on first use)."""
    name = resolve_runtime(runtime)
    with _sandboxes_lock:
        if name not in _sandboxes:
            _sandboxes[name] = Sandbox(name)
        return _sandboxes[name]


def run(code: str, runtime: str | None = None, *, max_instructions: int = MAX_INSTRUCTIONS,
        timeout: float = TIMEOUT, max_memory: int = MAX_MEMORY, stdout=None, files=None):
    """Execute a Torch7-style Lua snippet with ``torch`` and ``nn`` loaded, in a sandbox.

    Args:
        code: Lua source (5.1/5.4 common subset for portability between runtimes).
        runtime: ``"luajit"`` (default), ``"5.4"`` or None.
        max_instructions: Lua VM instructions before the snippet is stopped (an int,
            1 to 10**15).
        timeout: wall-clock seconds before the snippet is stopped (0 < timeout <= 10**6).
        max_memory: bytes the snippet may allocate (an int, 1 to 2**48).
        stdout: where ``print`` output goes (an object with ``write``; default
            ``sys.stdout``).
        files: the files the snippet may open, ``{path: "r" | "w" | "rw"}`` or a list of
            paths to read (see the module's docstring).

    Returns:
        The snippet's return values as Python values: None for none, the value for one, a
        tuple for several.

    Raises:
        TypeError, ValueError: a bad argument (before anything runs).
        LuaSyntaxError: the code does not compile.
        LuaError: the code raised an error (``.lua_message``, ``.line``, ``.lua_traceback``).
        LuaLimitError: the instruction budget or the time limit ran out.
        LuaMemoryError: the memory limit ran out.
        LuaCrashError: the Lua runtime crashed (``.signal``); the next run gets a new one.
    """
    return sandbox(runtime).run(code, max_instructions=max_instructions, timeout=timeout,
                                max_memory=max_memory, stdout=stdout, files=files)
