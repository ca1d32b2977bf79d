-- torch.sort(x [, dim] [, descending]) and x:sort(dim, descending): sorted copies along
-- `dim` (default: the last) and the 1-based positions they came from (a LongTensor).
-- Equal values keep their order (a stable sort; Torch7's quicksort may order ties
-- differently). NaN sorts as larger than every number.

local util = torch._util
local Tensor = torch.getmetatable("torch.DoubleTensor")

local function before(descending)
  return function(a, b)
    local va, vb = a[1], b[1]
    if va ~= va or vb ~= vb then
      if (va ~= va) == (vb ~= vb) then return a[2] < b[2] end
      return (va ~= va) == descending
    end
    if va == vb then return a[2] < b[2] end
    if descending then return va > vb end
    return va < vb
  end
end

local function sort(x, dim, descending)
  dim = dim or x:nDimension()
  if not util.isInt(dim) or dim < 1 or dim > x:nDimension() then
    util.argError(2, "sort", string.format("dimension %s out of range of %dD tensor", tostring(dim),
      x:nDimension()), 3)
  end
  local values = x:clone()
  local size = {}
  for d = 1, x:nDimension() do size[d] = x._size[d] end
  local indices = util.newTensor(size, util.storageClass.Long)
  local order = before(descending and true or false)
  local n = x._size[dim]
  -- One line along `dim` starts at each element of index 1 along dim.
  local vd, id = values._storage, indices._storage
  local vs, is = values._stride[dim], indices._stride[dim]
  local starts = util.positions(values:narrow(dim, 1, 1))
  local istarts = util.positions(indices:narrow(dim, 1, 1))
  for line = 1, #starts do
    local entries = {}
    for k = 0, n - 1 do
      entries[k + 1] = { vd[starts[line] + k * vs], k + 1 }
    end
    table.sort(entries, order)
    for k = 0, n - 1 do
      vd[starts[line] + k * vs] = entries[k + 1][1]
      id[istarts[line] + k * is] = entries[k + 1][2]
    end
  end
  return values, indices
end

function torch.sort(x, dim, descending)
  if type(dim) == "boolean" then
    dim, descending = nil, dim
  end
  return sort(x, dim, descending)
end

function Tensor:sort(dim, descending)
  if type(dim) == "boolean" then
    dim, descending = nil, dim
  end
  return sort(self, dim, descending)
end
