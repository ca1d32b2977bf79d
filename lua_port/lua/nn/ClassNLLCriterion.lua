-- nn.ClassNLLCriterion([weights], [sizeAverage = true], [ignoreIndex = -100]): the
-- negative log-likelihood of 1-based class targets: input [nClasses] with a number
-- target, or [N, nClasses] with a target tensor of N classes.
--   loss = -sum_i w[t_i] * input[i][t_i], divided by sum_i w[t_i] when sizeAverage
-- (w = 1 without weights); targets equal to ignoreIndex are skipped.
-- gradInput[i][t_i] = -w[t_i] (/ the weight total when sizeAverage), 0 elsewhere; with a
-- single sample, -w[t] when weights are given without sizeAverage and -1 otherwise,
-- as in Torch7.

local util = torch._util

local ClassNLLCriterion, parent = torch.class("nn.ClassNLLCriterion", "nn.Criterion")

function ClassNLLCriterion:__init(weights, sizeAverage, ignoreIndex)
  parent.__init(self)
  self.sizeAverage = (sizeAverage == nil) and true or sizeAverage
  self.ignoreIndex = ignoreIndex or -100
  if weights then
    if weights:dim() ~= 1 then
      error("weights input should be 1-D Tensor", 3)
    end
    self.weights = weights
  end
  self.output_tensor = torch.zeros(1)
  self.total_weight_tensor = torch.ones(1)
  self.target = torch.zeros(1):long()
end

function ClassNLLCriterion:__len()
  return self.weights and #self.weights or 0
end

-- The targets as a Lua array of numbers, and the input's rows and classes.
local function arguments(self, input, target)
  if not torch.isTensor(input) then
    error("input must be a tensor, got a " .. torch.type(input), 2)
  end
  if type(target) == "number" then
    self.target = self.target:long()
    self.target:resize(1)
    self.target[1] = target
  elseif torch.isTensor(target) then
    self.target = target:long()
  else
    error("target must be a number or a tensor, got a " .. torch.type(target), 2)
  end
  if self.target:dim() > 1 then
    error("multi-target not supported", 2)
  end
  local dims = input:dim()
  if dims > 2 or dims < 1 then
    error("input tensor should be 1D or 2D", 2)
  end
  local classes = input:size(dims)
  local rows = dims == 2 and input:size(1) or 1
  if self.target:nElement() ~= rows then
    error(string.format("target has %d elements for a batch of %d", self.target:nElement(), rows), 2)
  end
  if self.weights and self.weights:nElement() ~= classes then
    error(string.format("weight tensor should be defined either for all %d classes or no classes but got "
      .. "weight tensor of shape: %s", classes, util.sizeString(self.weights._size)), 2)
  end
  local targets = self.target:contiguous()
  local list = {}
  for i = 1, rows do
    local t = targets._storage[targets._offset + i]
    if t ~= self.ignoreIndex and (t < 1 or t > classes) then
      error(string.format("target %d is out of range: classes are 1 to %d (targets are 1-based)", t, classes), 2)
    end
    list[i] = t
  end
  return list, rows, classes
end

local function weightOf(self, class)
  return self.weights and self.weights[class] or 1
end

function ClassNLLCriterion:updateOutput(input, target)
  local targets, rows, classes = arguments(self, input, target)
  local x = input:contiguous()
  local xd, xo = x._storage, x._offset
  local total, loss = 0, 0
  for i = 1, rows do
    local t = targets[i]
    if t ~= self.ignoreIndex then
      local w = weightOf(self, t)
      total = total + w
      loss = loss - xd[xo + (i - 1) * classes + t] * w
    end
  end
  if self.sizeAverage and total ~= 0 then
    loss = loss / total
  end
  self.output_tensor[1], self.total_weight_tensor[1] = loss, total
  self.output = loss
  return self.output, total
end

function ClassNLLCriterion:updateGradInput(input, target)
  local targets, rows, classes = arguments(self, input, target)
  self.gradInput:resizeAs(input):zero()
  local total = self.total_weight_tensor[1]
  if not (total > 0) then
    return self.gradInput
  end
  local g = self.gradInput
  for i = 1, rows do
    local t = targets[i]
    if t ~= self.ignoreIndex then
      local value
      if input:dim() == 1 then
        value = (not self.sizeAverage and self.weights) and -weightOf(self, t) or -1
      else
        value = -weightOf(self, t)
        if self.sizeAverage and total ~= 0 then
          value = value / total
        end
      end
      g._storage[g._offset + (i - 1) * classes + t] = value
    end
  end
  return self.gradInput
end
