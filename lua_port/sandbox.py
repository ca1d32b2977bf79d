"""Running a user's Torch7 snippet: ``lua_port.run(code)``.

People paste old Torch7 code here to study it. The snippet runs with ``torch`` and ``nn``
(the shim, fresh for every run) in a sandbox runtime of its own, separate from the
trusted state the Python bridge computes with (lua/sandbox.lua lists the isolation):

- no way to Python (no ``python``, builtins, attributes), no ``os``, ``io``, ``ffi``,
  ``debug``, ``package``, ``require``, ``dofile``/``loadfile``; ``load``/``loadstring``
  compile text only, into the snippet's environment;
- an instruction budget and a wall-clock limit, enforced by a count hook with LuaJIT's
  JIT off in this runtime (compiled traces never call hooks); a ``pcall`` in the snippet
  cannot swallow the stop;
- a memory limit (lupa's ``max_memory``);
- after a stop, an error or a success alike, the hook is removed and the garbage
  collected, so the same runtime serves the next snippet.

``print`` output is captured and written to ``sys.stdout`` (or ``stdout=``) after the run.
Results come back as Python values: numbers as ``float`` (Torch7's numbers are doubles),
strings, booleans, None, tensors and storages as float64 NumPy arrays, ``x:size()`` as a
tuple of ints, tables as lists (keys 1..n) or dicts, nn modules as dicts of their fields.
"""

from __future__ import annotations

import re
import sys
import threading
import time

import numpy as np

from .errors import LuaError, LuaLimitError, LuaMemoryError, LuaSyntaxError, snippet_line
from .runtimes import (
    lua_source,
    lupa_module,
    new_lua_runtime,
    read_numbers,
    resolve_runtime,
    shim_sources,
    translate_error,
)

#: Defaults of :func:`run`: generous for studying code, bounded for runaway snippets.
MAX_INSTRUCTIONS = 1_000_000_000
TIMEOUT = 20.0
MAX_MEMORY = 512 * 2**20


class Sandbox:
    """A Lua runtime reserved for untrusted snippets (``runtime``: ``"luajit"``, ``"5.4"``
    or None for the default). :func:`run` keeps one per runtime; make your own to keep
    snippets of different users apart."""

    def __init__(self, runtime: str | None = None):
        self.runtime = resolve_runtime(runtime)
        # The limit is set for each run; creating the runtime with one turns tracking on.
        self.lua = new_lua_runtime(self.runtime, encoding=None, max_memory=2**62)
        self._module = lupa_module(self.runtime)
        shim = self.lua.table_from([
            self.lua.table_from({b"name": name.encode(), b"source": source.encode()})
            for name, source in shim_sources()
        ])
        controller = self.lua.execute(lua_source("sandbox.lua").encode(), time.monotonic, shim,
                                      name=b"@lua_port/sandbox.lua")
        self._run, self._sethook = controller[b"run"], controller[b"sethook"]
        self._collect, self._unpack = controller[b"collect"], controller[b"unpack"]
        self._lock = threading.Lock()

    def run(self, code: str, *, max_instructions: int = MAX_INSTRUCTIONS, timeout: float = TIMEOUT,
            max_memory: int = MAX_MEMORY, stdout=None):
        """Execute ``code`` (see :func:`lua_port.run`); return its results as Python values."""
        if not isinstance(code, str):
            raise TypeError(f"lua_port.run: code must be a str, got {type(code).__name__}")
        max_instructions = _positive(max_instructions, "max_instructions", int)
        timeout = _positive(timeout, "timeout", float)
        max_memory = _positive(max_memory, "max_memory", int)
        with self._lock:
            try:
                self.lua.set_max_memory(self.lua.get_memory_used() + max_memory, total=True)
                report = self._run(code.encode(), max_instructions, timeout)
            except self._module.LuaMemoryError:
                report = None
            except self._module.LuaError as error:
                raise translate_error(error, self.runtime) from None
            finally:
                self._sethook()  # C functions: no Lua instruction runs, nothing can interrupt them
                self.lua.set_max_memory(0)
                self._collect(b"collect")
            if report is None:
                raise LuaMemoryError(f"snippet stopped: it asked for more than its memory limit of "
                                     f"{max_memory} bytes", runtime=self.runtime)
            _write(report[b"output"], stdout)
            if report[b"ok"]:
                values = [self._value(v[b"value"]) for v in report[b"values"].values()]
                return None if not values else values[0] if len(values) == 1 else tuple(values)
        raise self._error(report, max_memory)

    # ------------------------------------------------------------------ errors

    def _error(self, report, max_memory) -> LuaError:
        kind = report[b"kind"].decode()
        # A position in the controller means the snippet's frame is gone (a tail call).
        message = re.sub(r"^lua_port/sandbox\.lua:\d+: ", "", _text(report[b"message"]))
        traceback = _text(report[b"traceback"] or b"")
        line = snippet_line(message, traceback)
        if kind == "memory":
            return LuaMemoryError(f"snippet stopped: it asked for more than its memory limit of "
                                  f"{max_memory} bytes", line=line, runtime=self.runtime)
        cls = {"syntax": LuaSyntaxError, "limit": LuaLimitError}.get(kind, LuaError)
        return cls(message, line=line, lua_traceback=traceback.strip(), runtime=self.runtime)

    # ------------------------------------------------------------------ values

    def _numbers(self, entry) -> np.ndarray:
        return read_numbers(self._unpack, entry[b"data"], 0, int(entry[b"count"]))

    def _value(self, value):
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, bytes):
            return _text(value, strict=True)
        kind = value[b"kind"]
        if kind == b"tensor":
            sizes = tuple(int(s) for s in value[b"sizes"].values())
            numbers = self._numbers(value)
            return numbers.reshape(sizes) if sizes else numbers
        if kind == b"sizes":
            return tuple(int(s) for s in self._numbers(value))
        if kind == b"storage":
            return self._numbers(value)
        keys = [self._value(k) for k in value[b"keys"].values()]
        items = [self._value(v) for v in value[b"values"].values()]
        if kind == b"table" and sorted(keys, key=_order) == [float(i) for i in range(1, len(keys) + 1)]:
            return [v for _, v in sorted(zip(keys, items), key=lambda pair: pair[0])]
        return {(int(k) if isinstance(k, float) and k.is_integer() else k): v for k, v in zip(keys, items)}


