-- What the element-wise modules share (Threshold/ReLU, Tanh, Sigmoid, Dropout): one pass
-- over contiguous copies, writing into a fresh storage that the module's output (or
-- gradInput) tensor adopts, so the module keeps its tensor objects, as in Torch7.

local util = torch._util

local pointwise = {}
nn._pointwise = pointwise

--- The module's `field` tensor (output or gradInput) set to f(a[k]) for every element of
--- tensor a, shaped like `shape` (default: a).
function pointwise.map(module, field, a, f, shape)
  local x = a:contiguous()
  local xd, xo = x._storage, x._offset
  local data = {}
  for k = 1, x:nElement() do
    data[k] = f(xd[xo + k])
  end
  local result = module[field]
  result:set(util.adoptStorage(data, util.storageClassOf(result)), 1, (shape or a):size())
  return result
end

--- The same with two tensors of as many elements: f(a[k], b[k]).
function pointwise.map2(module, field, a, b, f, shape)
  if a:nElement() ~= b:nElement() then
    error(string.format("inconsistent tensor sizes: %s and %s", util.sizeString(a._size),
      util.sizeString(b._size)), 2)
  end
  local x, y = a:contiguous(), b:contiguous()
  local xd, xo, yd, yo = x._storage, x._offset, y._storage, y._offset
  local data = {}
  for k = 1, x:nElement() do
    data[k] = f(xd[xo + k], yd[yo + k])
  end
  local result = module[field]
  result:set(util.adoptStorage(data, util.storageClassOf(result)), 1, (shape or a):size())
  return result
end

--- Raise unless input is a tensor (at the calling module's line).
function pointwise.checkTensor(value, name)
  if not torch.isTensor(value) then
    error(string.format("%s must be a tensor, got a %s", name, torch.type(value)), 2)
  end
end

return pointwise
