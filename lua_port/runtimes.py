"""The Lua runtimes: choosing LuaJIT 2.1 or Lua 5.4, and the trusted runtime that runs
lua_port's own code (the Torch7 shim and nn.CustomConv) for the Python bridge.

Runtime names: ``"luajit"`` (LuaJIT 2.1, the default) and ``"5.4"`` (Lua 5.4, used when
asked for or where lupa ships no LuaJIT, e.g. on macOS). ``runtime=None`` means the
default.

The trusted runtime keeps LuaJIT's JIT on (only untrusted snippets need it off, see
:mod:`lua_port.sandbox`); like every Lua state of lua_port it has no way back into
Python (no ``python.eval``, no builtins, every attribute access refused) and its globals
are emptied of ``os``, ``io``, ``debug``, ``package``, ``require``, ``load``, ``ffi``...
before the shim is loaded. Arrays cross as flat tables of Python floats plus sizes, once
per call.
"""

from __future__ import annotations

import functools
import importlib
import struct
import threading
from pathlib import Path

import numpy as np

from .errors import LuaError, LuaMemoryError, LuaSyntaxError
from .shim import SHIM_FILES

LUA_DIR = Path(__file__).resolve().parent / "lua"

#: Runtime name -> lupa module.
LUPA_MODULES = {"luajit": "lupa.luajit21", "5.4": "lupa.lua54"}
_ALIASES = {"luajit21": "luajit", "luajit2.1": "luajit", "lua54": "5.4", "lua5.4": "5.4"}

#: Globals no Lua code of lua_port may reach (the sandbox removes a few more).
UNSAFE_GLOBALS = ("os", "io", "debug", "package", "require", "dofile", "loadfile", "load",
                  "loadstring", "module", "python", "ffi", "jit", "newproxy", "getfenv",
                  "setfenv", "collectgarbage", "gcinfo")

#: Values per Lua -> Python transfer call (LuaJIT's unpack fails near 8000 results).
CHUNK = 4000


@functools.cache
def lupa_module(name: str):
    """The lupa module of runtime ``name``; ImportError when this lupa build lacks it."""
    return importlib.import_module(LUPA_MODULES[name])


def available_runtimes() -> tuple[str, ...]:
    """The runtime names that import here, the default first."""
    names = []
    for name in LUPA_MODULES:
        try:
            lupa_module(name)
        except ImportError:
            continue
        names.append(name)
    return tuple(names)


def resolve_runtime(runtime: str | None) -> str:
    """``runtime`` as a canonical name: None gives LuaJIT, or Lua 5.4 where LuaJIT is missing.

    ``ValueError`` for an unknown name, ``ImportError`` for a known one this lupa lacks.
    """
    if runtime is None:
        names = available_runtimes()
        if not names:
            raise ImportError("lua_port: lupa has neither LuaJIT 2.1 nor Lua 5.4 here")
        return names[0]
    if not isinstance(runtime, str):
        raise TypeError(f"lua_port: runtime must be a str or None, got runtime={runtime!r}")
    name = _ALIASES.get(runtime.lower(), runtime.lower())
    if name not in LUPA_MODULES:
        raise ValueError(
            f"lua_port: runtime must be one of {', '.join(map(repr, LUPA_MODULES))} or None "
            f"(the default), got runtime={runtime!r}"
        )
    try:
        lupa_module(name)
    except ImportError as error:
        raise ImportError(f"lua_port: runtime {name!r} is not available in this lupa build "
                          f"({error}); use runtime='5.4' or None") from error
    return name


def _refuse_attribute(obj, name, is_setting):
    raise AttributeError("lua_port: Lua code has no access to Python attributes")


def new_lua_runtime(name: str, **options):
    """A ``LuaRuntime`` of runtime ``name`` that cannot reach Python."""
    module = lupa_module(name)
    return module.LuaRuntime(register_eval=False, register_builtins=False,
                             unpack_returned_tuples=False, attribute_filter=_refuse_attribute,
                             **options)


@functools.cache
def lua_source(relative: str) -> str:
    return (LUA_DIR / relative).read_text(encoding="utf-8")


def shim_sources() -> list[tuple[str, str]]:
    """``(chunk name, source)`` of each shim file, in load order."""
    return [(f"@lua_port/{path}", lua_source(path)) for path in SHIM_FILES]


