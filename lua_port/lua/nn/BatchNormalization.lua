-- nn.BatchNormalization(nOutput, [eps = 1e-5], [momentum = 0.1], [affine = true]): for
-- [N, nOutput] input (nn.SpatialBatchNormalization: [N, nOutput, H, W]), per feature f:
--   training:   y = (x - mean) / sqrt(var + eps) * weight[f] + bias[f], mean and var
--               over the batch (and the pixels), var BIASED; then
--               running_mean = momentum * mean + (1 - momentum) * running_mean,
--               running_var  = momentum * var_unbiased + (1 - momentum) * running_var
--               (the running statistics stay as they are when the batch has one sample);
--   evaluation: the running statistics in place of the batch's (a single sample without
--               the batch dimension is accepted then).
-- weight starts uniform in [0, 1], bias at 0, running_mean at 0, running_var at 1.
-- Files of version 1 kept running_std (1/sqrt(var + eps)): read converts it.

local util = torch._util
local sqrt = math.sqrt

local BN, parent = torch.class("nn.BatchNormalization", "nn.Module")

BN.__version = 2
BN.nDim = 2

function BN:__init(nOutput, eps, momentum, affine)
  parent.__init(self)
  if not (nOutput and type(nOutput) == "number") then
    error("Missing argument #1: dimensionality of input. ", 3)
  end
  if nOutput == 0 then
    error("To set affine=false call BatchNormalization(nOutput,  eps, momentum, false) ", 3)
  end
  if affine ~= nil then
    if type(affine) ~= "boolean" then
      error("affine has to be true/false", 3)
    end
    self.affine = affine
  else
    self.affine = true
  end
  self.eps = eps or 1e-5
  self.train = true
  self.momentum = momentum or 0.1
  self.running_mean = torch.zeros(nOutput)
  self.running_var = torch.ones(nOutput)
  if self.affine then
    self.weight = torch.Tensor(nOutput)
    self.bias = torch.Tensor(nOutput)
    self.gradWeight = torch.Tensor(nOutput)
    self.gradBias = torch.Tensor(nOutput)
    self:reset()
  end
end

function BN:reset()
  if self.weight then
    self.weight:uniform()
  end
  if self.bias then
    self.bias:zero()
  end
  self.running_mean:zero()
  self.running_var:fill(1)
end

function BN:checkInputDim(input, level)
  level = (level or 1) + 1
  if not torch.isTensor(input) then
    error("input must be a tensor, got a " .. torch.type(input), level)
  end
  local iDim = input:dim()
  if not (iDim == self.nDim or (iDim == self.nDim - 1 and self.train == false)) then
    error(string.format("only mini-batch supported (%dD tensor), got %dD tensor instead", self.nDim, iDim), level)
  end
  local featDim = (iDim == self.nDim - 1) and 1 or 2
  if input:size(featDim) ~= self.running_mean:nElement() then
    error(string.format("got %d-feature tensor, expected %d", input:size(featDim),
      self.running_mean:nElement()), level)
  end
end

-- (contiguous storage, offset, N, features, pixels per feature and sample).
local function layout(self, t)
  local c = t:contiguous()
  local s = c._size
  if #s == self.nDim - 1 then  -- one sample (evaluation)
    local pixels = 1
    for d = 2, #s do pixels = pixels * s[d] end
    return c._storage, c._offset, 1, s[1], pixels
  end
  local pixels = 1
  for d = 3, #s do pixels = pixels * s[d] end
  return c._storage, c._offset, s[1], s[2], pixels
end

local function value(t, i)
  return t._storage[t._offset + (i - 1) * t._stride[1] + 1]
end

local function store(t, i, v)
  t._storage[t._offset + (i - 1) * t._stride[1] + 1] = v
end

