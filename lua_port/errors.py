"""Python exceptions for errors raised by Lua code, whichever Lua runtime ran it.

lupa gives each runtime module its own ``LuaError`` class; lua_port translates them into
these, so callers catch one class. A Lua error keeps Lua's message (with its
``chunk:line:`` position), the line of the user's snippet where it happened (``line``, when
the error came from a snippet run by :func:`lua_port.run`) and Lua's traceback.
"""

from __future__ import annotations

import re

_SNIPPET_LINE = re.compile(r"(?:^|\s)snippet:(\d+):")


class LuaError(RuntimeError):
    """An error raised by Lua code.

    Attributes:
        lua_message: Lua's error message (``"snippet:3: attempt to index a nil value"``).
        line: line of the snippet where the error happened, or None.
        lua_traceback: Lua's stack traceback ("" when there is none).
        runtime: the Lua runtime that ran the code (``"luajit"`` or ``"5.4"``).
    """

    def __init__(self, lua_message: str, *, line: int | None = None, lua_traceback: str = "",
                 runtime: str | None = None):
        self.lua_message = lua_message
        self.line = line
        self.lua_traceback = lua_traceback
        self.runtime = runtime
        text = lua_message
        if line is not None and f"snippet:{line}:" not in lua_message:
            text = f"{lua_message} (at snippet line {line})"
        super().__init__(text)


class LuaSyntaxError(LuaError):
    """The snippet does not compile (Lua's message names the line)."""


class LuaLimitError(LuaError):
    """The snippet was stopped: it ran past its instruction budget or its time limit."""


class LuaMemoryError(LuaLimitError, MemoryError):
    """The snippet was stopped: it asked for more memory than its limit."""


class LuaCrashError(LuaError):
    """The Lua runtime running a snippet crashed (a LuaJIT segfault, a Lua panic) or its
    worker process failed; the caller's process is unharmed and the next run gets a new
    runtime.

    Attributes (besides LuaError's):
        signal: the signal's name (``"SIGSEGV"``, ``"SIGABRT"``) when a signal ended the
            worker, else None.
        exit_status: the worker's exit status (negative: the signal's number), or None.
    """

    def __init__(self, lua_message: str, *, runtime: str | None = None, signal: str | None = None,
                 exit_status: int | None = None):
        super().__init__(lua_message, runtime=runtime)
        self.signal = signal
        self.exit_status = exit_status


def snippet_line(*texts: str) -> int | None:
    """The first ``snippet:N:`` position in ``texts`` (a message, then a traceback)."""
    for text in texts:
        match = _SNIPPET_LINE.search(text or "")
        if match:
            return int(match.group(1))
    return None
