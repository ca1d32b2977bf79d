-- Helpers shared by the shim's files (torch._util): argument checks that raise Torch7's
-- kind of message, and number formatting that reads the same on LuaJIT and Lua 5.4.
--
-- `level` arguments follow error(): the caller passes the level of ITS caller, so the
-- message points at the line of the user's code that made the bad call.

local util = {}
torch._util = util

local floor, huge = math.floor, math.huge

function util.isInt(v)
  return type(v) == "number" and v == floor(v) and v > -huge and v < huge
end

--- A number as text: integers without a fractional part on every runtime.
function util.num(v)
  if util.isInt(v) and v > -2 ^ 53 and v < 2 ^ 53 then
    return string.format("%d", v)
  end
  return string.format("%.6g", v)
end

function util.argError(argn, fname, message, level)
  error(string.format("bad argument #%d to '%s' (%s)", argn, fname, message), level + 1)
end

--- A size (integer >= 0), or a "invalid size" error.
function util.checkSize(v, argn, fname, level)
  if not util.isInt(v) or v < 0 then
    util.argError(argn, fname, "invalid size " .. (type(v) == "number" and util.num(v) or type(v)),
      level + 1)
  end
  return v
end

--- An integer (Torch7 truncates fractional indices toward zero, as its C casts do).
function util.checkIndex(v, argn, fname, level)
  if type(v) ~= "number" or v ~= v or v == huge or v == -huge then
    util.argError(argn, fname, "number expected, got " .. type(v), level + 1)
  end
  return v >= 0 and floor(v) or -floor(-v)
end

function util.sizeString(sizes)
  if #sizes == 0 then
    return "empty"
  end
  local parts = {}
  for i = 1, #sizes do
    parts[i] = util.num(sizes[i])
  end
  return table.concat(parts, "x")
end

util.unpack = table.unpack or unpack

-- ----------------------------------------------------------------------------- element types

local abs, log = math.abs, math.log
local LOG2 = log(2)
local FLOAT_MAX = 3.4028234663852886e38

--- x rounded to the nearest float32 (ties to even), as a C cast to float does.
function util.toFloat(x)
  if x ~= x or x == 0 or x == huge or x == -huge then
    return x
  end
  local a = abs(x)
  local e = floor(log(a) / LOG2)
  if 2 ^ e > a then
    e = e - 1
  elseif 2 ^ (e + 1) <= a then
    e = e + 1
  end
  if e < -126 then
    e = -126  -- subnormal floats: one fixed quantum, 2^-149
  end
  local quantum = 2 ^ (e - 23)
  local m = a / quantum
  local r = floor(m)
  local rest = m - r
  if rest > 0.5 or (rest == 0.5 and r % 2 == 1) then
    r = r + 1
  end
  local y = r * quantum
  if y > FLOAT_MAX then
    y = huge
  end
  return x < 0 and -y or y
end

-- An integer type of `bits` bits: truncation toward zero, then two's complement wrap.
local function integer(bits, signed)
  local span = 2 ^ bits
  local low = signed and -span / 2 or 0
  return function(x)
    if x ~= x or x == huge or x == -huge then
      return 0
    end
    x = x >= 0 and floor(x) or -floor(-x)
    if x < low or x >= low + span then
      x = (x - low) % span + low
    end
    return x
  end
end

--- Conversion of a Lua number into each element type (nil: double, no conversion).
util.CONVERT = {
  Float = util.toFloat,
  Long = function(x)
    if x ~= x or x == huge or x == -huge then
      return 0
    end
    return x >= 0 and floor(x) or -floor(-x)
  end,
  Int = integer(32, true),
  Short = integer(16, true),
  Char = integer(8, true),
  Byte = integer(8, false),
}

--- A deep copy of v: tables (tensors, storages, modules) copied with their metatables,
--- references shared inside v shared in the copy, cycles kept; other values as they are.
function util.deepCopy(v, seen)
  if type(v) ~= "table" then
    return v
  end
  seen = seen or {}
  if seen[v] then
    return seen[v]
  end
  local copy = {}
  seen[v] = copy
  for key, value in next, v do
    rawset(copy, util.deepCopy(key, seen), util.deepCopy(value, seen))
  end
  return setmetatable(copy, getmetatable(v))
end

--- fn(...) with the metatables of `storages` removed while it runs: LuaJIT checks a
--- __newindex metamethod on every store into a table that has one, so kernels writing
--- into bare tables run about twice as fast. Restored whatever happens.
function util.bare(storages, fn, ...)
  local classes = {}
  for i = 1, #storages do
    classes[i] = getmetatable(storages[i])
    setmetatable(storages[i], nil)
  end
  local ok, err = pcall(fn, ...)
  for i = #storages, 1, -1 do
    setmetatable(storages[i], classes[i])
  end
  if not ok then
    error(err, 0)
  end
end

local exp = math.exp

--- exp(x) - 1, accurate for small x too (Kahan's formula).
function util.expm1(x)
  local u = exp(x)
  if u == 1 then
    return x
  end
  local d = u - 1
  if d == -1 or u == huge then
    return d
  end
  return d * x / log(u)
end

--- tanh(x) to a few ulps on every runtime (Lua 5.4 has no math.tanh).
util.tanh = math.tanh or function(x)
  if x > 20 then
    return 1
  elseif x < -20 then
    return -1
  end
  local e = util.expm1(2 * x)
  return e / (e + 2)
end

--- The element types, Torch7's names, in the order Torch7 lists them.
util.TYPES = { "Double", "Float", "Long", "Int", "Short", "Char", "Byte" }

return util
