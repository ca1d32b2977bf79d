-- nn.ParallelTable: child i is applied to input[i]; the output is the table of results.

local ParallelTable, parent = torch.class("nn.ParallelTable", "nn.Container")

function ParallelTable:__init()
  parent.__init(self)
  self.modules = {}
  self.output = {}
  self.gradInput = {}
end

function ParallelTable:updateOutput(input)
  for i = 1, #self.modules do
    self.output[i] = self:rethrowErrors(self.modules[i], i, "updateOutput", input[i])
  end
  return self.output
end

function ParallelTable:updateGradInput(input, gradOutput)
  for i, module in ipairs(self.modules) do
    self.gradInput[i] = self:rethrowErrors(module, i, "updateGradInput", input[i], gradOutput[i])
  end
  return self.gradInput
end

function ParallelTable:accGradParameters(input, gradOutput, scale)
  scale = scale or 1
  for i, module in ipairs(self.modules) do
    self:rethrowErrors(module, i, "accGradParameters", input[i], gradOutput[i], scale)
  end
end

ParallelTable.__tostring__ = parent.branches
