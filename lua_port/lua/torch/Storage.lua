-- torch.DoubleStorage, torch.FloatStorage, torch.LongStorage, torch.IntStorage,
-- torch.ShortStorage, torch.CharStorage, torch.ByteStorage: 1-based arrays of numbers.
--
-- A storage IS its Lua array (elements at 1..n, no holes), with the class as metatable,
-- so s[i] and #s are plain table operations and kernels loop over it directly. Reading or
-- writing outside 1..n reaches the class's __index__/__newindex__ and raises Torch7's
-- "index out of bounds". x:size() returns a LongStorage, as in Torch7.
--
-- Every element is a Lua number (a double). A storage of another type converts what is
-- put into it through its constructor, fill, copy and conversions (float32 rounding for
-- Float, truncation and wrap-around for the integer types, as C casts do); a plain
-- s[i] = v stores v as given. The classes share DoubleStorage's methods.

local util = torch._util

local STORAGES = {}        -- class metatable -> element type name ("Double", "Float", ...)
local CONVERT = {}         -- class metatable -> conversion function (nil for Double)
util.storageClass = {}     -- element type name -> class metatable

local Storage = torch.class("torch.DoubleStorage")

local function nameOf(self)
  return rawget(getmetatable(self), "__typename")
end

function Storage:__init(arg)
  local convert = CONVERT[getmetatable(self)]
  if type(arg) == "table" then
    for i = 1, #arg do
      local v = arg[i]
      if type(v) ~= "number" then
        error(string.format("bad argument #1 to '%s' (element %d is a %s, expected a number)",
          nameOf(self), i, type(v)), 3)
      end
      rawset(self, i, convert and convert(v) or v)
    end
  elseif arg ~= nil then
    local n = util.checkSize(arg, 1, nameOf(self), 3)
    for i = 1, n do
      rawset(self, i, 0)
    end
  end
end

function Storage:__index__(i)
  if type(i) == "number" then
    error(string.format("index out of bounds: %s of a %s of size %d", util.num(i), nameOf(self), #self), 3)
  end
  return nil, false
end

function Storage:__newindex__(i)
  if type(i) == "number" then
    error(string.format("index out of bounds: %s of a %s of size %d", util.num(i), nameOf(self), #self), 3)
  end
  return false
end

function Storage:size()
  return #self
end

function Storage:elementSize()
  return util.ELEMENT_SIZE[STORAGES[getmetatable(self)]]
end

function Storage:fill(value)
  local convert = CONVERT[getmetatable(self)]
  if convert then
    value = convert(value)
  end
  for i = 1, #self do
    rawset(self, i, value)
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
  local convert = CONVERT[getmetatable(self)]
  for i = 1, #self do
    local v = src[i]
    rawset(self, i, convert and convert(v) or v)
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

--- CharStorage / ByteStorage: s:string(text) fills s with text's bytes (returns s);
--- s:string() returns the bytes as a Lua string.
function Storage:string(text)
  local kind = STORAGES[getmetatable(self)]
  if kind ~= "Char" and kind ~= "Byte" then
    error(string.format("'string' is a method of torch.CharStorage and torch.ByteStorage, not %s",
      nameOf(self)), 2)
  end
  if text == nil then
    local parts, chunk = {}, 4000
    for first = 1, #self, chunk do
      local bytes = {}
      for i = first, math.min(#self, first + chunk - 1) do
        bytes[#bytes + 1] = self[i] % 256
      end
      parts[#parts + 1] = string.char(util.unpack(bytes))
    end
    return table.concat(parts)
  end
  self:resize(#text)
  local convert = CONVERT[getmetatable(self)]
  for i = 1, #text do
    rawset(self, i, convert(string.byte(text, i)))
  end
  return self
end

function Storage:__tostring__()
  local lines = {}
  for i = 1, #self do
    lines[i] = " " .. util.num(self[i])
  end
  lines[#lines + 1] = string.format("[%s of size %d]", nameOf(self), #self)
  return table.concat(lines, "\n")
end

--- Bytes per element in Torch7's files (x86_64: long is 8 bytes).
util.ELEMENT_SIZE = { Double = 8, Float = 4, Long = 8, Int = 4, Short = 2, Char = 1, Byte = 1 }

for _, kind in ipairs(util.TYPES) do
  local mt = kind == "Double" and Storage or torch.class("torch." .. kind .. "Storage", "torch.DoubleStorage")
  if kind ~= "Double" then
    rawset(mt, "__sibling", true)  -- shares the methods; not a subclass for torch.isTypeOf
  end
  STORAGES[mt], CONVERT[mt], util.storageClass[kind] = kind, util.CONVERT[kind], mt
end

local DoubleStorage = Storage
local LongStorage = util.storageClass.Long

--- The element type name of a storage class ("Double", "Float", ...), or nil.
function util.storageKind(mt)
  return STORAGES[mt]
end

--- The conversion function of a storage class (nil for DoubleStorage).
function util.storageConvert(mt)
  return CONVERT[mt]
end

--- Adopt the Lua array `data` (numbers at 1..n) as a storage (DoubleStorage unless
--- `class` is given) without copying or converting.
function util.adoptStorage(data, class)
  return setmetatable(data, class or DoubleStorage)
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
  return STORAGES[getmetatable(obj)] ~= nil
end
