"""The worker of lua_port's sandbox: a Lua runtime ready for snippets, forked once per run.

:mod:`lua_port.sandbox` starts this file as a script (``python -I -S sandbox_worker.py
<lupa's directory> <runtime>``), so the worker imports lupa and the standard library only.
At start it builds the sandbox runtime (lua/sandbox.lua, then the shim) and the next
snippet's environment, and never runs a snippet itself: for each request it forks a
child that runs the snippet in its copy of that pristine state and exits. Whatever a
snippet does (crash the runtime, leave it in a bad state, spin in one C call) ends with
its child; the next snippet starts from the same clean copy, with no start-up cost: the
next child is forked as soon as a run is over, and waits for its request.

Frames between the caller and the worker (stdin, stdout) are an 8-byte little-endian
length and a pickle:

1. caller -> worker: ``{"shim": [(chunk name, path), ...], "controller": path}``; the
   worker answers ``("ready",)``.
2. caller -> worker, per snippet: ``{"code", "max_instructions", "timeout",
   "max_memory", "max_reply", "files", "cwd"}``. The worker answers one status frame
   ``{"status": "done" | "crashed" | "timeout" | "late" | "too large", "signal",
   "exit_status", "stderr", "reply"}`` and, when ``reply`` is True, one more frame: the
   child's report, passed on unread (the child writes ``RAN`` when the snippet has
   finished, then the report as a frame). A report is plain data (nested tuples, lists and
   dicts of floats, bytes, str, booleans and None; no class), so the caller unpickles it
   with every global refused.

The worker enforces the deadline: the child has ``timeout`` plus a grace to finish the
snippet (the in-Lua hook stops it well before; only a single long C call outlives it),
then ``REPLY_SECONDS`` to send its results; past either it is killed. Each child sets
its own process limits before the snippet starts: an address-space limit (what the
process maps plus a few times ``max_memory``: a backstop for lupa's own memory limit)
and a CPU-time limit (a child whose worker is gone cannot spin forever). Core dumps are
off: a crash ends in the caller's error message, not in a core file.
"""

from __future__ import annotations

import math
import os
import pickle
import resource
import select
import signal
import struct
import sys
import time
import traceback
from array import array

HEADER = struct.Struct("<Q")
#: Values per Lua -> Python call (LuaJIT's unpack fails near 8000 results).
CHUNK = 4000
#: Address space a child may map beyond what it maps at the fork and its max_memory
#: times AS_PER_BYTE (results are copied a few times on their way out).
AS_SLACK = 512 * 2**20
AS_PER_BYTE = 4
#: Seconds a child has to send its results once the snippet has finished.
REPLY_SECONDS = 60.0
#: The byte a child writes when the snippet has finished (its report follows).
RAN = b"R"
#: Bytes of a child's stderr kept for the caller's message.
STDERR_TAIL = 4000


def grace(timeout: float) -> float:
    """Seconds past a snippet's deadline before its child is killed."""
    return 0.5 + 0.1 * timeout


def read_frame(stream):
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        return None
    return pickle.loads(payload)


def write_all(fd: int, data) -> None:
    data = memoryview(data)
    while data:
        data = data[os.write(fd, data):]


def write_frame(fd: int, value=None, raw: bytes | None = None) -> None:
    payload = raw if raw is not None else pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    write_all(fd, HEADER.pack(len(payload)))
    write_all(fd, payload)


def _refuse_attribute(obj, name, is_setting):
    raise AttributeError("lua_port: Lua code has no access to Python attributes")