def translate_error(error: Exception, runtime: str) -> LuaError:
    """A lupa error of ``runtime`` as a :class:`~lua_port.errors.LuaError`."""
    module = lupa_module(runtime)
    message = str(error)
    text, _, traceback = message.partition("\nstack traceback:")
    if isinstance(error, module.LuaMemoryError):
        return LuaMemoryError(text or "not enough memory", runtime=runtime)
    if isinstance(error, module.LuaSyntaxError):
        return LuaSyntaxError(text, runtime=runtime)
    return LuaError(text, lua_traceback=traceback and "stack traceback:" + traceback, runtime=runtime)


class TrustedLua:
    """lua_port's own Lua state for runtime ``name``: the shim, nn, and the bridge.

    ``call(fn, *args)`` calls a Lua function and turns Lua errors into
    :class:`~lua_port.errors.LuaError`; ``tensor(array)`` and ``array(tensor)`` move data.
    One per runtime and thread (lupa serialises calls into one Lua state).
    """

    def __init__(self, name: str):
        self.name = name
        self.module = lupa_module(name)
        self.lua = new_lua_runtime(name)
        g = self.lua.globals()
        if name == "luajit":
            self.lua.execute("jit.on()")  # the default, stated: our code runs compiled
        for unsafe in UNSAFE_GLOBALS:
            g[unsafe] = None
        self.lua.execute("string.dump = nil")
        for chunk_name, source in shim_sources():
            self._execute(source, chunk_name)
        self.bridge = self._execute(lua_source("bridge.lua"), "@lua_port/bridge.lua")
        self.nn = g.nn
        self.torch = g.torch
        #: Lua modules kept for repeated functional calls (lua_port._ops.build_module).
        self.modules = {}

    def _execute(self, source: str, chunk_name: str):
        try:
            return self.lua.execute(source, name=chunk_name)
        except self.module.LuaError as error:
            raise translate_error(error, self.name) from None

    def call(self, fn, *args):
        try:
            return fn(*args)
        except self.module.LuaError as error:
            raise translate_error(error, self.name) from None

    def method(self, obj, name: str, *args):
        """``obj:name(...)`` (lupa has no method binding: self is passed explicitly)."""
        return self.call(obj[name], obj, *args)

    def tensor(self, array: np.ndarray):
        """A torch.DoubleTensor holding a float64 copy of ``array``."""
        values = np.asarray(array, dtype=np.float64)
        data = self.lua.table_from(values.ravel().tolist())
        sizes = self.lua.table_from([int(s) for s in values.shape])
        return self.call(self.bridge.tensor, data, sizes)

    def array(self, tensor) -> np.ndarray:
        """A float64 copy of a Lua tensor's elements, in its shape."""
        data, offset, count, sizes = self.call(self.bridge.flat, tensor)
        shape = tuple(int(s) for s in sizes.values())
        return read_numbers(self.bridge.chunk, data, int(offset), int(count)).reshape(shape)

    def assign(self, tensor, array: np.ndarray) -> None:
        """Copy ``array``'s numbers into a Lua tensor with as many elements."""
        values = np.asarray(array, dtype=np.float64).ravel().tolist()
        self.call(self.bridge.assign, tensor, self.lua.table_from(values))


@functools.lru_cache(maxsize=64)
def _doubles(count: int) -> struct.Struct:
    return struct.Struct(f"={count}d")


def read_numbers(chunk, data, offset: int, count: int) -> np.ndarray:
    """``data[offset+1 .. offset+count]`` of a Lua array as float64, ``CHUNK`` at a time.

    Each chunk arrives as a tuple of Python numbers; ``struct`` packs them straight into
    the array's memory, several times faster than NumPy converting the tuple."""
    out = np.empty(count, dtype=np.float64)
    memory = memoryview(out).cast("B")
    for start in range(0, count, CHUNK):
        stop = min(count, start + CHUNK)
        values = chunk(data, offset + start + 1, offset + stop)
        values = values if stop - start > 1 else (values,)
        try:
            _doubles(stop - start).pack_into(memory, 8 * start, *values)
        except struct.error:  # not all numbers: NumPy converts them or says why not
            out[start:stop] = values
    return out


_local = threading.local()


def trusted(runtime: str | None = None) -> TrustedLua:
    """This thread's trusted Lua state for ``runtime`` (created on first use)."""
    name = resolve_runtime(runtime)
    states = getattr(_local, "states", None)
    if states is None:
        states = _local.states = {}
    if name not in states:
        states[name] = TrustedLua(name)
    return states[name]
