-- nn.MSECriterion([sizeAverage = true]): sum((input - target)^2), divided by the number
-- of elements when sizeAverage (over ALL elements, batch included);
-- gradInput = 2 (input - target) (/ the number of elements).

local util = torch._util

local MSECriterion, parent = torch.class("nn.MSECriterion", "nn.Criterion")

function MSECriterion:__init(sizeAverage)
  parent.__init(self)
  if sizeAverage ~= nil then
    self.sizeAverage = sizeAverage
  else
    self.sizeAverage = true
  end
end

local function check(input, target)
  if not (torch.isTensor(input) and torch.isTensor(target)) then
    error(string.format("input and target must be tensors, got %s and %s", torch.type(input),
      torch.type(target)), 2)
  end
  if input:nElement() ~= target:nElement() then
    error(string.format("input and target should have the same number of elements: %s and %s",
      util.sizeString(input._size), util.sizeString(target._size)), 2)
  end
end

function MSECriterion:updateOutput(input, target)
  check(input, target)
  local x, t = input:contiguous(), target:contiguous()
  local xd, xo, td, to = x._storage, x._offset, t._storage, t._offset
  local sum = 0
  for k = 1, x:nElement() do
    local z = xd[xo + k] - td[to + k]
    sum = sum + z * z
  end
  if self.sizeAverage then
    sum = sum / input:nElement()
  end
  self.output_tensor = self.output_tensor or input.new(1)
  self.output_tensor[1] = sum
  self.output = sum
  return self.output
end

function MSECriterion:updateGradInput(input, target)
  check(input, target)
  local norm = self.sizeAverage and 2 / input:nElement() or 2
  local x, t = input:contiguous(), target:contiguous()
  local xd, xo, td, to = x._storage, x._offset, t._storage, t._offset
  local out = {}
  for k = 1, x:nElement() do
    out[k] = norm * (xd[xo + k] - td[to + k])
  end
  self.gradInput:set(util.adoptStorage(out, util.storageClassOf(self.gradInput)), 1, input:size())
  return self.gradInput
end
