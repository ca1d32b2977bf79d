"""lua_port.run: the sandbox (no way out), the limits (loops, memory, pcall, coroutines,
LuaJIT's JIT, long C calls), crashes that end the run and nothing else, argument checks,
granted files, errors with their line, and results as Python values."""

import io
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

import lua_port
import reference
from lua_port import LuaCrashError, LuaError, LuaLimitError, LuaMemoryError, LuaSyntaxError
from lua_port.runtimes import UNSAFE_GLOBALS, trusted
from lua_port.sandbox import sandbox as shared_sandbox

#: Small limits keep the runaway tests quick.
QUICK = dict(max_instructions=2_000_000, timeout=5.0, max_memory=32 * 2**20)

ESCAPES = {
    "python.eval": "return python.eval('1')",
    "python builtins": "return python.builtins.open",
    "python attributes": "return python.as_attrgetter",
    "os.execute": "return os.execute('true')",
    "os.getenv": "return os.getenv('HOME')",
    "io.open": "return io.open('/etc/passwd'):read('*a')",
    "io.popen": "return io.popen('id')",
    "debug.getregistry": "return debug.getregistry()",
    "debug.sethook": "debug.sethook()",
    "package.loaded": "return package.loaded.os",
    "package.loadlib": "return package.loadlib('libc.so.6', '*')",
    "require os": "return require('os')",
    "require ffi": "return require('ffi').C",
    "ffi global": "return ffi.C",
    "jit.on": "jit.on()",
    "dofile": "return dofile('/etc/passwd')",
    "loadfile": "return loadfile('/etc/passwd')",
    "binary chunk via load": "return assert(load('\\27LJ\\2 binary', 'chunk', 'b'))()",
    "binary chunk via text mode": "return assert(load('\\27Lua binary'))()",
    "string.dump": "return string.dump(function() end)",
    "string.dump via a string's metatable": "return ('').dump(function() end)",
    "the string metatable": "return getmetatable('').__index.dump",
    "getfenv": "return getfenv(0).os",
    "setfenv": "setfenv(1, {})",
    "newproxy finalizers": "return newproxy(true)",
    "__gc finalizers": "setmetatable({}, {__gc = function() while true do end end})",
    "collectgarbage stop": "collectgarbage('stop')",
    "load into the real globals": "return load('return os', 'x', 't', nil)().execute",
}


@pytest.mark.parametrize("escape", ESCAPES)
def test_every_sandbox_escape_fails_with_an_error(lua, escape):
    with pytest.raises(LuaError):
        lua(ESCAPES[escape], **QUICK)


#: The sandbox gives these back in safe forms (text-only load, collectgarbage without stop,
#: require of 'torch' and 'nn' only).
REWRAPPED = ("load", "loadstring", "collectgarbage", "require")


def test_the_sandbox_and_the_trusted_state_hold_no_unsafe_globals(runtime, lua):
    unsafe = [name for name in UNSAFE_GLOBALS if name not in REWRAPPED]
    names = ", ".join(f"'{n}'" for n in unsafe)
    present = lua("local present = {} for _, n in ipairs({" + names + "}) do "
                  "if _G[n] ~= nil then present[#present + 1] = n end end return present")
    assert present == []
    g = trusted(runtime).lua.globals()
    assert [name for name in UNSAFE_GLOBALS if g[name] is not None] == []


def test_load_compiles_text_into_the_snippets_environment(lua):
    assert lua("local secret = 41 answer = 1 return load('return answer + 1')()") == 2.0


def test_require_gives_torch_and_nn_only(lua):
    assert lua("require 'nn' local torch7 = require('torch') return torch7 == torch") is True
    with pytest.raises(LuaError, match="module 'image' is not available"):
        lua("require 'image'")


RUNAWAYS = {
    "a plain loop": "while true do end",
    "a numeric for loop that LuaJIT would compile": "local x = 0 for i = 1, 1e15 do x = x + i end",
    "pcall swallowing the stop": "while true do pcall(function() while true do end end) end",
    "xpcall with a handler that loops": "while true do xpcall(function() while true do end end, "
                                        "function() while true do end end) end",
    "a loop in a coroutine": "coroutine.wrap(function() while true do end end)()",
    "a loop inside the shim": "torch.Tensor(1e9):fill(1)",
    "a loop in a __tostring metamethod": "print(setmetatable({}, {__tostring = function() "
                                          "while true do end end}))",
}