-- Calls f(f, positions) for each feature, positions: the 1-based storage positions of
-- its elements (offset included).
local function features(N, F, P, offset, f)
  for feature = 1, F do
    local positions = {}
    for n = 0, N - 1 do
      local base = offset + (n * F + feature - 1) * P
      for p = 1, P do
        positions[#positions + 1] = base + p
      end
    end
    f(feature, positions)
  end
end

function BN:updateOutput(input)
  self:checkInputDim(input)
  local xd, xo, N, F, P = layout(self, input)
  local train = self.train and N > 1
  self.save_mean = self.save_mean or input.new()
  self.save_mean:resizeAs(self.running_mean)
  self.save_std = self.save_std or input.new()
  self.save_std:resizeAs(self.running_var)
  local out = {}
  for k = 1, N * F * P do out[k] = 0 end
  local n = N * P
  features(N, F, P, xo, function(f, positions)
    local mean, invstd
    if train then
      local sum = 0
      for _, p in ipairs(positions) do sum = sum + xd[p] end
      mean = sum / n
      store(self.save_mean, f, mean)
      sum = 0
      for _, p in ipairs(positions) do
        local d = xd[p] - mean
        sum = sum + d * d
      end
      invstd = (sum == 0 and self.eps == 0) and 0 or 1 / sqrt(sum / n + self.eps)
      store(self.save_std, f, invstd)
      store(self.running_mean, f, self.momentum * mean + (1 - self.momentum) * value(self.running_mean, f))
      store(self.running_var, f, self.momentum * (sum / (n - 1)) + (1 - self.momentum) * value(self.running_var, f))
    else
      mean = value(self.running_mean, f)
      invstd = 1 / sqrt(value(self.running_var, f) + self.eps)
    end
    local w = self.weight and value(self.weight, f) or 1
    local b = self.bias and value(self.bias, f) or 0
    for _, p in ipairs(positions) do
      out[p - xo] = ((xd[p] - mean) * invstd) * w + b
    end
  end)
  self.output:set(util.adoptStorage(out, util.storageClassOf(self.output)), 1, input:size())
  return self.output
end

local function backward(self, input, gradOutput, scale, gradInput, gradWeight, gradBias)
  self:checkInputDim(input, 2)
  self:checkInputDim(gradOutput, 2)
  if not (self.save_mean and self.save_std) then
    error("must call :updateOutput() first", 2)
  end
  if not input:isSameSizeAs(gradOutput) then
    error(string.format("input and gradOutput shapes do not match: %s and %s", util.sizeString(input._size),
      util.sizeString(gradOutput._size)), 2)
  end
  local xd, xo, N, F, P = layout(self, input)
  local gd, go = layout(self, gradOutput)
  local train = self.train and N > 1
  scale = scale or 1
  local out = gradInput and {} or nil
  if out then
    for k = 1, N * F * P do out[k] = 0 end
  end
  local n = N * P
  features(N, F, P, 0, function(f, positions)
    local w = self.weight and value(self.weight, f) or 1
    local mean, invstd
    if train then
      mean, invstd = value(self.save_mean, f), value(self.save_std, f)
    else
      mean = value(self.running_mean, f)
      invstd = 1 / sqrt(value(self.running_var, f) + self.eps)
    end
    local sum, dotp = 0, 0
    for _, p in ipairs(positions) do
      local g = gd[go + p]
      sum = sum + g
      dotp = dotp + (xd[xo + p] - mean) * g
    end
    if out then
      if train then
        local k = dotp * invstd * invstd / n
        local gradMean = sum / n
        for _, p in ipairs(positions) do
          out[p] = (gd[go + p] - gradMean - (xd[xo + p] - mean) * k) * invstd * w
        end
      else
        for _, p in ipairs(positions) do
          out[p] = gd[go + p] * invstd * w
        end
      end
    end
    if gradWeight then
      store(gradWeight, f, value(gradWeight, f) + scale * dotp * invstd)
    end
    if gradBias then
      store(gradBias, f, value(gradBias, f) + scale * sum)
    end
  end)
  if out then
    gradInput:set(util.adoptStorage(out, util.storageClassOf(gradInput)), 1, gradOutput:size())
  end
  return self.gradInput
end

function BN:backward(input, gradOutput, scale)
  return (backward(self, input, gradOutput, scale, self.gradInput, self.gradWeight, self.gradBias))
end

function BN:updateGradInput(input, gradOutput)
  return (backward(self, input, gradOutput, 1, self.gradInput))
end

function BN:accGradParameters(input, gradOutput, scale)
  return (backward(self, input, gradOutput, scale, nil, self.gradWeight, self.gradBias))
end

function BN:read(file, version)
  parent.read(self, file)
  if version < 2 and self.running_std then
    self.running_var = self.running_std:pow(-2):add(-self.eps)
    self.running_std = nil
  end
end

function BN:clearState()
  nn.utils.clear(self, { "buffer", "buffer2", "centered", "std", "normalized", "_input", "_gradOutput",
    "save_mean", "save_std" })
  return parent.clearState(self)
end

function BN:__tostring__()
  return string.format("%s (%dD) (%d)", torch.type(self), self.nDim, self.running_mean:nElement())
end
