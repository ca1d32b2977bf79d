-- Torch7's serialization: torch.save / torch.load (.t7 files), torch.serialize /
-- torch.deserialize (strings), torch.MemoryFile, torch.DiskFile.
--
-- The format (Torch7's File.lua and the C write/read of tensors and storages), binary
-- (little-endian, 8-byte longs, as on x86_64) or ascii: an object is an int type tag
-- (nil 0, number 1, string 2, table 3, torch object 4, boolean 5, function 6/7/8), then
--   number:  a double;  boolean: an int 0/1;  string: an int length and the bytes;
--   table:   an int reference index; if the index is new, an int count and the key /
--            value objects, else nothing more (the object already read);
--   torch object: an int reference index; if new, the version "V <n>" and the class
--            name (length-prefixed strings), then the class's own data: a tensor writes
--            its dimension count, sizes and strides (longs), storage offset (a long,
--            1-based) and its storage object; a storage its size (a long) and its
--            elements; any other class (nn modules) the table of its fields.
-- Reference indices make shared and recursive references survive (a storage that
-- several tensors view is written once). Lua functions are not written or read:
-- Torch7 stores their bytecode, which no other Lua runtime can load.
--
-- Files: torch.save, torch.load and torch.DiskFile reach files only through
-- __crossconv_open(path, mode), the function lua_port's sandbox gives each run for the
-- files its caller grants (lua_port.run(code, files={...})): mode "rb" returns the bytes,
-- "wb" a writer (:write(bytes), :close()). lua_port's own Lua state has no files: there
-- they raise an error, and Python reads and writes .t7 files itself.

local util = torch._util
local codec = torch._codec

local TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH, TYPE_BOOLEAN = 0, 1, 2, 3, 4, 5
local TYPE_FUNCTION, LEGACY_TYPE_RECUR_FUNCTION, TYPE_RECUR_FUNCTION = 6, 7, 8

local File = torch.class("torch.File")

local function init(self, data)
  rawset(self, "_binary", false)
  rawset(self, "_parts", {})
  rawset(self, "_data", data or "")
  rawset(self, "_pos", 1)
  rawset(self, "_writeIndex", {})
  rawset(self, "_readObjects", {})
  rawset(self, "_count", 0)
  rawset(self, "_force", false)
end

function File:binary()
  self._binary = true
  return self
end

function File:ascii()
  self._binary = false
  return self
end

function File:isBinary()
  return self._binary
end

--- referenced(false): write every object in full, even when met before (no sharing).
function File:referenced(flag)
  self._force = not flag
  return self
end

function File:isReferenced()
  return not self._force
end

local function mode(self)
  return self._binary and codec.binary or codec.ascii
end

function File:_append(s)
  local parts = self._parts
  parts[#parts + 1] = s
end

--- The written bytes so far, as a Lua string.
function File:_contents()
  local s = table.concat(self._parts)
  self._parts = { s }
  return s
end

-- ----------------------------------------------------------------------------- numbers

local function corrupt(self, what)
  error(string.format("read error: %s at byte %d of %d (not a %s Torch7 file, or a damaged one)", what,
    self._pos, #self._data, self._binary and "binary" or "ascii"), 0)
end

function File:_read(kind, count)
  if count < 0 or count ~= math.floor(count) then
    corrupt(self, "a negative or fractional element count " .. util.num(count))
  end
  local size = self._binary and util.ELEMENT_SIZE[kind] or 1
  if count * size > #self._data - self._pos + 1 then
    corrupt(self, string.format("%s elements of type %s past the end of the data", util.num(count), kind))
  end
  local values, pos = mode(self).decode[kind](self._data, self._pos, count)
  if not values then
    corrupt(self, "no " .. kind .. " number")
  end
  self._pos = pos
  return values
end

for _, kind in ipairs(util.TYPES) do
  --- file:write<Kind>(number | storage): one number, or a storage's elements.
  File["write" .. kind] = function(self, value)
    if type(value) == "number" then
      self:_append(mode(self).encode[kind]({ value }, 1, 1))
      return 1
    end
    if not torch.isStorage(value) then
      util.argError(1, "write" .. kind, "number or storage expected, got " .. torch.type(value), 2)
    end
    self:_append(mode(self).encode[kind](value, 1, #value))
    return #value
  end
  --- file:read<Kind>() -> number; file:read<Kind>(n) -> a storage of n elements.
  File["read" .. kind] = function(self, n)
    if n == nil then
      return self:_read(kind, 1)[1]
    end
    local storage = torch[kind .. "Storage"]()
    for i, v in ipairs(self:_read(kind, n)) do
      rawset(storage, i, v)
    end
    return storage
  end
end

function File:writeBool(value)
  self:writeInt(value and 1 or 0)
end

function File:readBool()
  return self:readInt() == 1
end

--- file:writeString(s): the raw bytes of s (no length, no newline).
function File:writeString(s)
  self:_append(s)
  return #s
end

-- A length-prefixed string as Torch7 writes one (an int, then the bytes as chars).
local function writeText(self, s)
  self:writeInt(#s)
  self:_append(s)
  if not self._binary and #s > 0 then
    self:_append("\n")
  end
end

local function readText(self)
  local n = self:readInt()
  if n < 0 or n > #self._data - self._pos + 1 then
    corrupt(self, string.format("a string of %s bytes past the end of the data", util.num(n)))
  end
  local s = string.sub(self._data, self._pos, self._pos + n - 1)
  self._pos = self._pos + n
  if not self._binary and n > 0 and string.byte(self._data, self._pos) == 10 then
    self._pos = self._pos + 1
  end
  return s
end

-- ----------------------------------------------------------------------------- objects

local function writableType(value)
  local kind = type(value)
  if kind == "nil" then
    return TYPE_NIL
  elseif torch.typename(value) and torch.factory(torch.typename(value)) then
    return TYPE_TORCH
  elseif kind == "table" then
    return TYPE_TABLE
  elseif kind == "number" then
    return TYPE_NUMBER
  elseif kind == "string" then
    return TYPE_STRING
  elseif kind == "boolean" then
    return TYPE_BOOLEAN
  end
  return nil
end

-- Keys in a fixed order (numbers, then strings, then the rest as pairs gives them), so a
-- file's bytes do not depend on the runtime's hash order.
local KEY_RANK = { number = 1, string = 2, boolean = 3 }

local function sortedKeys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  local position = {}
  for i, k in ipairs(keys) do
    position[k] = i
  end
  table.sort(keys, function(a, b)
    local ra, rb = KEY_RANK[type(a)] or 4, KEY_RANK[type(b)] or 4
    if ra ~= rb then
      return ra < rb
    end
    if ra == 1 or ra == 2 then
      return a < b
    end
    if ra == 3 then
      return (not a) and b
    end
    return position[a] < position[b]
  end)
  return keys
end

-- The class's own write/read method (Torch7 looks for __write/write, __read/read).
local function classMethod(object, name)
  local mt = torch.getmetatable(torch.typename(object))
  local method = mt and (mt["__" .. name] or mt[name])
  return type(method) == "function" and method or nil
end

function File:writeObject(object, path)
  path = path or "<object>"
  local typeIndex = writableType(object)
  if typeIndex == nil then
    error(string.format("Unwritable object <%s> at %s: lua_port writes numbers, strings, booleans, tables "
      .. "and Torch objects (not Lua functions)", type(object), path), 0)
  end
  self:writeInt(typeIndex)
  if typeIndex == TYPE_NIL then
    return
  elseif typeIndex == TYPE_NUMBER then
    self:writeDouble(object)
  elseif typeIndex == TYPE_BOOLEAN then
    self:writeBool(object)
  elseif typeIndex == TYPE_STRING then
    writeText(self, object)
  else
    local index = self._writeIndex[object]
    if index and not self._force then
      self:writeInt(index)
      return
    end
    index = self._count + 1
    self._count = index
    if not self._force then
      self._writeIndex[object] = index
    end
    self:writeInt(index)
    if typeIndex == TYPE_TORCH then
      writeText(self, "V " .. util.num(torch.version(object)))
      writeText(self, torch.typename(object))
      local write = classMethod(object, "write")
      if write then
        write(object, self)
      else
        local fields = {}
        for k, v in pairs(object) do
          if writableType(v) then
            fields[k] = v
          end
        end
        self:writeObject(fields, path)
      end
    else
      local keys = sortedKeys(object)
      self:writeInt(#keys)
      for _, k in ipairs(keys) do
        self:writeObject(k, path)
        local name = (type(k) == "string" or type(k) == "number") and (path .. "." .. tostring(k)) or path
        self:writeObject(object[k], name)
      end
    end
  end
end

local function unknownClass(name)
  error(string.format("unknown Torch class <%s>: it is not in lua_port's Torch7 shim, which has: %s",
    tostring(name), table.concat(torch.classNames(), ", ")), 0)
end

function File:readObject()
  local typeIndex = self:readInt()
  if typeIndex == TYPE_NIL then
    return nil
  elseif typeIndex == TYPE_NUMBER then
    return self:readDouble()
  elseif typeIndex == TYPE_BOOLEAN then
    return self:readBool()
  elseif typeIndex == TYPE_STRING then
    return readText(self)
  elseif typeIndex == TYPE_FUNCTION or typeIndex == TYPE_RECUR_FUNCTION
      or typeIndex == LEGACY_TYPE_RECUR_FUNCTION then
    error("the file holds a Lua function (bytecode): lua_port does not load functions (Torch7 stores "
      .. "their bytecode, which no other Lua runtime can run); lua_port.load_t7 reads the rest of the file", 0)
  elseif typeIndex == TYPE_TABLE or typeIndex == TYPE_TORCH then
    local index = self:readInt()
    local objects = self._readObjects
    if objects[index] ~= nil and not self._force then
      return objects[index]
    end
    if typeIndex == TYPE_TORCH then
      local version, className = readText(self), nil
      local versionNumber = tonumber(string.match(version, "^V (.*)$"))
      if not versionNumber then
        className, versionNumber = version, 0
      else
        className = readText(self)
      end
      local factory = torch.factory(className)
      if not factory then
        unknownClass(className)
      end
      local object = factory()
      if not self._force then
        objects[index] = object
      end
      local read = classMethod(object, "read")
      if read then
        read(object, self, versionNumber)
      else
        local fields = self:readObject()
        if type(fields) ~= "table" then
          corrupt(self, "the fields of a " .. className .. " that are not a table")
        end
        for k, v in pairs(fields) do
          object[k] = v
        end
      end
      return object
    end
    local size = self:readInt()
    if size < 0 or size * 2 > #self._data - self._pos + 1 then
      corrupt(self, string.format("a table of %s entries past the end of the data", util.num(size)))
    end
    local object = {}
    if not self._force then
      objects[index] = object
    end
    for _ = 1, size do
      local k = self:readObject()
      local v = self:readObject()
      if k == nil then
        corrupt(self, "a table key that is nil")
      end
      object[k] = v
    end
    return object
  end
  corrupt(self, "an unknown object type " .. util.num(typeIndex))
end

function File:close()
  local flush = rawget(self, "_flush")
  if flush then
    self._flush = nil
    flush(self:_contents())
  end
end

-- ----------------------------------------------------------------------------- files

local function checkMode(name, value)
  if value ~= nil and value ~= "binary" and value ~= "ascii" then
    error(string.format("bad argument to '%s' (\"binary\" or \"ascii\" (or nil) expected for mode, got %s)",
      name, tostring(value)), 3)
  end
  return value or "binary"
end

--- torch.MemoryFile([storage | mode]): a file in memory (a CharStorage to read from, or
--- "rw"/"w" to write into); file:storage() returns its bytes as a CharStorage.
local MemoryFile = torch.class("torch.MemoryFile", "torch.File")

function MemoryFile:__init(source)
  if torch.isStorage(source) then
    local text = torch.CharStorage(#source):copy(source):string()
    init(self, (string.gsub(text, "%z$", "")))
  else
    init(self, "")
  end
end

function MemoryFile:storage()
  return torch.CharStorage():string(self:_contents())
end

--- torch.DiskFile(path, [mode = "r"]): a file through the host's file access (the whole
--- file is read when opened for "r"; written when closed for "w").
local DiskFile = torch.class("torch.DiskFile", "torch.File")

-- {read = function(path) -> bytes, write = function(path, bytes)} over the sandbox's
-- __crossconv_open (looked up when called: each run has its own), or an error at `level`.
local function files(fname, path, level)
  local open = __crossconv_open
  if type(open) ~= "function" then
    error(string.format("%s('%s'): no file access here: lua_port gives Lua code only the files its caller "
      .. "grants (lua_port.run(..., files=...))", fname, tostring(path)), level + 1)
  end
  return {
    read = function(name)
      return open(name, "rb")
    end,
    write = function(name, data)
      local writer = open(name, "wb")
      writer:write(data)
      writer:close()
    end,
  }
end

function DiskFile:__init(path, fileMode)
  fileMode = fileMode or "r"
  if type(path) ~= "string" then
    util.argError(1, "DiskFile", "file name expected, got " .. type(path), 3)
  end
  if fileMode == "r" then
    init(self, files("torch.DiskFile", path, 3).read(path))
  elseif fileMode == "w" then
    local io = files("torch.DiskFile", path, 3)
    init(self, "")
    rawset(self, "_flush", function(data) io.write(path, data) end)
  else
    util.argError(2, "DiskFile", "file mode should be 'r' or 'w', got " .. tostring(fileMode), 3)
  end
end

--- torch.serialize(object, [mode = "binary"]) -> the bytes of a .t7 file, as a string.
function torch.serialize(object, fileMode)
  fileMode = checkMode("serialize", fileMode)
  local file = torch.MemoryFile()
  file[fileMode](file)
  file:writeObject(object)
  return file:_contents()
end

--- torch.deserialize(bytes, [mode = "binary"]) -> the object.
function torch.deserialize(data, fileMode)
  fileMode = checkMode("deserialize", fileMode)
  if type(data) ~= "string" then
    util.argError(1, "deserialize", "string expected, got " .. type(data), 2)
  end
  local file = torch.MemoryFile()
  init(file, data)
  file[fileMode](file)
  return file:readObject()
end

--- torch.save(path, object, [mode = "binary"], [referenced = true])
function torch.save(path, object, fileMode, referenced)
  fileMode = checkMode("save", fileMode)
  local file = torch.MemoryFile()
  file[fileMode](file)
  file:referenced(referenced == nil and true or referenced)
  file:writeObject(object)
  files("torch.save", path, 2).write(path, file:_contents())
end

--- torch.load(path, [mode = "binary"], [referenced = true]) -> the object.
function torch.load(path, fileMode, referenced)
  fileMode = checkMode("load", fileMode)
  local file = torch.MemoryFile()
  init(file, files("torch.load", path, 2).read(path))
  file[fileMode](file)
  file:referenced(referenced == nil and true or referenced)
  return file:readObject()
end

-- ----------------------------------------------------------------------------- tensors

local Tensor = torch.getmetatable("torch.DoubleTensor")
local Storage = torch.getmetatable("torch.DoubleStorage")

local function longStorage(values)
  return util.longStorage(values)
end

function Storage:write(file)
  local kind = util.storageKind(getmetatable(self))
  file:writeLong(#self)
  file["write" .. kind](file, self)
end

function Storage:read(file)
  local kind = util.storageKind(getmetatable(self))
  local n = file:readLong()
  local values = file:_read(kind, n)
  for i = 1, n do
    rawset(self, i, values[i])
  end
end

function Tensor:write(file)
  local nd = #self._size
  file:writeInt(nd)
  file:writeLong(longStorage(self._size))
  file:writeLong(longStorage(self._stride))
  file:writeLong(self._offset + 1)
  file:writeObject(nd > 0 and self._storage or nil)
end

function Tensor:read(file)
  local nd = file:readInt()
  if nd < 0 or nd > 64 then
    corrupt(file, "a tensor with " .. util.num(nd) .. " dimensions")
  end
  local size = file:_read("Long", nd)
  local stride = file:_read("Long", nd)
  local offset = file:readLong() - 1
  local storage = file:readObject()
  local class = util.storageClassOf(self)
  if storage == nil then
    storage = util.adoptStorage({}, class)
  elseif getmetatable(storage) ~= class then
    corrupt(file, string.format("a %s holding a %s", torch.typename(self), torch.type(storage)))
  end
  local last, empty = offset, false
  for d = 1, nd do
    if size[d] < 0 then
      corrupt(file, "a negative tensor size")
    end
    empty = empty or size[d] == 0
    last = last + (size[d] - 1) * stride[d]
  end
  if nd > 0 and not empty and (offset < 0 or last >= #storage) then
    corrupt(file, string.format("a %s of size %s reaching past its storage of %d elements",
      torch.typename(self), util.sizeString(size), #storage))
  end
  rawset(self, "_storage", storage)
  rawset(self, "_offset", offset)
  rawset(self, "_size", size)
  rawset(self, "_stride", stride)
end

for _, kind in ipairs(util.TYPES) do
  local tensorClass = util.tensorClass[kind]
  local storageClass = util.storageClass[kind]
  rawset(tensorClass, "__factory", function()
    return util.makeTensor(util.adoptStorage({}, storageClass), 0, {}, {})
  end)
end