def _address_space() -> int | None:
    """Bytes mapped by this process now (Linux), or None."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _set_soft_limit(which, soft: int) -> None:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    try:
        resource.setrlimit(which, (soft, hard))
    except (ValueError, OSError):  # not supported here (e.g. RLIMIT_AS on macOS)
        pass


class Worker:
    """The sandbox runtime of ``runtime`` ("luajit" or "5.4"), its next environment built."""

    def __init__(self, runtime: str, init: dict):
        import importlib

        self.module = importlib.import_module({"luajit": "lupa.luajit21", "5.4": "lupa.lua54"}[runtime])
        # The limit is set around each snippet; creating the runtime with one turns tracking on.
        self.lua = self.module.LuaRuntime(
            register_eval=False, register_builtins=False, unpack_returned_tuples=False,
            attribute_filter=_refuse_attribute, encoding=None, max_memory=2**62,
        )
        shim = self.lua.table_from([
            self.lua.table_from({b"name": name.encode(), b"source": _read(path)})
            for name, path in init["shim"]
        ])
        controller = self.lua.execute(_read(init["controller"]), time.monotonic, shim, self._set_limit,
                                      name=b"@lua_port/sandbox.lua")
        self._prepare, self._run = controller[b"prepare"], controller[b"run"]
        self._sethook, self._unpack = controller[b"sethook"], controller[b"unpack"]
        self._prepare()
        #: The worker's channel to its caller (closed in each child).
        self.protocol_fd: int | None = None
        #: The next snippet's child, forked ahead: (pid, request fd, result fd, stderr fd).
        self.spare = None
        #: Children that sent their report and are exiting (see reap).
        self.exited: list[int] = []

    def _set_limit(self, extra) -> None:
        """Called by the controller: ``extra`` more bytes from now on (0: no limit)."""
        extra = int(extra)
        if extra > 0:
            self.lua.set_max_memory(self.lua.get_memory_used(total=True) + extra, total=True)
        else:
            self.lua.set_max_memory(0)

    # ------------------------------------------------------------------ the worker's side

    def fork_spare(self) -> None:
        """Fork the child that will run the next snippet; it waits for its request.
        Called after each run, so the fork is not on the next run's path."""
        request_read, request_write = os.pipe()
        result_read, result_write = os.pipe()
        err_read, err_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            status = 1
            try:
                for fd in (request_write, result_read, err_read, self.protocol_fd):
                    if fd is not None:
                        os.close(fd)  # only the worker answers its caller
                os.dup2(err_write, 2)
                os.dup2(err_write, 1)
                os.close(0)
                with os.fdopen(request_read, "rb") as requests:
                    request = read_frame(requests)
                if request is not None:  # None: the worker is gone
                    self.child(request, result_write)
                status = 0
            except BaseException:
                try:
                    traceback.print_exc()
                    sys.stderr.flush()
                except BaseException:
                    pass
            finally:
                os._exit(status)
        for fd in (request_read, result_write, err_write):
            os.close(fd)
        self.spare = (pid, request_write, result_read, err_read)

    def fork_run(self, request: dict) -> tuple[dict, bytes | None]:
        """Run ``request`` in a forked child; its status and its report (unread)."""
        if self.spare is None:
            self.fork_spare()
        pid, request_write, result_read, err_read = self.spare
        self.spare = None
        try:
            try:
                write_frame(request_write, request)
            except OSError:
                pass  # the child died before its request: _watch reports how
            finally:
                os.close(request_write)
            return self._watch(pid, request, result_read, err_read)
        finally:
            os.close(result_read)
            os.close(err_read)

    def _watch(self, pid: int, request: dict, result_read: int, err_read: int):
        """Wait for the child's report (RAN, a length, the report) until its deadlines.

        A complete report is answered at once: the child's exit is reaped later
        (:meth:`reap`), off the caller's path. Anything else (no report, a short one, a
        deadline passed, too many bytes) ends the child here and reports how it ended.
        """
        timeout = request["timeout"]
        deadline = time.monotonic() + timeout + grace(timeout)
        result, err = bytearray(), bytearray()
        ran, size, status, open_fds = False, None, None, {result_read, err_read}
        while status is None and result_read in open_fds:
            remaining = deadline - time.monotonic()
            ready = select.select(list(open_fds), [], [], remaining)[0] if remaining > 0 else []
            if not ready:
                status = "late" if ran else "timeout"
            for fd in ready:
                chunk = os.read(fd, 2**20)
                if not chunk:
                    open_fds.discard(fd)
                elif fd == err_read:
                    err += chunk
                    del err[:-STDERR_TAIL]
                else:
                    result += chunk
                    if not ran and result[:1] == RAN:
                        ran, deadline = True, time.monotonic() + REPLY_SECONDS
                    if size is None and len(result) >= 1 + HEADER.size:
                        (size,) = HEADER.unpack_from(result, 1)
                    if size is not None and size > request["max_reply"]:
                        status = "too large"
                    elif size is not None and len(result) >= 1 + HEADER.size + size:
                        status = "done"
        if status == "done" and ran:
            self.exited.append(pid)
            return {"status": "done", "reply": True}, bytes(result[1 + HEADER.size:1 + HEADER.size + size])
        if status is not None:
            os.kill(pid, signal.SIGKILL)  # our own child, by its id
        _, wait_status = os.waitpid(pid, 0)
        while err_read in open_fds and select.select([err_read], [], [], 1.0)[0]:
            chunk = os.read(err_read, 2**16)
            if not chunk:
                break
            err += chunk
            del err[:-STDERR_TAIL]
        code = os.waitstatus_to_exitcode(wait_status)
        return {
            "status": status or "crashed",  # None: the child ended without a whole report
            "signal": -code if code < 0 else None,
            "exit_status": code,
            "stderr": bytes(err).decode("utf-8", "replace"),
            "reply": False,
        }, None

    def reap(self) -> None:
        """Collect the children that sent their report: their work is over, so they are
        ended for sure (one that kept running would hold the worker up)."""
        while self.exited:
            pid = self.exited.pop()
            try:
                os.kill(pid, signal.SIGKILL)  # our own child, by its id
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)

    # ------------------------------------------------------------------ the child's side

    def child(self, request: dict, out: int) -> None:
        """Run the snippet; write RAN, then the pickled report's length and the report."""
        max_memory = request["max_memory"]
        _set_soft_limit(resource.RLIMIT_CPU, math.ceil(request["timeout"] + grace(request["timeout"]))
                        + int(REPLY_SECONDS) + 5)
        size = _address_space()
        if size is not None:
            _set_soft_limit(resource.RLIMIT_AS, size + AS_PER_BYTE * max_memory + AS_SLACK)
        report = None
        try:
            files = self._files(request["files"])
            report = self._run(request["code"], request["max_instructions"], request["timeout"],
                               max_memory, files, os.fsencode(request["cwd"]))
        except self.module.LuaError as error:  # the controller itself failed
            memory = isinstance(error, self.module.LuaMemoryError)
            reply = {"ok": False, "kind": "memory" if memory else "internal", "message": str(error),
                     "output": b"", "written": {}}
        finally:
            self._sethook()
            self.lua.set_max_memory(0)
        write_all(out, RAN)
        if report is not None:
            try:
                reply = self._reply(report)
            except MemoryError:
                reply = {"ok": False, "kind": "memory", "output": b"", "written": {},
                         "message": "the snippet's results do not fit in its memory limit"}
        payload = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        write_all(out, HEADER.pack(len(payload)))
        write_all(out, payload)
        os.close(out)

    def _files(self, files):
        """The controller's ``files`` table: ``paths`` (alias -> key) and ``entries``."""
        table = self.lua.table_from
        paths = table({os.fsencode(alias): key for alias, key in files["paths"].items()})
        entries = table({key: table({b"mode": mode.encode(), **({} if data is None else {b"data": data})})
                         for key, (mode, data) in files["entries"].items()})
        return table({b"paths": paths, b"entries": entries})

    def _reply(self, report) -> dict:
        written = report[b"written"]
        reply = {
            "ok": bool(report[b"ok"]),
            "output": report[b"output"] or b"",
            "written": {int(key): bytes(data) for key, data in written.items()} if written else {},
        }
        if reply["ok"]:
            reply["values"] = [self._value(v[b"value"]) for v in report[b"values"].values()]
        else:
            reply["kind"] = report[b"kind"].decode()
            reply["message"] = _text(report[b"message"])
            reply["traceback"] = _text(report[b"traceback"] or b"")
        return reply

    def _numbers(self, entry) -> bytes:
        count = int(entry[b"count"])
        values = array("d")
        data = entry[b"data"]
        for start in range(0, count, CHUNK):
            stop = min(count, start + CHUNK)
            chunk = self._unpack(data, start + 1, stop)
            values.extend(chunk if stop - start > 1 else (chunk,))
        return values.tobytes()

    def _value(self, value):
        """A Lua value the controller exported, as plain data (see lua_port.sandbox._decode)."""
        if value is None or isinstance(value, (bool, bytes)):
            return value
        if isinstance(value, (int, float)):
            return float(value)
        kind = value[b"kind"]
        if kind == b"tensor":
            return ("tensor", tuple(int(s) for s in value[b"sizes"].values()), self._numbers(value))
        if kind == b"sizes":
            return ("sizes", tuple(int(s) for s in array("d", self._numbers(value))))
        if kind == b"storage":
            return ("storage", self._numbers(value))
        if kind == b"numbers":
            return ("numbers", self._numbers(value))
        keys = [self._value(k) for k in value[b"keys"].values()]
        items = [self._value(v) for v in value[b"values"].values()]
        if kind == b"table" and sorted(keys, key=_order) == [float(i) for i in range(1, len(keys) + 1)]:
            return ("list", [v for _, v in sorted(zip(keys, items), key=lambda pair: pair[0])])
        return ("dict", list(zip(keys, items)))


def _order(key):
    return (0, key) if isinstance(key, float) else (1, str(key))


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _read(path: str) -> bytes:
    with open(path, "rb") as source:
        return source.read()


def main() -> int:
    lupa_dir, runtime = sys.argv[1], sys.argv[2]
    sys.path.insert(0, lupa_dir)
    _set_soft_limit(resource.RLIMIT_CORE, 0)
    out = os.dup(1)
    os.dup2(2, 1)  # the frames own the old stdout; anything printed goes to stderr
    stream = sys.stdin.buffer
    init = read_frame(stream)
    if init is None:
        return 0
    worker = Worker(runtime, init)
    worker.protocol_fd = out
    worker.fork_spare()
    write_frame(out, ("ready",))
    while True:
        request = read_frame(stream)
        if request is None:  # the caller is gone or closed the sandbox
            return 0
        status, reply = worker.fork_run(request)
        write_frame(out, status)
        if reply is not None:
            write_frame(out, raw=reply)
        worker.reap()
        worker.fork_spare()


if __name__ == "__main__":
    sys.exit(main())