@pytest.mark.parametrize("runaway", RUNAWAYS)
def test_a_runaway_snippet_is_stopped_and_the_next_run_works(runtime, lua, runaway):
    start = time.monotonic()
    with pytest.raises(LuaLimitError, match="instructions"):
        lua(RUNAWAYS[runaway], max_instructions=2_000_000, timeout=30, max_memory=2**30)
    assert time.monotonic() - start < 10
    assert lua("local x = 0 for i = 1, 100 do x = x + i end return x") == 5050.0
    with pytest.raises(LuaLimitError):  # the limits still hold
        lua("while true do end", max_instructions=100_000)


def test_the_wall_clock_limit_stops_a_snippet_with_budget_left(lua):
    start = time.monotonic()
    with pytest.raises(LuaLimitError, match="time limit of 0.2 s"):
        lua("while true do end", max_instructions=10**15, timeout=0.2)
    assert time.monotonic() - start < 5
    assert lua("return 6 * 7") == 42.0


HEAP = "collectgarbage('collect') return collectgarbage('count')"


@pytest.mark.parametrize("bomb", [
    "local t = {} while true do t[#t + 1] = string.rep('x', 100000) .. #t end",
    "local s = 'x' while true do s = s .. s end",
    "local t = {} for i = 1, 1e9 do t[i] = {i} end",
    "local t = {} while true do pcall(function() t[#t + 1] = torch.Tensor(100000) end) end",
    "return {1, 2, 3}",  # nothing fits in 1 byte (Lua used to panic and abort the process)
])
def test_a_memory_bomb_is_stopped_and_the_next_run_works(lua, bomb):
    heap = lua(HEAP)
    with pytest.raises(LuaMemoryError) as error:
        lua(bomb, max_instructions=10**9, timeout=30, max_memory=1 if "{1" in bomb else 32 * 2**20)
    assert isinstance(error.value, MemoryError) and "memory limit" in str(error.value)
    assert lua(HEAP) == pytest.approx(heap, rel=0.01)  # nothing left over
    assert lua("return torch.ones(3):sum()") == 3.0


def test_the_memory_limit_counts_the_snippets_allocations(lua):
    grow = "local t = {} for i = 1, 20000 do t[i] = {i} end return #t"  # about 1-2 MB
    assert lua(grow, max_memory=8 * 2**20) == 20000.0
    with pytest.raises(LuaMemoryError, match="memory limit of 100000 bytes"):
        lua(grow, max_memory=100_000)


# ----------------------------------------------------------------------------- crashes and C calls


@pytest.mark.parametrize("recursion", [
    "local function f(s) return (s:gsub('.', f)) end return f('ab')",
    "local function f(s) return (string.gsub(s, '.', setmetatable({}, {__index = function() "
    "return f('x') end}))) end return f('ab')",
    "local function f() return coroutine.wrap(f)() end return f()",
    "local function f() local co = coroutine.create(f) local ok, e = coroutine.resume(co) "
    "error(e, 0) end return f()",
])
def test_recursion_through_c_functions_is_an_error_not_a_crash(lua, recursion):
    with pytest.raises(LuaError, match="C stack overflow") as error:  # LuaJIT segfaulted here
        lua(recursion)
    assert not isinstance(error.value, LuaCrashError)
    assert lua("return ('abc'):gsub('b', function(c) return c:upper() end)") == ("aBc", 1.0)


def test_one_long_c_call_is_stopped_at_the_time_limit(lua):
    start = time.monotonic()
    with pytest.raises(LuaLimitError, match="time limit of 0.1 s inside one long call"):
        lua("return string.find(string.rep('a', 5000), '.-.-.-b')", timeout=0.1)
    assert time.monotonic() - start < 5
    assert lua("return 6 * 7") == 42.0


def test_a_stop_inside_loads_reader_leaves_the_limits_working(lua):
    # A stop raised inside LuaJIT's parser (a load reader) used to turn off the hook for
    # every later snippet of the process; the reader now runs as ordinary snippet code.
    with pytest.raises(LuaLimitError, match="instructions"):
        lua("return load(function() while true do end end)", max_instructions=100_000)
    with pytest.raises(LuaLimitError, match="instructions"):  # also within one snippet
        lua("pcall(load, function() while true do end end) while true do end", max_instructions=100_000)
    with pytest.raises(LuaLimitError, match="instructions"):
        lua("while true do end", max_instructions=100_000)
    assert lua("return load(coroutine.wrap(function() coroutine.yield('return ') "
               "coroutine.yield('42') end))()") == 42.0


