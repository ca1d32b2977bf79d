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

return util
