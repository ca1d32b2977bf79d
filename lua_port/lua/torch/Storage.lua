-- torch.DoubleStorage and torch.LongStorage: 1-based arrays of numbers.
--
-- A storage IS its Lua array (elements at 1..n, no holes), with the class as metatable,
-- so s[i] and #s are plain table operations and kernels loop over it directly. Reading or
-- writing outside 1..n reaches the class's __index__/__newindex__ and raises Torch7's
-- "index out of bounds". x:size() returns a LongStorage, as in Torch7.

local util = torch._util

local function define(name)
  local Storage = torch.class(name)

  function Storage:__init(arg)
    if type(arg) == "table" then
      for i = 1, #arg do
        local v = arg[i]
        if type(v) ~= "number" then
          error(string.format("bad argument #1 to '%s' (element %d is a %s, expected a number)",
            name, i, type(v)), 3)
        end
        rawset(self, i, v)
      end
    elseif arg ~= nil then
      local n = util.checkSize(arg, 1, name, 3)
      for i = 1, n do
        rawset(self, i, 0)
      end
    end
  end

  function Storage:__index__(i)
    if type(i) == "number" then
      error(string.format("index out of bounds: %s of a %s of size %d", util.num(i), name, #self), 3)
    end
    return nil, false
  end

  function Storage:__newindex__(i)
    if type(i) == "number" then
      error(string.format("index out of bounds: %s of a %s of size %d", util.num(i), name, #self), 3)
    end
    return false
  end

  function Storage:size()
    return #self
  end

  function Storage:fill(value)
    for i = 1, #self do
      self[i] = value
    end
    return self
  end

  function Storage:resize(n)
    n = util.checkSize(n, 1, "resize", 2)
    for i = #self + 1, n do
      rawset(self, i, 0)
    end
    for i = #self, n + 1, -1 do
      rawset(self, i, nil)
    end
    return self
  end

  function Storage:copy(src)
    if #src ~= #self then
      error(string.format("bad argument #1 to 'copy' (size mismatch: %d and %d)", #self, #src), 2)
    end
    for i = 1, #self do
      self[i] = src[i]
    end
    return self
  end

  function Storage:totable()
    local t = {}
    for i = 1, #self do
      t[i] = self[i]
    end
    return t
  end

  function Storage:__tostring__()
    local lines = {}
    for i = 1, #self do
      lines[i] = " " .. util.num(self[i])
    end
    lines[#lines + 1] = string.format("[%s of size %d]", name, #self)
    return table.concat(lines, "\n")
  end
end

define("torch.DoubleStorage")
define("torch.LongStorage")

local DoubleStorage = torch.getmetatable("torch.DoubleStorage")
local LongStorage = torch.getmetatable("torch.LongStorage")

--- Adopt the Lua array `data` (numbers at 1..n) as a DoubleStorage without copying.
function util.adoptStorage(data)
  return setmetatable(data, DoubleStorage)
end

--- A LongStorage holding the numbers in the Lua array `values`.
function util.longStorage(values)
  local s = setmetatable({}, LongStorage)
  for i = 1, #values do
    rawset(s, i, values[i])
  end
  return s
end

function torch.isStorage(obj)
  local mt = getmetatable(obj)
  return mt == DoubleStorage or mt == LongStorage
end
