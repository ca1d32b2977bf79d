-- What the Python bridge calls in the trusted runtime (lua_port.runtimes): moving flat
-- arrays in and out of tensors and building modules. Arrays cross as flat Lua tables of
-- numbers plus sizes, once per call; nothing here calls back into Python.

local util = torch._util
local unpack = util.unpack

local bridge = {}

--- A tensor of the given sizes (a Lua array) over `data` (adopted, not copied).
function bridge.tensor(data, sizes)
  local size = {}
  for i = 1, #sizes do
    size[i] = sizes[i]
  end
  return util.makeTensor(util.adoptStorage(data), 0, size, util.contiguousStrides(size))
end

--- (storage, offset, count, sizes) of t's contiguous data, for bridge.chunk.
function bridge.flat(t)
  local c = t:contiguous()
  return c._storage, c._offset, c:nElement(), c._size
end

--- The numbers data[first..last] as multiple results (callers keep chunks < 8000:
--- LuaJIT's unpack limit).
function bridge.chunk(data, first, last)
  return unpack(data, first, last)
end

--- Copy the numbers of `data` into tensor t (same number of elements).
function bridge.assign(t, data)
  t:copy(bridge.tensor(data, t._size))
end

--- nn.<name>(...) with the arguments of the Lua constructor.
function bridge.module(name, ...)
  return nn[name](...)
end

return bridge
