-- torch.cat([result,] x1, x2, ... [, dim]) and torch.cat([result,] {x1, x2, ...} [, dim]);
-- result:cat(x1, x2 [, dim]) writes into result. The tensors must agree in every size but
-- `dim` (default: the last dimension of the first tensor); empty tensors are skipped, as
-- in Torch7. The result has the first tensor's type.

local util = torch._util
local Tensor = torch.getmetatable("torch.DoubleTensor")
local isTensor = torch.isTensor

local function cat(result, inputs, dim, level)
  local tensors = {}
  for i = 1, #inputs do
    if not isTensor(inputs[i]) then
      util.argError(i, "cat", "tensor expected, got " .. torch.type(inputs[i]), level + 1)
    end
    if inputs[i]:nDimension() > 0 then
      tensors[#tensors + 1] = inputs[i]
    end
  end
  if #tensors == 0 then
    return result or (inputs[1] and inputs[1].new() or torch.Tensor())
  end
  local first = tensors[1]
  dim = dim or first:nDimension()
  if not util.isInt(dim) or dim < 1 or dim > first:nDimension() then
    util.argError(#inputs + 1, "cat", string.format("dimension %s out of range of %dD tensor", tostring(dim),
      first:nDimension()), level + 1)
  end
  local size = {}
  for d = 1, first:nDimension() do size[d] = first._size[d] end
  size[dim] = 0
  for i, t in ipairs(tensors) do
    local same = t:nDimension() == first:nDimension()
    for d = 1, first:nDimension() do
      same = same and (d == dim or t._size[d] == first._size[d])
    end
    if not same then
      error(string.format("inconsistent tensor sizes in 'cat' along dimension %d: %s and %s", dim,
        util.sizeString(first._size), util.sizeString(t._size)), level + 1)
    end
    size[dim] = size[dim] + t._size[dim]
  end
  result = result or first.new()
  -- Concatenating into a tensor that is also an input: build the result aside first.
  local target = result
  for _, t in ipairs(tensors) do
    if t._storage == result._storage then target = first.new() break end
  end
  target:resize(size)
  local offset = 1
  for _, t in ipairs(tensors) do
    target:narrow(dim, offset, t._size[dim]):copy(t)
    offset = offset + t._size[dim]
  end
  if target ~= result then
    result:resize(size):copy(target)
  end
  return result
end

local function arguments(...)
  local n, first = select("#", ...), ...
  local args = { ... }
  local result
  if isTensor(first) and type(args[2]) == "table" and not isTensor(args[2]) then
    result = first
    table.remove(args, 1)
    n = n - 1
  end
  local dim
  if type(args[n]) == "number" then
    dim, args[n], n = args[n], nil, n - 1
  end
  if n == 1 and type(args[1]) == "table" and not isTensor(args[1]) then
    return result, args[1], dim
  end
  if result == nil and n >= 3 and isTensor(args[1]) then
    -- torch.cat(result, x1, x2): the result is given only with at least two inputs after it
    result = args[1]
    table.remove(args, 1)
  end
  return result, args, dim
end

function torch.cat(...)
  local result, inputs, dim = arguments(...)
  return cat(result, inputs, dim, 2)
end

function Tensor:cat(...)
  local n = select("#", ...)
  local inputs = { ... }
  local dim
  if type(inputs[n]) == "number" then
    dim, inputs[n] = inputs[n], nil
  end
  if #inputs == 1 and type(inputs[1]) == "table" and not isTensor(inputs[1]) then
    inputs = inputs[1]
  end
  return cat(self, inputs, dim, 2)
end
