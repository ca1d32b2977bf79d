-- The sandbox controller: the first and only trusted chunk of a sandbox runtime
-- (lua_port.sandbox). Called with (clock, shim): clock() is a wall clock in seconds, shim
-- the Torch7 shim's sources {{name = ..., source = ...}, ...}. Returns {run, sethook,
-- collect, unpack}; Python calls run(code, max_instructions, seconds) and, whatever
-- happens, sethook() and collect("collect") afterwards (C functions: no Lua instruction
-- runs, so neither can be interrupted).
--
-- Isolation:
-- * The runtime's globals are emptied of os, io, debug, package, require, dofile,
--   loadfile, load(string), module, ffi, jit, python, newproxy, getfenv/setfenv,
--   collectgarbage and string.dump; the controller keeps private references.
-- * Each snippet runs in a fresh environment: copies of the safe base functions and of
--   string/table/math/coroutine/utf8/bit, a fresh torch and nn (the shim loaded into
--   it; require 'torch' / 'nn' return them, any other name fails), print captured,
--   load/loadstring of text only into this environment,
--   setmetatable refusing __gc (a finalizer would run outside any limit),
--   collectgarbage limited to count/collect/step/isrunning.
-- * LuaJIT's JIT is off for good in this runtime: the count hook never fires inside
--   compiled traces, and with jit out of reach nothing can turn it back on.
-- * An instruction budget and a wall-clock deadline, checked every STEP instructions by a
--   count hook (on every coroutine: Lua 5.4 keeps hooks per thread). Once exceeded, the
--   hook fires on every instruction and raises each time, so a pcall in the snippet can
--   catch the error but cannot go on (and xpcall skips the snippet's message handler);
--   only the controller's own functions are let through.
-- * The memory limit is lupa's max_memory (set by Python around each run); a failed
--   allocation caught by pcall/xpcall/coroutine.resume stops the snippet the same way.

local clock, shim = ...

-- Instructions between hook calls. The clock is read at each (a call into Python, ~0.3 us):
-- a loop of slow C calls (string.rep of megabytes) still meets its deadline closely.
local STEP = 1000
local OUTPUT_LIMIT = 1000000

local debug_sethook, debug_getinfo, traceback = debug.sethook, debug.getinfo, debug.traceback
local load, error, type, next, select, tostring = load, error, type, next, select, tostring
local getmetatable, setmetatable, rawget, pcall, xpcall = getmetatable, setmetatable, rawget, pcall, xpcall
local collect = collectgarbage
local concat, format = table.concat, string.format
local unpack = table.unpack or unpack
local create, resume = coroutine.create, coroutine.resume
local luajit = type(jit) == "table"
local G = _G

if luajit then
  jit.off()
  jit.flush()
end

-- ----------------------------------------------------------------------------- globals

string.dump = nil
getmetatable("").__metatable = false  -- the real string table stays out of reach

local BASE = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "xpcall", "select", "tonumber", "tostring",
  "type", "unpack", "rawequal", "rawget", "rawset", "rawlen", "getmetatable", "_VERSION",
}
local LIBRARIES = { "string", "table", "math", "coroutine", "utf8", "bit" }
local base, libraries = {}, {}
for _, name in ipairs(BASE) do
  base[name] = G[name]
end
for _, name in ipairs(LIBRARIES) do
  libraries[name] = G[name]
end
for _, name in ipairs({
  "os", "io", "debug", "package", "require", "dofile", "loadfile", "load", "loadstring", "module",
  "python", "ffi", "jit", "newproxy", "getfenv", "setfenv", "collectgarbage", "gcinfo", "print",
  "warn",
}) do
  G[name] = nil
end

-- ----------------------------------------------------------------------------- limits

local budget, deadline, seconds, used, stopped, stopKind = 0, 0, 0, 0, nil, nil
local exempt = {}
local MEMORY = "not enough memory"  -- the message of a failed allocation, LuaJIT and 5.4

local function hook()
  if stopped then
    local info = debug_getinfo(2, "f")
    if info and exempt[info.func] then
      return
    end
    error(stopped, 0)
  end
  used = used + STEP
  if used > budget then
    stopped = format("snippet stopped: it ran past its budget of %.0f Lua instructions", budget)
  elseif clock() > deadline then
    stopped = format("snippet stopped: it ran past its time limit of %g s", seconds)
  else
    return
  end
  stopKind = "limit"
  debug_sethook(hook, "", 1)
  error(stopped, 0)
end

