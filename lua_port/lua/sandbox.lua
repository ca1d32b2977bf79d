-- The sandbox controller: the first and only trusted chunk of a sandbox runtime
-- (lua_port/sandbox_worker.py). Called with (clock, shim, setlimit): clock() is a wall
-- clock in seconds, shim the Torch7 shim's sources {{name = ..., source = ...}, ...},
-- setlimit(n) lets the runtime allocate n more bytes from now on (0: no limit). Returns
-- {prepare, run, sethook, unpack}. The worker calls prepare() once (the next
-- snippet's environment, built ahead: it then forks a process per snippet, each starting
-- from a copy), and in the process of a snippet run(code, max_instructions, seconds,
-- max_memory, files, cwd), then sethook() whatever happened (a C function: no Lua
-- instruction runs, so it cannot be interrupted).
--
-- Isolation:
-- * The runtime's globals are emptied of os, io, debug, package, require, dofile,
--   loadfile, load(string), module, ffi, jit, python, newproxy, getfenv/setfenv,
--   collectgarbage and string.dump; the controller keeps private references.
-- * Each snippet runs in a fresh environment: copies of the safe base functions and of
--   string/table/math/coroutine/utf8/bit, a fresh torch and nn (the shim loaded into
--   it; require 'torch' / 'nn' return them, any other name fails), print captured,
--   load/loadstring of text only into this environment (a reader function is drained
--   by Lua code first: LuaJIT's parser must never call back into the snippet),
--   setmetatable refusing __gc (a finalizer would run outside any limit),
--   collectgarbage limited to count/collect/step/isrunning, and __crossconv_open, the
--   one way to the files the caller granted to this run (below).
-- * LuaJIT's JIT is off for good in this runtime: the count hook never fires inside
--   compiled traces, and with jit out of reach nothing can turn it back on.
-- * LuaJIT has no limit on C calls nested through Lua callbacks: string.gsub with a
--   function or table replacement and coroutine.resume are counted, and more than
--   C_DEPTH of them nested is a "C stack overflow" error (as Lua 5.4's own check says).
-- * An instruction budget and a wall-clock deadline, checked every STEP instructions by a
--   count hook (on every coroutine: Lua 5.4 keeps hooks per thread). Once exceeded, the
--   hook fires on every instruction and raises each time, so a pcall in the snippet can
--   catch the error but cannot go on (and xpcall skips the snippet's message handler);
--   only the controller's own functions are let through.
-- * The memory limit is lupa's max_memory, set through setlimit around the snippet only
--   (the environment is built before, the report after): an allocation that fails is
--   always inside a protected call, never in lupa's glue. A failed allocation caught by
--   pcall/xpcall/coroutine.resume stops the snippet the same way.
-- * What Lua cannot stop (one long C call such as a backtracking string.find, a crash)
--   ends with the snippet's own process: the worker forks one per snippet, limits it
--   and kills it past the deadline (lua_port/sandbox_worker.py).
--
-- Files: files = {paths = {[absolute path] = key}, entries = {[key] = {mode = "r" | "w" |
-- "rw", data = string | nil}}}, cwd = the caller's working directory. The Python side
-- lists each granted file under the path the caller gave and under its real path
-- (symlinks resolved), both absolute and normalised. __crossconv_open(path, mode) makes a
-- relative path absolute against cwd, refuses '..', drops '.' and empty parts, and looks
-- the result up: mode "r"/"rb" returns the file's bytes as a string, "w"/"wb" a writer
-- with :write(...) and :close(); what a closed writer wrote replaces the file's bytes (a
-- later read sees them) and is returned in the report (written = {[key] = data}).

local clock, shim, setlimit = ...

-- Instructions between hook calls. The clock is read at each (a call into Python, ~0.3 us):
-- a loop of slow C calls (string.rep of megabytes) still meets its deadline closely.
local STEP = 1000
local OUTPUT_LIMIT = 1000000
-- Nested C calls through Lua callbacks allowed (LuaJIT has no limit; Lua 5.4's is 200).
local C_DEPTH = 150

local debug_sethook, debug_getinfo, traceback = debug.sethook, debug.getinfo, debug.traceback
local load, error, type, next, select, tostring = load, error, type, next, select, tostring
local getmetatable, setmetatable, rawget, pcall, xpcall = getmetatable, setmetatable, rawget, pcall, xpcall
local collect = collectgarbage
local concat, format = table.concat, string.format
local gsub, gmatch, find, sub = string.gsub, string.gmatch, string.find, string.sub
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

-- C calls nested through Lua callbacks: LuaJIT would run off its C stack (a crash).
local cDepth = 0

local function enterC(level)
  if cDepth >= C_DEPTH then
    error("C stack overflow", level + 1)
  end
  cDepth = cDepth + 1
end

local function leaveC(ok, ...)
  cDepth = cDepth - 1
  if not ok then
    error((...), 0)
  end
  return ...
end

-- string.gsub calls a function or table replacement from C: count it (the raw call, with
-- its own protected call, so an error unwinding through it still leaves the count right).
local function guardedGsub(s, pattern, replacement, n)
  local kind = type(replacement)
  if kind ~= "function" and kind ~= "table" then
    return gsub(s, pattern, replacement, n)
  end
  enterC(2)
  return leaveC(pcall(gsub, s, pattern, replacement, n))
end

-- The real string table: s:gsub(...) reaches it through the string metatable.
string.gsub = guardedGsub

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
  local function resumed(...)
    cDepth = cDepth - 1
    return checkMemory(...)
  end
  co.resume = function(thread, ...)
    if type(thread) ~= "thread" then
      error(format("bad argument #1 to 'resume' (coroutine expected, got %s)", type(thread)), 2)
    end
    enterC(2)
    return resumed(resume(thread, ...))
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

-- __crossconv_open for one run (see the header) and the table of what it wrote.
local function fileOpener(files, cwd)
  local paths, entries = files and files.paths or {}, files and files.entries or {}
  local written = {}

  local function lookup(path)
    if type(path) ~= "string" then
      error(format("bad argument #1 to '__crossconv_open' (a path string expected, got %s)", type(path)), 3)
    end
    if path == "" or find(path, "\0", 1, true) then
      error(format("bad argument #1 to '__crossconv_open' (not a path: %q)", path), 3)
    end
    local full = sub(path, 1, 1) == "/" and path or ((cwd or "") .. "/" .. path)
    local parts = {}
    for part in gmatch(full, "[^/]+") do
      if part == ".." then
        error(format("'%s': '..' is not allowed in a sandbox path", path), 3)
      elseif part ~= "." then
        parts[#parts + 1] = part
      end
    end
    local key = paths["/" .. concat(parts, "/")]
    if key == nil then
      error(format("'%s' is not a file granted to this snippet (lua_port.run(files=...))", path), 3)
    end
    return key, entries[key]
  end

  local function open(path, mode)
    local key, entry = lookup(path)
    if mode == nil or mode == "r" or mode == "rb" then
      if not find(entry.mode, "r", 1, true) then
        error(format("'%s' is granted for writing only", path), 2)
      end
      if entry.data == nil then
        error(format("'%s' does not exist", path), 2)
      end
      return entry.data
    elseif mode ~= "w" and mode ~= "wb" then
      error(format("bad argument #2 to '__crossconv_open' (mode 'r', 'rb', 'w' or 'wb' expected, got %s)",
        tostring(mode)), 2)
    end
    if not find(entry.mode, "w", 1, true) then
      error(format("'%s' is granted for reading only", path), 2)
    end
    local pieces, closed = {}, false
    local writer = {}
    function writer.write(self, ...)
      if closed then
        error(format("'%s' is closed", path), 2)
      end
      for i = 1, select("#", ...) do
        local piece = select(i, ...)
        if type(piece) ~= "string" then
          error(format("bad argument #%d to 'write' (string expected, got %s)", i, type(piece)), 2)
        end
        pieces[#pieces + 1] = piece
      end
      return self
    end
    function writer.close()
      if not closed then
        closed = true
        entry.data = concat(pieces)
        written[key] = entry.data
      end
      return true
    end
    return writer
  end

  return open, written
end

-- The run's __crossconv_open (the environment's one calls it, so code that keeps a
-- reference from load time reaches the current run's files).
local currentOpen = function(path)
  error(format("'%s' is not a file granted to this snippet (lua_port.run(files=...))", tostring(path)), 3)
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
  env.__crossconv_open = function(path, mode)
    return currentOpen(path, mode)
  end
  env.load = function(chunk, name, mode, scope)
    if mode ~= nil and mode ~= "t" then
      return nil, "lua_port's sandbox loads text chunks only"
    end
    if type(chunk) == "function" then
      -- Drained here, by Lua code under the hook: LuaJIT's parser never calls the
      -- snippet (a stop raised inside the parser's reader turns LuaJIT's hooks off).
      local pieces, reader = {}, chunk
      while true do
        local ok, piece = checkMemory(pcall(reader))
        if not ok then
          return nil, piece
        elseif piece == nil or piece == "" then
          break
        elseif type(piece) ~= "string" then
          return nil, "reader function must return a string"
        end
        pieces[#pieces + 1] = piece
      end
      chunk = concat(pieces)
    elseif type(chunk) ~= "string" then
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
  local clone, typename = tensorClass.clone, env.torch.typename
  -- Every tensor and storage type of the shim (captured before the snippet runs).
  local isTensor, isStorage = env.torch.isTensor, env.torch.isStorage

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

  -- An array of numbers (keys exactly 1..n) as a plain table of its numbers, read raw;
  -- nil for any other table. Python reads it in chunks, as a storage.
  local function numberArray(t)
    local count = 0
    for k, v in next, t do
      if type(k) ~= "number" or type(v) ~= "number" then
        return nil
      end
      count = count + 1
    end
    if count == 0 then
      return nil
    end
    local data = {}
    for i = 1, count do
      local v = rawget(t, i)
      if v == nil then
        return nil
      end
      data[i] = v
    end
    return data, count
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
    if isTensor(value) then
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
    elseif isStorage(value) then
      local data, count = numbers(value)
      return { kind = class == longStorageClass and "sizes" or "storage", data = data, count = count }
    end
    if seen[value] then
      error("cannot return a table that contains itself to Python", 0)
    end
    if depth > 64 then
      error("cannot return tables nested more than 64 deep to Python", 0)
    end
    local object = typename(value) ~= nil
    if not object then
      local data, count = numberArray(value)
      if data then
        return { kind = "numbers", data = data, count = count }
      end
    end
    seen[value] = true
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

-- The environment of the next run and its exporter, built ahead (see prepare).
local prepared

--- Build the next run's environment now: a worker that forks a process per snippet
--- builds it once, before forking, and every snippet starts from a copy of it.
local function prepare()
  local env = newEnvironment()
  prepared = { env = env, export = exporter(env) }
  collect("collect")
end

local function run(code, maxInstructions, maxSeconds, maxMemory, files, cwd)
  output, outputSize, cDepth = {}, 0, 0
  local written
  currentOpen, written = fileOpener(files, cwd)
  if not prepared then
    prepare()
  end
  local env, export = prepared.env, prepared.export
  prepared = nil
  local fn, results
  local body = function()
    results = pack(fn())
  end
  budget, seconds, used, stopped, stopKind = maxInstructions, maxSeconds, 0, nil, nil
  setlimit(maxMemory)
  local ok, err = nil, nil
  fn, err = load(code, "=snippet", "t", env)
  local compiled = fn ~= nil
  env = nil
  if compiled then
    deadline = clock() + maxSeconds
    debug_sethook(hook, "", STEP)
    ok, err = xpcall(body, handler)
    if ok and not stopped then
      ok, err = pcall(export, results)
    end
    debug_sethook()
  end
  setlimit(0)
  -- No limit from here on: the report is built outside the snippet's allowance.
  local count = ok and results.n or 0
  body, fn, export, results = nil, nil, nil, nil
  local report = { ok = false, output = concat(output), written = written }
  if stopped then
    report.kind, report.message = stopKind, stopped
  elseif not compiled then
    report.kind, report.message = err == MEMORY and "memory" or "syntax", err
  elseif not ok then
    if type(err) == "table" then
      report.kind, report.message, report.traceback = "error", err.message, err.traceback
    else
      report.kind, report.message = err == MEMORY and "memory" or "error", tostring(err)
    end
  else
    report.ok, report.values, report.count = true, err, count
  end
  return report
end

exempt[run] = true
exempt[handler] = true

return { prepare = prepare, run = run, sethook = debug_sethook, unpack = unpack }
