-- nn.Tanh: y = tanh(x); gradInput = gradOutput * (1 - y^2), from the saved output.

local pointwise = nn._pointwise
local tanh = torch._util.tanh

local Tanh = torch.class("nn.Tanh", "nn.Module")

function Tanh:updateOutput(input)
  pointwise.checkTensor(input, "input")
  return (pointwise.map(self, "output", input, tanh))
end

function Tanh:updateGradInput(input, gradOutput)
  return (pointwise.map2(self, "gradInput", gradOutput, self.output, function(g, y)
    return g * (1 - y * y)
  end, self.output))
end