def _children(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry))
    return children


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the snippet's process in /proc")
@pytest.mark.parametrize("signum", [signal.SIGSEGV, signal.SIGABRT], ids=["SIGSEGV", "SIGABRT"])
def test_a_crashed_runtime_ends_that_run_only(runtime, signum):
    sandbox = shared_sandbox(runtime)
    assert sandbox.run("return 1") == 1.0
    worker = sandbox.worker_pid
    errors = []
    thread = threading.Thread(target=lambda: errors.append(pytest.raises(
        LuaCrashError, sandbox.run, "while true do end", max_instructions=10**15, timeout=30)))
    thread.start()
    deadline = time.monotonic() + 10
    while not _children(worker) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # the snippet is running in the worker's only child
    for child in _children(worker):
        os.kill(child, signum)  # what a LuaJIT segfault or a Lua panic does to that process
    thread.join(30)
    error = errors[0].value
    assert error.signal == signal.Signals(signum).name and "crashed" in str(error)
    assert sandbox.worker_pid == worker and sandbox.run("return 6 * 7") == 42.0


def test_errors_carry_lua_message_and_snippet_line(lua):
    with pytest.raises(LuaError) as error:
        lua("local x = 1\nlocal t = nil\nreturn t.field")
    assert error.value.line == 3 and "attempt to index" in error.value.lua_message
    with pytest.raises(LuaError) as error:  # raised inside the shim, reported at the caller
        lua("local x = torch.Tensor(2, 2)\n\nlocal y = x:narrow(1, 2, 5)")
    assert error.value.line == 3 and "out of range" in str(error.value)
    assert "stack traceback" in error.value.lua_traceback
    with pytest.raises(LuaError, match="^bad argument #3 to 'narrow'"):  # a tail call: no line
        lua("local x = torch.Tensor(2, 2)\nreturn x:narrow(1, 2, 5)")
    with pytest.raises(LuaError, match="snippet:2: boom"):
        lua("\nerror('boom')")
    with pytest.raises(LuaSyntaxError) as error:
        lua("local x = \n\nreturn +")
    assert error.value.line == 3


def test_results_come_back_as_python_values(lua):
    values = lua("""
        return torch.range(1, 6):view(2, 3), torch.Tensor(4, 5):size(), {1, 2, {3}},
               {a = 'text', b = true}, nil, 2.5, torch.Tensor()
    """)
    tensor, size, array, mapping, nothing, number, empty = values
    np.testing.assert_array_equal(tensor, [[1, 2, 3], [4, 5, 6]])
    assert size == (4, 5) and array == [1.0, 2.0, [3.0]] and mapping == {"a": "text", "b": True}
    assert nothing is None and number == 2.5 and empty.size == 0
    assert lua("local x = 1") is None
    module = lua("local m = nn.CustomConv(2) m.weight:fill(0.25) return m")
    np.testing.assert_array_equal(module["weight"], np.full((2, 2), 0.25))
    crafted = lua("local s = torch.ones(3):storage() "
                  "getmetatable(s).__len = function() return 1e9 end "
                  "getmetatable(s).__index = function() return 0 end return s")
    np.testing.assert_array_equal(crafted, [1.0, 1.0, 1.0])  # read raw, metamethods ignored
    with pytest.raises(LuaError, match="cannot return a Lua function"):
        lua("return print")
    with pytest.raises(LuaError, match="contains itself"):
        lua("local t = {} t.t = t return t")


def test_print_goes_to_stdout(lua):
    stream = io.StringIO()
    assert lua("print('hello', 1, torch.Tensor({2}))", stdout=stream) is None
    assert stream.getvalue().startswith("hello\t1\t")
    assert "[torch.DoubleTensor of size 1]" in stream.getvalue()


