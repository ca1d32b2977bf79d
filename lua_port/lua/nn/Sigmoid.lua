-- nn.Sigmoid: y = 1 / (1 + exp(-x)); gradInput = gradOutput * (1 - y) * y.

local pointwise = nn._pointwise
local exp = math.exp

local Sigmoid = torch.class("nn.Sigmoid", "nn.Module")

function Sigmoid:updateOutput(input)
  pointwise.checkTensor(input, "input")
  return (pointwise.map(self, "output", input, function(x) return 1 / (1 + exp(-x)) end))
end

function Sigmoid:updateGradInput(input, gradOutput)
  return (pointwise.map2(self, "gradInput", gradOutput, self.output, function(g, y)
    return g * (1 - y) * y
  end, self.output))
end
