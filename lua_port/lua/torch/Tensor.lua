-- torch.DoubleTensor (torch.Tensor by default), torch.FloatTensor, torch.LongTensor,
-- torch.IntTensor, torch.ShortTensor, torch.CharTensor, torch.ByteTensor: strided views
-- on a storage of the same element type.
--
-- Fields: _storage (the storage), _offset (0-based storage offset), _size and _stride
-- (Lua arrays, one entry per dimension). Element (i1, ..., id), 1-based, lives at
--   _storage[_offset + (i1-1)*_stride[1] + ... + (id-1)*_stride[d] + 1]
-- narrow / select / sub / transpose / t[{...}] return views sharing the storage, as in
-- Torch7; clone / contiguous (of a non-contiguous tensor) copy. Indices are 1-based; in
-- t[i], t[{...}] and sub a negative index z means size + z + 1 (-1 is the last), while
-- narrow and select take only positive ones, as Torch7's C functions do.
--
-- A tensor's type is its storage's: every class shares DoubleTensor's methods, results
-- take the type of the tensor they come from, and :type(name) / :float() / :long() ...
-- convert (see torch/Storage.lua for what a conversion does).

local util = torch._util
local num = util.num

local Tensor = torch.class("torch.DoubleTensor")
local TensorMT = torch.getmetatable("torch.DoubleTensor")
local DoubleStorage = util.storageClass.Double
local LongStorageMT = util.storageClass.Long

local TENSORS = {}         -- tensor class metatable -> element type name
local TENSOR_OF = {}       -- storage class -> tensor class
local STORAGE_OF = {}      -- tensor class -> storage class
util.tensorClass = {}      -- element type name -> tensor class

local function isTensor(x)
  return TENSORS[getmetatable(x)] ~= nil
end
torch.isTensor = isTensor

local function make(storage, offset, size, stride)
  return setmetatable({ _storage = storage, _offset = offset, _size = size, _stride = stride },
    TENSOR_OF[getmetatable(storage)] or TensorMT)
end
util.makeTensor = make

--- The storage class of tensor t's type.
function util.storageClassOf(t)
  return STORAGE_OF[getmetatable(t)] or DoubleStorage
end

local function contiguousStrides(size)
  local stride, s = {}, 1
  for d = #size, 1, -1 do
    stride[d] = s
    s = s * (size[d] > 0 and size[d] or 1)
  end
  return stride
end
util.contiguousStrides = contiguousStrides

local function count(size)
  if #size == 0 then
    return 0
  end
  local n = 1
  for d = 1, #size do
    n = n * size[d]
  end
  return n
end
util.count = count

local function copyArray(a)
  local b = {}
  for i = 1, #a do
    b[i] = a[i]
  end
  return b
end

--- A new contiguous tensor of the given sizes (a Lua array), filled with zeros, of the
--- storage class `class` (default DoubleStorage).
local function zeros(size, class)
  local n = count(size)
  local data = {}
  for i = 1, n do
    data[i] = 0
  end
  return make(util.adoptStorage(data, class), 0, size, contiguousStrides(size))
end
util.newTensor = zeros

--- A new zero tensor of t's type with the given sizes.
function util.newLike(t, size)
  return zeros(size, STORAGE_OF[getmetatable(t)])
end

--- The storage indices of t's elements in row-major order, and their count.
local function positions(t)
  local size, stride = t._size, t._stride
  local nd, n = #size, count(t._size)
  local pos = {}
  if n == 0 then
    return pos, 0
  end
  local p = t._offset + 1
  if t:isContiguous() then
    for k = 1, n do
      pos[k] = p + k - 1
    end
    return pos, n
  end
  local index = {}
  for d = 1, nd do
    index[d] = 0
  end
  for k = 1, n do
    pos[k] = p
    local d = nd
    while d >= 1 do
      index[d] = index[d] + 1
      p = p + stride[d]
      if index[d] < size[d] then
        break
      end
      p = p - stride[d] * size[d]
      index[d] = 0
      d = d - 1
    end
  end
  return pos, n