def test_a_torch7_snippet_computes_what_the_reference_does(lua):
    rng = np.random.default_rng(6)
    x, w = rng.uniform(-0.6, 0.6, (2, 6, 6)), rng.uniform(-0.6, 0.6, (3, 2, 3, 3))
    table = lambda a: repr(a.tolist()).replace("[", "{").replace("]", "}")  # noqa: E731
    out, grad_input = lua(f"""
        local m = nn.CustomConv(2, 3, 3, 3, 1, 1, 1, 1):noBias()
        m.weight:copy(torch.Tensor({table(w)}))
        local x = torch.Tensor({table(x)})
        local out = m:forward(x):clone()
        return out, m:backward(x, torch.ones(out:size()))
    """)
    expected = reference.tanprod_conv2d(x[None], w, padding=1)[0]
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=0)
    grads = reference.tanprod_conv2d_vjp(np.ones((1, *expected.shape)), x[None], w, padding=1)
    np.testing.assert_allclose(grad_input, grads["input"][0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"runtime": "lua4"}, ValueError, "runtime must be one of"),
    ({"code": b"return 1"}, TypeError, "code must be a str"),
    ({"timeout": 0}, ValueError, "timeout must be a positive number"),
    ({"timeout": float("nan")}, ValueError, "timeout must be a positive number"),
    ({"timeout": "1"}, TypeError, "timeout must be a number"),
    ({"max_memory": 2**70}, ValueError, "max_memory must be between 1 and"),
    ({"max_memory": 0}, ValueError, "max_memory must be between 1 and"),
    ({"max_memory": 1.5}, TypeError, "max_memory must be an int"),
    ({"max_memory": True}, TypeError, "max_memory must be an int"),
    ({"max_instructions": -1}, ValueError, "max_instructions must be between 1 and"),
    ({"max_instructions": 1e9}, TypeError, "max_instructions must be an int"),
    ({"stdout": 1}, TypeError, "stdout must be a text stream"),
    ({"files": "model.t7"}, TypeError, "files must be a mapping of paths to modes or a list"),
    ({"files": {"model.t7": "a"}}, ValueError, "the mode of 'model.t7' must be one of"),
    ({"files": [3]}, TypeError, "each path must be a str or a path"),
    ({"files": ["/no/such/file.t7"]}, ValueError, "'/no/such/file.t7' is granted for reading but does not"),
    ({"files": {"/no/such/dir/out.t7": "w"}}, ValueError, "its directory does not exist"),
])
def test_run_checks_its_arguments_before_running(tmp_path, kwargs, error, message):
    kwargs = {"code": f"__crossconv_open('{tmp_path}/ran', 'w'):write('x'):close() return 1",
              "files": {tmp_path / "ran": "w"}, **kwargs}
    with pytest.raises(error, match=message):
        lua_port.run(**kwargs)
    assert not (tmp_path / "ran").exists()  # nothing ran


# ----------------------------------------------------------------------------- files


def test_granted_files_are_read_by_path_relative_or_absolute(lua, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "model.t7").write_bytes(b"\x00\xffT7")
    monkeypatch.chdir(tmp_path)
    read = "return __crossconv_open(...)".replace("...", "'{}', 'rb'")
    files = ["data/model.t7"]
    for path in ("data/model.t7", "./data//model.t7", f"{tmp_path}/data/model.t7"):
        assert lua(read.format(path), files=files) == b"\x00\xffT7"  # not UTF-8: bytes
    with pytest.raises(LuaError, match=r"'data/\.\./data/model.t7': '\.\.' is not allowed"):
        lua(read.format("data/../data/model.t7"), files=files)
    with pytest.raises(LuaError, match="'/etc/passwd' is not a file granted to this snippet"):
        lua(read.format("/etc/passwd"), files=files)
    with pytest.raises(LuaError, match="'data/model.t7' is not a file granted"):
        lua(read.format("data/model.t7"))  # granted to one run only


def test_symlinks_are_resolved_in_the_callers_grant(lua, tmp_path, monkeypatch):
    (tmp_path / "real.t7").write_bytes(b"real")
    (tmp_path / "link.t7").symlink_to(tmp_path / "real.t7")
    (tmp_path / "escape.t7").symlink_to("/etc/passwd")
    monkeypatch.chdir(tmp_path)
    read = "return __crossconv_open('{}')"
    assert lua(read.format("link.t7"), files=["link.t7"]) == "real"
    assert lua(read.format(f"{tmp_path}/real.t7"), files=["link.t7"]) == "real"  # its real path
    with pytest.raises(LuaError, match="'escape.t7' is not a file granted"):  # a link, not granted
        lua(read.format("escape.t7"), files=["link.t7"])


def test_writes_reach_granted_files_only(lua, tmp_path):
    out, data = tmp_path / "out.t7", tmp_path / "in.t7"
    data.write_bytes(b"in")
    save = f"local f = __crossconv_open('{out}', 'wb') f:write('a', 'b') f:write('c') f:close() "
    assert lua(save + f"return __crossconv_open('{out}')", files={out: "rw", data: "r"}) == "abc"
    assert out.read_bytes() == b"abc"
    with pytest.raises(LuaError, match="'.*in.t7' is granted for reading only"):
        lua(f"__crossconv_open('{data}', 'w')", files={out: "w", data: "r"})
    with pytest.raises(LuaError, match="'.*out.t7' is granted for writing only"):
        lua(f"return __crossconv_open('{out}')", files={out: "w"})
    with pytest.raises(LuaError, match="boom"):  # closed before the error: written all the same
        lua(f"local f = __crossconv_open('{out}', 'w') f:write('new') f:close() error('boom')",
            files={out: "w"})
    assert out.read_bytes() == b"new" and data.read_bytes() == b"in"