-- A failed allocation caught by the snippet (pcall, xpcall, coroutine.resume) stops it
-- like a spent budget: otherwise it could retry at the limit until the time runs out.
local function checkMemory(ok, ...)
  if not ok and (...) == MEMORY and not stopped then
    stopped, stopKind = "snippet stopped: " .. MEMORY, "memory"
    debug_sethook(hook, "", 1)
  end
  return ok, ...
end

-- ----------------------------------------------------------------------------- environment

local function copy(t)
  local c = {}
  for k, v in next, t do
    c[k] = v
  end
  return c
end

local function pack(...)
  return { n = select("#", ...), ... }
end

local output, outputSize

local function capturedPrint(...)
  local parts = {}
  for i = 1, select("#", ...) do
    parts[i] = tostring((select(i, ...)))
  end
  local line = concat(parts, "\t") .. "\n"
  if outputSize + #line > OUTPUT_LIMIT then
    if outputSize <= OUTPUT_LIMIT then
      output[#output + 1] = "[lua_port: output truncated]\n"
      outputSize = OUTPUT_LIMIT + 1
    end
    return
  end
  output[#output + 1] = line
  outputSize = outputSize + #line
end

local function safeSetmetatable(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("__gc metamethods are not allowed in lua_port's sandbox", 2)
  end
  return setmetatable(t, mt)
end

local GC_OPTIONS = { collect = true, count = true, step = true, isrunning = true }

local function safeCollectgarbage(option, ...)
  option = option or "collect"
  if not GC_OPTIONS[option] then
    error(format("collectgarbage('%s') is not allowed in lua_port's sandbox", tostring(option)), 2)
  end
  return collect(option, ...)
end

local function guardedCoroutines(library)
  local co = copy(library)
  co.create = function(f)
    local thread = create(f)
    if not luajit then
      debug_sethook(thread, hook, "", STEP)  -- Lua 5.4 keeps hooks per thread (LuaJIT: global)
    end
    return thread
  end
  co.resume = function(thread, ...)
    return checkMemory(resume(thread, ...))
  end
  co.wrap = function(f)
    local thread = co.create(f)
    return function(...)
      local results = pack(co.resume(thread, ...))
      if not results[1] then
        error(results[2], 0)
      end
      return unpack(results, 2, results.n)
    end
  end
  return co
end

local function newEnvironment()
  local env = copy(base)
  for name, library in next, libraries do
    env[name] = copy(library)
  end
  env.coroutine = guardedCoroutines(libraries.coroutine)
  env._G = env
  env.print = capturedPrint
  env.setmetatable = safeSetmetatable
  -- LuaJIT runs a message handler with hooks off when the error came from a hook: once
  -- the snippet is stopped, its handlers are skipped (they could loop unchecked).
  env.xpcall = function(f, messageHandler, ...)
    return checkMemory(xpcall(f, function(e)
      if stopped or e == MEMORY then
        return e
      end
      return messageHandler(e)
    end, ...))
  end
  env.pcall = function(f, ...)
    return checkMemory(pcall(f, ...))
  end
  env.collectgarbage = safeCollectgarbage
  env.load = function(chunk, name, mode, scope)
    if mode ~= nil and mode ~= "t" then
      return nil, "lua_port's sandbox loads text chunks only"
    end
    if type(chunk) ~= "string" and type(chunk) ~= "function" then
      return nil, "load: a string or a reader function expected"
    end
    return load(chunk, name, "t", scope or env)
  end
  if luajit then
    env.loadstring = function(chunk, name)
      return env.load(chunk, name)
    end
  end
  for i = 1, #shim do
    local fn = assert(load(shim[i].source, shim[i].name, "t", env))
    fn()
  end
  -- Pasted Torch7 code starts with require 'nn': the loaded packages, and nothing else.
  local packages = { torch = env.torch, nn = env.nn }
  env.require = function(name)
    local package = packages[name]
    if package == nil then
      error(format("module '%s' is not available: lua_port's sandbox provides only 'torch' and 'nn'",
        tostring(name)), 2)
    end
    return package
  end
  return env
end

-- ----------------------------------------------------------------------------- results

-- Lua values as plain tables Python can read without running Lua code: tensors as
-- {kind = "tensor", sizes, data}, tables as {kind = "table" | "object", keys, values}.
-- Inside torch-class objects (modules), values with no Python form (functions) are left out.
local function exporter(env)
  local tensorClass = env.torch.getmetatable("torch.DoubleTensor")
  local longStorageClass = env.torch.getmetatable("torch.LongStorage")
  local doubleStorageClass = env.torch.getmetatable("torch.DoubleStorage")
  local clone, typename = tensorClass.clone, env.torch.typename

  -- The numbers at 1, 2, ... of a storage, read raw into a plain table (a snippet may
  -- have given the storage class __index or __len metamethods).
  local function numbers(storage)
    local data, i = {}, 1
    while true do
      local v = rawget(storage, i)
      if v == nil then
        return data, i - 1
      end
      if type(v) ~= "number" then
        error("cannot return a storage holding a " .. type(v) .. " to Python", 0)
      end
      data[i], i = v, i + 1
    end
  end

  local function export(value, depth, seen, lenient)
    local kind = type(value)
    if kind == "nil" or kind == "boolean" or kind == "number" or kind == "string" then
      return value
    end
    if kind ~= "table" then
      if lenient then
        return nil
      end
      error(format("cannot return a Lua %s to Python", kind), 0)
    end
    local class = getmetatable(value)
    if class == tensorClass then
      local c = clone(value)
      local data, count = numbers(c._storage)
      local sizes, expected = {}, 1
      for i, size in ipairs(c._size) do
        if type(size) ~= "number" or size < 0 or size % 1 ~= 0 then
          error("cannot return a tensor with invalid sizes to Python", 0)
        end
        sizes[i], expected = size, expected * size
      end
      if count ~= (#sizes > 0 and expected or 0) then
        error("cannot return a tensor whose storage does not match its sizes to Python", 0)
      end
      return { kind = "tensor", sizes = sizes, data = data, count = count }
    elseif class == longStorageClass or class == doubleStorageClass then
      local data, count = numbers(value)
      return { kind = class == longStorageClass and "sizes" or "storage", data = data, count = count }
    end
    if seen[value] then
      error("cannot return a table that contains itself to Python", 0)
    end
    if depth > 64 then
      error("cannot return tables nested more than 64 deep to Python", 0)
    end
    seen[value] = true
    local object = typename(value) ~= nil
    local keys, values = {}, {}
    for k, v in next, value do
      local keyKind = type(k)
      if keyKind == "string" or keyKind == "number" or keyKind == "boolean" then
        local exported = export(v, depth + 1, seen, lenient or object)
        if exported ~= nil then
          keys[#keys + 1] = k
          values[#values + 1] = exported
        end
      elseif not (lenient or object) then
        error(format("cannot return a table with a %s key to Python", keyKind), 0)
      end
    end
    seen[value] = nil
    return { kind = object and "object" or "table", keys = keys, values = values, count = #keys }
  end

  return function(results)
    local exported = {}
    for i = 1, results.n do
      exported[i] = { value = export(results[i], 1, {}, false) }
    end
    return exported
  end
end

-- ----------------------------------------------------------------------------- running

local function handler(err)
  if stopped then
    return stopped
  end
  if type(err) ~= "string" then
    local ok, text = pcall(tostring, err)
    err = ok and type(text) == "string" and text or ("(error object is a " .. type(err) .. " value)")
  end
  return { message = err, traceback = traceback("", 2) }
end

local function run(code, maxInstructions, maxSeconds)
  output, outputSize = {}, 0
  local env = newEnvironment()
  local export = exporter(env)
  local fn, syntax = load(code, "=snippet", "t", env)
  env = nil
  if not fn then
    return { ok = false, kind = "syntax", message = syntax, output = concat(output) }
  end
  local results
  local body = function()
    results = pack(fn())
  end
  budget, seconds, used, stopped, stopKind = maxInstructions, maxSeconds, 0, nil, nil
  deadline = clock() + maxSeconds
  debug_sethook(hook, "", STEP)
  local ok, err = xpcall(body, handler)
  body, fn = nil, nil
  local count = ok and results.n or 0
  if ok and not stopped then
    ok, err = pcall(export, results)
  end
  export, results = nil, nil
  debug_sethook()
  if stopped then
    return { ok = false, kind = stopKind, message = stopped, output = concat(output) }
  end
  if not ok then
    collect("collect")
    if type(err) == "table" then
      return { ok = false, kind = "error", message = err.message, traceback = err.traceback,
        output = concat(output) }
    end
    return { ok = false, kind = err == MEMORY and "memory" or "error",
      message = tostring(err), output = concat(output) }
  end
  return { ok = true, values = err, count = count, output = concat(output) }
end

exempt[run] = true
exempt[handler] = true

return { run = run, sethook = debug_sethook, collect = collect, unpack = unpack }
