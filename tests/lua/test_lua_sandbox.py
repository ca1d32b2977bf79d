"""lua_port.run: the sandbox (no way out), the limits (loops, memory, pcall, coroutines,
LuaJIT's JIT), errors with their line, and results as Python values."""

import io
import time

import numpy as np
import pytest

import lua_port
import reference
from lua_port import LuaError, LuaLimitError, LuaMemoryError, LuaSyntaxError, Sandbox
from lua_port.runtimes import UNSAFE_GLOBALS, trusted

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
def test_a_runaway_snippet_is_stopped_and_the_runtime_still_works(runtime, runaway):
    sandbox = Sandbox(runtime)
    start = time.monotonic()
    with pytest.raises(LuaLimitError, match="instructions"):
        sandbox.run(RUNAWAYS[runaway], max_instructions=2_000_000, timeout=30, max_memory=2**30)
    assert time.monotonic() - start < 10
    assert sandbox.run("local x = 0 for i = 1, 100 do x = x + i end return x") == 5050.0
    with pytest.raises(LuaLimitError):  # the limits still hold
        sandbox.run("while true do end", max_instructions=100_000)


def test_the_wall_clock_limit_stops_a_snippet_with_budget_left(runtime):
    sandbox = Sandbox(runtime)
    start = time.monotonic()
    with pytest.raises(LuaLimitError, match="time limit of 0.2 s"):
        sandbox.run("while true do end", max_instructions=10**15, timeout=0.2)
    assert time.monotonic() - start < 5
    assert sandbox.run("return 6 * 7") == 42.0


@pytest.mark.parametrize("bomb", [
    "local t = {} while true do t[#t + 1] = string.rep('x', 100000) .. #t end",
    "local s = 'x' while true do s = s .. s end",
    "local t = {} for i = 1, 1e9 do t[i] = {i} end",
    "local t = {} while true do pcall(function() t[#t + 1] = torch.Tensor(100000) end) end",
])
def test_a_memory_bomb_is_stopped_and_the_runtime_still_works(runtime, bomb):
    sandbox = Sandbox(runtime)
    baseline = sandbox.lua.get_memory_used()
    with pytest.raises((LuaMemoryError, LuaLimitError)) as error:
        sandbox.run(bomb, max_instructions=10**9, timeout=30, max_memory=32 * 2**20)
    assert isinstance(error.value, MemoryError) or "memory" in str(error.value)
    assert sandbox.lua.get_memory_used() < baseline + 4 * 2**20  # the garbage is gone
    assert sandbox.run("return torch.ones(3):sum()") == 3.0


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


def test_run_checks_its_arguments():
    with pytest.raises(ValueError, match="runtime must be one of"):
        lua_port.run("return 1", runtime="lua4")
    with pytest.raises(TypeError, match="code must be a str"):
        lua_port.run(b"return 1")
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        lua_port.run("return 1", timeout=0)
