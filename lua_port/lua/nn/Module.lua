-- nn.Module: Torch7's module protocol.
--
--   forward(input)                      -> updateOutput(input)
--   backward(input, gradOutput, scale)  -> updateGradInput(input, gradOutput), which
--       OVERWRITES self.gradInput, then accGradParameters(input, gradOutput, scale),
--       which ADDS scale * dLoss/dParameters to gradWeight / gradBias.
--   zeroGradParameters() zeroes the accumulated gradients; parameters() returns
--   {weight, bias}, {gradWeight, gradBias} (the ones present).
-- Subclasses override updateOutput / updateGradInput / accGradParameters, never forward
-- or backward: containers (nn.Sequential and friends) call the update* methods directly.

nn = nn or {}

local Module = torch.class("nn.Module")

function Module:__init()
  self.gradInput = torch.Tensor()
  self.output = torch.Tensor()
  self._type = "torch.DoubleTensor"
  self.train = true
end

function Module:parameters()
  if self.weight and self.bias then
    return { self.weight, self.bias }, { self.gradWeight, self.gradBias }
  elseif self.weight then
    return { self.weight }, { self.gradWeight }
  elseif self.bias then
    return { self.bias }, { self.gradBias }
  end
end

function Module:updateOutput(input)
  return self.output
end

function Module:forward(input)
  return self:updateOutput(input)
end

function Module:backward(input, gradOutput, scale)
  scale = scale or 1
  self:updateGradInput(input, gradOutput)
  self:accGradParameters(input, gradOutput, scale)
  return self.gradInput
end

function Module:updateGradInput(input, gradOutput)
  return self.gradInput
end

function Module:accGradParameters(input, gradOutput, scale)
end

function Module:zeroGradParameters()
  local _, gradParams = self:parameters()
  if gradParams then
    for i = 1, #gradParams do
      gradParams[i]:zero()
    end
  end
end

function Module:updateParameters(learningRate)
  local params, gradParams = self:parameters()
  if params then
    for i = 1, #params do
      params[i]:add(-learningRate, gradParams[i])
    end
  end
end

function Module:training()
  self.train = true
  return self
end

function Module:evaluate()
  self.train = false
  return self
end

function Module:reset()
  return self
end

-- The shim holds doubles only: type conversions keep the module as it is.
function Module:type(typeName)
  if typeName == nil then
    return self._type
  end
  return self
end

function Module:double()
  return self
end
Module.float = Module.double

function Module:clearState()
  self.output = torch.Tensor()
  self.gradInput = torch.Tensor()
  return self
end

function Module:__call__(input, gradOutput)
  self:forward(input)
  if gradOutput then
    self:backward(input, gradOutput)
    return self.output, self.gradInput
  end
  return self.output
end

function Module:__tostring__()
  return torch.type(self)
end
