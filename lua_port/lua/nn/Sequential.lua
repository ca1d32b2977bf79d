-- nn.Sequential: modules applied one after the other; backward runs them in reverse,
-- each receiving the output its predecessor produced in the forward pass.

local Sequential, _ = torch.class("nn.Sequential", "nn.Container")

function Sequential:__len()
  return #self.modules
end

function Sequential:add(module)
  if #self.modules == 0 then
    self.gradInput = module.gradInput
  end
  table.insert(self.modules, module)
  self.output = module.output
  return self
end

function Sequential:insert(module, index)
  index = index or (#self.modules + 1)
  if index > (#self.modules + 1) or index < 1 then
    error("index should be contiguous to existing modules", 2)
  end
  table.insert(self.modules, index, module)
  self.output = self.modules[#self.modules].output
  self.gradInput = self.modules[1].gradInput
end

function Sequential:remove(index)
  index = index or #self.modules
  if index > #self.modules or index < 1 then
    error("index out of range", 2)
  end
  table.remove(self.modules, index)
  if #self.modules > 0 then
    self.output = self.modules[#self.modules].output
    self.gradInput = self.modules[1].gradInput
  else
    self.output = torch.Tensor()
    self.gradInput = torch.Tensor()
  end
end

function Sequential:updateOutput(input)
  local current = input
  for i = 1, #self.modules do
    current = self:rethrowErrors(self.modules[i], i, "updateOutput", current)
  end
  self.output = current
  return current
end

function Sequential:updateGradInput(input, gradOutput)
  local currentGrad, currentModule = gradOutput, self.modules[#self.modules]
  for i = #self.modules - 1, 1, -1 do
    local previous = self.modules[i]
    currentGrad = self:rethrowErrors(currentModule, i + 1, "updateGradInput", previous.output, currentGrad)
    currentModule = previous
  end
  currentGrad = self:rethrowErrors(currentModule, 1, "updateGradInput", input, currentGrad)
  self.gradInput = currentGrad
  return currentGrad
end

function Sequential:accGradParameters(input, gradOutput, scale)
  scale = scale or 1
  local currentGrad, currentModule = gradOutput, self.modules[#self.modules]
  for i = #self.modules - 1, 1, -1 do
    local previous = self.modules[i]
    self:rethrowErrors(currentModule, i + 1, "accGradParameters", previous.output, currentGrad, scale)
    currentGrad = currentModule.gradInput
    currentModule = previous
  end
  self:rethrowErrors(currentModule, 1, "accGradParameters", input, currentGrad, scale)
end

function Sequential:backward(input, gradOutput, scale)
  scale = scale or 1
  local currentGrad, currentModule = gradOutput, self.modules[#self.modules]
  for i = #self.modules - 1, 1, -1 do
    local previous = self.modules[i]
    currentGrad = self:rethrowErrors(currentModule, i + 1, "backward", previous.output, currentGrad, scale)
    currentModule.gradInput = currentGrad
    currentModule = previous
  end
  currentGrad = self:rethrowErrors(currentModule, 1, "backward", input, currentGrad, scale)
  self.gradInput = currentGrad
  return currentGrad
end

function Sequential:__tostring__()
  local parts = { "nn.Sequential {\n  [input" }
  for i = 1, #self.modules do
    parts[#parts + 1] = " -> (" .. i .. ")"
  end
  parts[#parts + 1] = " -> output]"
  for i = 1, #self.modules do
    parts[#parts + 1] = "\n  (" .. i .. "): " .. tostring(self.modules[i]):gsub("\n", "\n  ")
  end
  parts[#parts + 1] = "\n}"
  return table.concat(parts)
end
