-- nn.Criterion: a loss. forward(input, target) -> updateOutput (the loss, a number, also
-- in self.output); backward(input, target) -> updateGradInput (dLoss/dInput, in
-- self.gradInput).

local Criterion = torch.class("nn.Criterion")

function Criterion:__init()
  self.gradInput = torch.Tensor()
  self.output = 0
end

function Criterion:updateOutput(input, target)
end

function Criterion:forward(input, target)
  return self:updateOutput(input, target)
end

function Criterion:backward(input, target)
  return self:updateGradInput(input, target)
end

function Criterion:updateGradInput(input, target)
end

function Criterion:clone()
  return torch._util.deepCopy(self)
end

function Criterion:type(typeName, tensorCache)
  if not typeName then
    error("Criterion: must provide a type to convert to", 2)
  end
  for key, value in pairs(self) do
    self[key] = nn.utils.recursiveType(value, typeName, tensorCache)
  end
  return self
end

function Criterion:float()
  return self:type("torch.FloatTensor")
end

function Criterion:double()
  return self:type("torch.DoubleTensor")
end

function Criterion:__call__(input, target)
  self.output = self:forward(input, target)
  self.gradInput = self:backward(input, target)
  return self.output, self.gradInput
end