def _order(key):
    return (0, key) if isinstance(key, float) else (1, str(key))


def _text(value, strict: bool = False):
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value if strict else value.decode("utf-8", "replace")


def _write(output: bytes, stdout) -> None:
    if output:
        stream = sys.stdout if stdout is None else stdout
        stream.write(_text(output))


def _positive(value, name, kind):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"lua_port.run: {name} must be a positive number, got {name}={value!r}")
    return kind(value)


_sandboxes: dict[str, Sandbox] = {}
_sandboxes_lock = threading.Lock()


def sandbox(runtime: str | None = None) -> Sandbox:
    """The shared :class:`Sandbox` of ``runtime`` (created on first use)."""
    name = resolve_runtime(runtime)
    with _sandboxes_lock:
        if name not in _sandboxes:
            _sandboxes[name] = Sandbox(name)
        return _sandboxes[name]


def run(code: str, runtime: str | None = None, *, max_instructions: int = MAX_INSTRUCTIONS,
        timeout: float = TIMEOUT, max_memory: int = MAX_MEMORY, stdout=None):
    """Execute a Torch7-style Lua snippet with ``torch`` and ``nn`` loaded.

    Args:
        code: Lua source (5.1/5.4 common subset for portability between runtimes).
        runtime: ``"luajit"`` (default), ``"5.4"`` or None.
        max_instructions: Lua VM instructions before the snippet is stopped.
        timeout: wall-clock seconds before the snippet is stopped.
        max_memory: bytes the snippet may allocate.
        stdout: where ``print`` output goes (default ``sys.stdout``).

    Returns:
        The snippet's return values as Python values: None for none, the value for one, a
        tuple for several.

    Raises:
        LuaSyntaxError: the code does not compile.
        LuaError: the code raised an error (``.lua_message``, ``.line``, ``.lua_traceback``).
        LuaLimitError: the instruction budget or the time limit ran out.
        LuaMemoryError: the memory limit ran out.
    """
    return sandbox(runtime).run(code, max_instructions=max_instructions, timeout=timeout,
                                max_memory=max_memory, stdout=stdout)
