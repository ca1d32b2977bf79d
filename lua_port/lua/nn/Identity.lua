-- nn.Identity: output = input and gradInput = gradOutput (the same objects, not copies).

local Identity, _ = torch.class("nn.Identity", "nn.Module")

function Identity:updateOutput(input)
  self.output = input
  return self.output
end

function Identity:updateGradInput(input, gradOutput)
  self.gradInput = gradOutput
  return self.gradInput
end

function Identity:clearState()
  return nn.utils.release(self, "output", "gradInput")  -- the input's tensors: not emptied
end
