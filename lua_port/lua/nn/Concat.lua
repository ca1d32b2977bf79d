-- nn.Concat(dimension): every child gets the same input; their outputs are concatenated
-- along `dimension` (taken as given: with batched input, the channel dimension is 2).
-- Backward: each child gets its slice of gradOutput, and their gradInputs are summed.

local Concat, parent = torch.class("nn.Concat", "nn.Container")

function Concat:__init(dimension)
  parent.__init(self)
  self.outputSize = torch.LongStorage()
  self.dimension = dimension
end

function Concat:updateOutput(input)
  self.outputSize = self.outputSize or torch.LongStorage()
  local outs = {}
  for i = 1, #self.modules do
    local current = self:rethrowErrors(self.modules[i], i, "updateOutput", input)
    outs[i] = current
    if i == 1 then
      self.outputSize:resize(current:dim()):copy(current:size())
    else
      self.outputSize[self.dimension] = self.outputSize[self.dimension] + current:size(self.dimension)
    end
  end
  self.output:resize(self.outputSize)
  local offset = 1
  for i = 1, #self.modules do
    local current = outs[i]
    self.output:narrow(self.dimension, offset, current:size(self.dimension)):copy(current)
    offset = offset + current:size(self.dimension)
  end
  return self.output
end

local function backward(self, method, input, gradOutput, scale)
  scale = scale or 1
  if torch.type(input) == "table" then
    error("nn.Concat with a table input is not in lua_port's Torch7 shim", 2)
  end
  if torch.type(self.gradInput) == "table" then
    self.gradInput = input:clone()
  else
    self.gradInput:resizeAs(input)
  end
  local offset = 1
  for i, module in ipairs(self.modules) do
    local current = module.output
    local slice = gradOutput:narrow(self.dimension, offset, current:size(self.dimension))
    local gradInput = self:rethrowErrors(module, i, method, input, slice, scale)
    if gradInput then
      if i == 1 then
        self.gradInput:copy(gradInput)
      else
        self.gradInput:add(gradInput)
      end
    end
    offset = offset + current:size(self.dimension)
  end
  return self.gradInput
end

function Concat:updateGradInput(input, gradOutput)
  return backward(self, "updateGradInput", input, gradOutput)
end

function Concat:backward(input, gradOutput, scale)
  return backward(self, "backward", input, gradOutput, scale)
end

function Concat:accGradParameters(input, gradOutput, scale)
  scale = scale or 1
  local offset = 1
  for i, module in ipairs(self.modules) do
    local current = module.output
    self:rethrowErrors(module, i, "accGradParameters", input,
      gradOutput:narrow(self.dimension, offset, current:size(self.dimension)), scale)
    offset = offset + current:size(self.dimension)
  end
end

Concat.__tostring__ = parent.branches