end
util.positions = positions

-- Sizes given as numbers, a LongStorage or a Lua array (Torch7 accepts all three).
local function sizeArgs(fname, level, ...)
  local first = ...
  local list
  if type(first) == "table" and not isTensor(first) then
    list = first
  else
    list = { ... }
    if select("#", ...) ~= #list then
      util.argError(#list + 1, fname, "size expected, got nil", level + 1)
    end
  end
  local size = {}
  for i = 1, #list do
    size[i] = util.checkSize(list[i], i, fname, level + 1)
  end
  return size
end

-- A nested Lua table of numbers: its sizes and its numbers in row-major order, or
-- (nil, why) when it is not rectangular.
local function fromTable(t)
  local size, node = {}, t
  while type(node) == "table" do
    size[#size + 1] = #node
    node = node[1]
  end
  local data = {}
  local function walk(x, d)
    if d > #size then
      if type(x) ~= "number" then
        return false
      end
      data[#data + 1] = x
      return true
    end
    if type(x) ~= "table" or #x ~= size[d] then
      return false
    end
    for i = 1, size[d] do
      if not walk(x[i], d + 1) then
        return false
      end
    end
    return true
  end
  if not walk(t, 1) then
    return nil, "a table of numbers, or of rows of equal length, expected"
  end
  if #size == 1 and size[1] == 0 then
    size = {}
  end
  return size, data
end

function Tensor:__init(...)
  local first = ...
  local class = STORAGE_OF[getmetatable(self)]
  local storage, offset, size, stride
  if select("#", ...) == 0 then
    storage, offset, size, stride = util.adoptStorage({}, class), 0, {}, {}
  elseif isTensor(first) then
    if getmetatable(first) ~= getmetatable(self) then
      util.argError(1, torch.typename(self), "expected a " .. torch.typename(self) .. ", got a "
        .. torch.typename(first), 3)
    end
    storage, offset = first._storage, first._offset
    size, stride = copyArray(first._size), copyArray(first._stride)
  elseif torch.isStorage(first) and (getmetatable(first) == class or getmetatable(first) ~= LongStorageMT) then
    if getmetatable(first) ~= class then
      util.argError(1, torch.typename(self), "expected a " .. rawget(class, "__typename") .. ", got a "
        .. torch.typename(first), 3)
    end
    local _, storageOffset, sizes, strides = ...
    storage, offset = first, (storageOffset or 1) - 1
    if sizes == nil then
      size = { #first - offset }
    elseif type(sizes) == "table" then
      size = sizeArgs("Tensor", 3, sizes)
      stride = strides and copyArray(strides)
    else
      -- (storage, offset, size1, stride1, size2, stride2, ...)
      local rest = { select(3, ...) }
      size, stride = {}, {}
      for i = 1, #rest, 2 do
        size[#size + 1] = util.checkSize(rest[i], i + 2, "Tensor", 3)
        stride[#stride + 1] = rest[i + 1] or 1
      end
    end
    stride = stride or contiguousStrides(size)
    local last = offset
    for d = 1, #size do
      last = last + (size[d] - 1) * stride[d]
    end
    if offset < 0 or (count(size) > 0 and last >= #storage) then
      error("bad argument #2 to 'Tensor' (storage is too small for these sizes and strides)", 3)
    end
  elseif type(first) == "table" and getmetatable(first) ~= LongStorageMT then
    local data
    size, data = fromTable(first)
    if not size then
      util.argError(1, "Tensor", data, 3)
    end
    local convert = util.storageConvert(class)
    if convert then
      for i = 1, #data do
        data[i] = convert(data[i])
      end
    end
    storage, offset, stride = util.adoptStorage(data, class), 0, contiguousStrides(size)
  else
    size = sizeArgs("Tensor", 3, ...)
    local t = zeros(size, class)
    storage, offset, stride = t._storage, 0, t._stride
  end
  rawset(self, "_storage", storage)
  rawset(self, "_offset", offset)
  rawset(self, "_size", size)
  rawset(self, "_stride", stride)
end

-- ----------------------------------------------------------------------------- shape

function Tensor:nDimension()
  return #self._size
end
Tensor.dim = Tensor.nDimension

local function checkDim(t, dim, argn, fname, level)
  if not util.isInt(dim) or dim < 1 or dim > #t._size then
    util.argError(argn, fname, string.format("dimension %s out of range of %dD tensor",
      type(dim) == "number" and num(dim) or type(dim), #t._size), level + 1)
  end
  return dim
end

function Tensor:size(dim)
  if dim == nil then
    return util.longStorage(self._size)
  end
  return self._size[checkDim(self, dim, 1, "size", 2)]
end

function Tensor:stride(dim)
  if dim == nil then
    return util.longStorage(self._stride)
  end
  return self._stride[checkDim(self, dim, 1, "stride", 2)]
end

function Tensor:nElement()
  return count(self._size)
end
Tensor.numel = Tensor.nElement

function Tensor:storage()
  return self._storage
end

function Tensor:storageOffset()
  return self._offset + 1
end

--- x:type() is x's type name; x:type(name) is x if it has that type, else a converted copy.
function Tensor:type(name)
  local own = rawget(getmetatable(self), "__typename")
  if name == nil or name == own then
    return name == nil and own or self
  end
  local kind = type(name) == "string" and string.match(name, "^torch%.(%a+)Tensor$")
  local class = kind and util.storageClass[kind]
  if not class then
    util.argError(1, "type", string.format("unknown tensor type '%s' (known: torch.%sTensor)", tostring(name),
      table.concat(util.TYPES, "Tensor, torch.")), 2)
  end
  local result = zeros(copyArray(self._size), class)
  return result:copy(self)
end

function Tensor:typeAs(other)
  return self:type(other:type())
end

for _, kind in ipairs(util.TYPES) do
  local name = "torch." .. kind .. "Tensor"
  Tensor[string.lower(kind)] = function(self)
    return self:type(name)
  end
end

function Tensor:isContiguous()
  local expected, size, stride = 1, self._size, self._stride
  for d = #size, 1, -1 do
    if size[d] ~= 1 then
      if stride[d] ~= expected then
        return false
      end
      expected = expected * size[d]
    end
  end
  return true
end

function Tensor:isSameSizeAs(other)
  local a, b = self._size, other._size
  if #a ~= #b then
    return false
  end
  for d = 1, #a do
    if a[d] ~= b[d] then
      return false
    end
  end
  return true
end

function Tensor:resize(...)
  local size = sizeArgs("resize", 2, ...)
  local storage = self._storage
  for i = #storage + 1, self._offset + count(size) do
    rawset(storage, i, 0)
  end
  self._size, self._stride = size, contiguousStrides(size)
  return self
end

function Tensor:resizeAs(other)
  return self:resize(copyArray(other._size))
end

function Tensor:clone()
  local src, data = self._storage, {}
  local n = count(self._size)
  if self:isContiguous() then
    local o = self._offset
    for k = 1, n do
      data[k] = src[o + k]
    end
  else
    local pos = positions(self)
    for k = 1, n do
      data[k] = src[pos[k]]
    end
  end
  local size = copyArray(self._size)
  return make(util.adoptStorage(data, getmetatable(src)), 0, size, contiguousStrides(size))
end

function Tensor:contiguous()
  if self:isContiguous() then
    return self
  end
  return self:clone()
end

--- x:view(sizes) is a new view of x; r:view(src, sizes) makes r that view of src.
function Tensor:view(...)
  local first = ...
  if isTensor(first) then
    return self:set(first:view(select(2, ...)))
  end
  local list = type(first) == "table" and first or { ... }
  local size, infer, known = {}, nil, 1
  for i = 1, #list do
    local s = list[i]
    if s == -1 and not infer then
      infer = i
      size[i] = 0
    else
      size[i] = util.checkSize(s, i, "view", 2)
      known = known * size[i]
    end
  end
  local n = self:nElement()
  if infer then
    if known == 0 or n % known ~= 0 then
      util.argError(infer, "view", "cannot infer size -1 for " .. num(n) .. " elements", 2)
    end
    size[infer] = n / known
  end
  if count(size) ~= n then
    util.argError(1, "view", string.format("size mismatch: %s has %d elements, tensor has %d",
      util.sizeString(size), count(size), n), 2)
  end
  if not self:isContiguous() then
    error("bad argument #1 to 'view' (input is not contiguous: call :contiguous() first)", 2)
  end
  return make(self._storage, self._offset, size, contiguousStrides(size))
end

--- x:viewAs(other) is x:view(other's sizes); r:viewAs(src, other) makes r that view of src.
function Tensor:viewAs(a, b)
  if b ~= nil then
    return self:set(a:view(copyArray(b._size)))
  end
  return self:view(copyArray(a._size))
end

--- x:set(y) shares y's storage, offset, sizes and strides; x:set(storage [, offset [, sizes
--- [, strides]]]) views a storage (offset 1-based; sizes and strides as LongStorages or
--- tables); x:set() empties x.
function Tensor:set(source, offset, sizes, strides)
  if source == nil then
    self._storage = util.adoptStorage({}, util.storageClassOf(self))
    self._offset, self._size, self._stride = 0, {}, {}
    return self
  end
  if isTensor(source) then
    if getmetatable(source) ~= getmetatable(self) then
      util.argError(1, "set", "expected a " .. torch.typename(self) .. ", got a " .. torch.typename(source), 2)
    end
    self._storage, self._offset = source._storage, source._offset
    self._size, self._stride = copyArray(source._size), copyArray(source._stride)
    return self
  end
  if getmetatable(source) ~= util.storageClassOf(self) then
    util.argError(1, "set", "expected a tensor or a storage of " .. torch.typename(self) .. "'s type, got a "
      .. torch.type(source), 2)
  end
  offset = (offset or 1) - 1
  local size = sizes and sizeArgs("set", 2, sizes) or { #source - offset }
  local stride = strides and copyArray(strides) or contiguousStrides(size)
  local last = offset
  for d = 1, #size do
    last = last + (size[d] - 1) * stride[d]
  end
  if offset < 0 or (count(size) > 0 and last >= #source) then
    util.argError(2, "set", "storage is too small for these sizes and strides", 2)
  end
  self._storage, self._offset, self._size, self._stride = source, offset, size, stride
  return self
end

--- x:squeeze([dim]) / torch.squeeze(x [, dim]): a view of x without its size-1
--- dimensions (or without `dim` when it has size 1); x itself is unchanged. As in Torch7,
--- a result holding one element in one dimension comes back as a number.
function Tensor:squeeze(dim)
  local size, stride = {}, {}
  for d = 1, #self._size do
    if self._size[d] ~= 1 or (dim ~= nil and d ~= dim) then
      size[#size + 1], stride[#stride + 1] = self._size[d], self._stride[d]
    end
  end
  if #size == 0 and #self._size > 0 then
    size, stride = { 1 }, { 1 }
  end
  if #size == 1 and size[1] == 1 then
    return self._storage[self._offset + 1]
  end
  return make(self._storage, self._offset, size, stride)
end

function torch.squeeze(x, dim)
  return x:squeeze(dim)
end

-- ----------------------------------------------------------------------------- views

local function narrowed(t, dim, start, length)  -- 0-based start, no checks
  local view = make(t._storage, t._offset + start * t._stride[dim], copyArray(t._size), copyArray(t._stride))
  view._size[dim] = length
  return view
end

local function selected(t, dim, index)  -- 0-based index, no checks
  local size, stride = copyArray(t._size), copyArray(t._stride)
  table.remove(size, dim)
  table.remove(stride, dim)
  return make(t._storage, t._offset + index * t._stride[dim], size, stride)
end

function Tensor:narrow(dim, index, size)
  checkDim(self, dim, 1, "narrow", 2)
  index = util.checkIndex(index, 2, "narrow", 2)
  size = util.checkIndex(size, 3, "narrow", 2)
  local n = self._size[dim]
  if index < 1 or index > n then
    util.argError(2, "narrow", string.format("out of range: index %s of a dimension of size %d",
      num(index), n), 2)
  end
  if size < 1 or index + size - 1 > n then
    util.argError(3, "narrow", string.format("out of range: %s elements from index %d of a dimension "
      .. "of size %d", num(size), index, n), 2)
  end
  return narrowed(self, dim, index - 1, size)
end

function Tensor:select(dim, index)
  checkDim(self, dim, 1, "select", 2)
  if #self._size == 1 then
    util.argError(1, "select", "cannot select on a vector", 2)
  end
  index = util.checkIndex(index, 2, "select", 2)
  local n = self._size[dim]
  if index < 1 or index > n then
    util.argError(2, "select", string.format("out of range: index %s of a dimension of size %d",
      num(index), n), 2)
  end
  return selected(self, dim, index - 1)
end

function Tensor:sub(...)
  local bounds = { ... }
  if #bounds % 2 ~= 0 or #bounds / 2 > #self._size then
    util.argError(#bounds, "sub", "expected a (start, end) pair per dimension, at most "
      .. #self._size, 2)
  end
  local view = self
  for d = 1, #bounds / 2 do
    local n = self._size[d]
    local first = util.checkIndex(bounds[2 * d - 1], 2 * d - 1, "sub", 2)
    local last = util.checkIndex(bounds[2 * d], 2 * d, "sub", 2)
    if first < 0 then first = n + first + 1 end
    if last < 0 then last = n + last + 1 end
    if first < 1 or first > n then
      util.argError(2 * d - 1, "sub", string.format("out of range: %s in a dimension of size %d",
        num(bounds[2 * d - 1]), n), 2)
    end
    if last < first or last > n then
      util.argError(2 * d, "sub", string.format("out of range: end %s for start %s in a dimension "
        .. "of size %d", num(bounds[2 * d]), num(bounds[2 * d - 1]), n), 2)
    end
    view = narrowed(view, d, first - 1, last - first + 1)
  end
  return view == self and make(self._storage, self._offset, copyArray(self._size),
    copyArray(self._stride)) or view
end

function Tensor:transpose(d1, d2)
  checkDim(self, d1, 1, "transpose", 2)
  checkDim(self, d2, 2, "transpose", 2)
  local view = make(self._storage, self._offset, copyArray(self._size), copyArray(self._stride))
  view._size[d1], view._size[d2] = view._size[d2], view._size[d1]
  view._stride[d1], view._stride[d2] = view._stride[d2], view._stride[d1]
  return view
end

function Tensor:t()
  if #self._size ~= 2 then
    util.argError(1, "t", "t() expects a 2D tensor, got " .. #self._size .. "D", 2)
  end
  return self:transpose(1, 2)
end

-- ----------------------------------------------------------------------------- t[...]

-- Walk an index: a number selects (drops the dimension; on a 1-D tensor it reaches an
-- element), a table {a, b} / {a} / {} narrows inclusively (keeps it). Returns the view,
-- or (nil, storage position) when the index reaches one element.
local function walkIndex(t, key, level)
  if type(key) == "number" then
    key = { key }
  end
  if #key > #t._size then
    error(string.format("too many indices provided: %d for a %dD tensor", #key, #t._size), level + 1)
  end
  local view, dim = make(t._storage, t._offset, copyArray(t._size), copyArray(t._stride)), 1
  for i = 1, #key do
    local entry = key[i]
    local n = view._size[dim]
    if type(entry) == "number" then
      local z = util.checkIndex(entry, 2, "index", level + 1) - 1
      if z < 0 then z = n + z + 1 end
      if z < 0 or z >= n then
        error(string.format("index out of bound: %s in a dimension of size %d", num(entry), n), level + 1)
      end
      if #view._size == 1 then
        return nil, view._offset + z * view._stride[1] + 1
      end
      view = selected(view, dim, z)
    elseif type(entry) == "table" then
      local first, last = 0, n - 1
      if entry[1] ~= nil then
        first = util.checkIndex(entry[1], 2, "index", level + 1) - 1
        last = first
        if first < 0 then first = n + first + 1 end
        if first < 0 or first >= n then
          error(string.format("start index out of bound: %s in a dimension of size %d",
            num(entry[1]), n), level + 1)
        end
      end
      if entry[2] ~= nil then
        last = util.checkIndex(entry[2], 2, "index", level + 1) - 1
      end
      if last < 0 then last = n + last + 1 end
      if last < 0 or last >= n then
        error(string.format("end index out of bound: %s in a dimension of size %d",
          num(entry[2] or entry[1]), n), level + 1)
      end
      if last < first then
        error(string.format("end index must be greater or equal to start index: {%s, %s}",
          num(entry[1]), num(entry[2])), level + 1)
      end
      view = narrowed(view, dim, first, last - first + 1)
      dim = dim + 1
    else
      error("invalid index: numbers and {start, end} tables expected, got a " .. type(entry), level + 1)
    end
  end
  return view
end

function Tensor:__index__(key)
  if type(key) == "number" or (type(key) == "table" and not isTensor(key)) then
    local view, position = walkIndex(self, key, 3)
    if position then
      return self._storage[position], true
    end
    return view, true
  end
  return nil, false
end

function Tensor:__newindex__(key, value)
  if type(key) == "number" or (type(key) == "table" and not isTensor(key)) then
    local view, position = walkIndex(self, key, 3)
    if position then
      if type(value) ~= "number" then
        error("a number expected to set one element, got a " .. type(value), 3)
      end
      local convert = util.storageConvert(getmetatable(self._storage))
      self._storage[position] = convert and convert(value) or value
    elseif type(value) == "number" then
      view:fill(value)
    elseif isTensor(value) then
      view:copy(value)
    else
      error("a number or a tensor expected, got a " .. type(value), 3)
    end
    return true
  end
  return false
end

-- ----------------------------------------------------------------------------- filling

function Tensor:fill(value)
  if type(value) ~= "number" then
    util.argError(1, "fill", "number expected, got " .. type(value), 2)
  end
  local convert = util.storageConvert(getmetatable(self._storage))
  if convert then
    value = convert(value)
  end
  local data, n = self._storage, count(self._size)
  if self:isContiguous() then
    local o = self._offset
    for k = o + 1, o + n do
      data[k] = value
    end
    return self
  end
  local pos = positions(self)
  for k = 1, n do
    data[pos[k]] = value
  end
  return self
end

function Tensor:zero()
  return self:fill(0)
end

function Tensor:copy(src)
  if not isTensor(src) then
    util.argError(1, "copy", "tensor expected, got " .. torch.type(src), 2)
  end
  local n, m = count(self._size), count(src._size)
  if n ~= m then
    error(string.format("inconsistent tensor size: cannot copy %d elements (%s) into %d (%s)", m,
      util.sizeString(src._size), n, util.sizeString(self._size)), 2)
  end
  local a, b = self._storage, src._storage
  local convert = getmetatable(a) ~= getmetatable(b) and util.storageConvert(getmetatable(a))
  if convert then
    local to, from = positions(self), positions(src)
    for k = 1, n do
      a[to[k]] = convert(b[from[k]])
    end
  elseif self:isContiguous() and src:isContiguous() then
    local p, q = self._offset, src._offset
    for k = 1, n do
      a[p + k] = b[q + k]
    end
  else
    local to, from = positions(self), positions(src)
    for k = 1, n do
      a[to[k]] = b[from[k]]
    end
  end
  return self
end

function Tensor:apply(fn)
  local pos, n = positions(self)
  local data = self._storage
  for k = 1, n do
    local v = fn(data[pos[k]])
    if v ~= nil then
      data[pos[k]] = v
    end
  end
  return self
end

function Tensor:totable()
  local size, stride, data = self._size, self._stride, self._storage
  local function build(d, p)
    local t = {}
    for i = 1, size[d] do
      if d == #size then
        t[i] = data[p + 1]
      else
        t[i] = build(d + 1, p)
      end
      p = p + stride[d]
    end
    return t
  end
  if #size == 0 then
    return {}
  end
  return build(1, self._offset)
end

-- ----------------------------------------------------------------------------- printing

local function formatter(values)
  local big, small = 0, math.huge
  for i = 1, #values do
    local a = math.abs(values[i])
    if a == a and a < math.huge then
      if a > big then big = a end
      if a > 0 and a < small then small = a end
    end
  end
  if big >= 1e5 or small < 1e-4 then
    return "%12.4e"
  end
  return "%10.4f"
end

local function formatRow(fmt, data, p, n, stride)
  local cells = {}
  for i = 1, n do
    local v = data[p + (i - 1) * stride + 1]
    cells[i] = v ~= v and string.format("%10s", "nan") or string.format(fmt, v)
  end
  return table.concat(cells, " ")
end

function Tensor:__tostring__()
  local size = self._size
  if #size == 0 then
    return "[" .. torch.typename(self) .. " with no dimension]"
  end
  local footer = "[" .. torch.typename(self) .. " of size " .. util.sizeString(size) .. "]"
  local contiguous = self:contiguous()
  local data, values = contiguous._storage, {}
  for k = 1, contiguous:nElement() do
    values[k] = data[contiguous._offset + k]
  end
  local fmt, lines = formatter(values), {}
  if #size == 1 then
    for i = 1, size[1] do
      lines[i] = formatRow(fmt, data, contiguous._offset + i - 1, 1, 1)
    end
  else
    local rows, cols = size[#size - 1], size[#size]
    local planes = count(size) / (rows * cols)
    local index = {}
    for d = 1, #size - 2 do index[d] = 1 end
    for plane = 1, planes do
      if #size > 2 then
        lines[#lines + 1] = "(" .. table.concat(index, ",") .. ",.,.) = "
      end
      local base = contiguous._offset + (plane - 1) * rows * cols
      for r = 1, rows do
        lines[#lines + 1] = formatRow(fmt, data, base + (r - 1) * cols, cols, 1)
      end
      if #size > 2 then
        lines[#lines + 1] = ""
        local d = #size - 2
        while d >= 1 do
          index[d] = index[d] + 1
          if index[d] <= size[d] then break end
          index[d] = 1
          d = d - 1
        end
      end
    end
  end
  lines[#lines + 1] = footer
  return table.concat(lines, "\n")
end

-- ----------------------------------------------------------------------------- the types

for _, kind in ipairs(util.TYPES) do
  local name = "torch." .. kind .. "Tensor"
  local mt = kind == "Double" and TensorMT or torch.class(name, "torch.DoubleTensor")
  if kind ~= "Double" then
    rawset(mt, "__sibling", true)  -- shares the methods; not a subclass for torch.isTypeOf
  end
  local storage = util.storageClass[kind]
  TENSORS[mt], TENSOR_OF[storage], STORAGE_OF[mt], util.tensorClass[kind] = kind, mt, storage, mt
  -- x.new(...) is the constructor of x's type, as in Torch7 (so x:new() views x).
  local constructor = torch[kind .. "Tensor"]
  rawset(mt, "new", function(...)
    return constructor(...)
  end)
end

--- torch.setdefaulttensortype(name): the type torch.Tensor and torch.Storage build.
function torch.setdefaulttensortype(name)
  local kind = type(name) == "string" and string.match(name, "^torch%.(%a+)Tensor$")
  if not (kind and util.tensorClass[kind]) then
    util.argError(1, "setdefaulttensortype", "unknown tensor type " .. tostring(name), 2)
  end
  torch.Tensor = torch[kind .. "Tensor"]
  torch.Storage = torch[kind .. "Storage"]
end

function torch.getdefaulttensortype()
  return torch.typename(torch.Tensor())
end

torch.setdefaulttensortype("torch.DoubleTensor")
