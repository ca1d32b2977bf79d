-- nn.LogSoftMax: x - max - log(sum exp(x - max)) over the feature dimension (laid out as
-- for nn.SoftMax); gradInput = gradOutput - exp(y) * sum(gradOutput).

local softmax = nn._softmax
local exp, log = math.exp, math.log
local util = torch._util

local LogSoftMax = torch.class("nn.LogSoftMax", "nn.Module")

function LogSoftMax:updateOutput(input)
  local x = softmax.layout(input, 1) and input:contiguous()
  local xd, xo, out = x._storage, x._offset, {}
  for k = 1, x:nElement() do out[k] = 0 end
  softmax.lines(x, function(base, dim, stride)
    local max = -math.huge
    for d = 0, dim - 1 do
      local v = xd[xo + base + d * stride]
      if v > max then max = v end
    end
    local sum = 0
    for d = 0, dim - 1 do
      sum = sum + exp(xd[xo + base + d * stride] - max)
    end
    local logsum = max + log(sum)
    for d = 0, dim - 1 do
      local p = base + d * stride
      out[p] = xd[xo + p] - logsum
    end
  end, 1)
  self.output:set(util.adoptStorage(out, util.storageClassOf(self.output)), 1, input:size())
  return self.output
end

function LogSoftMax:updateGradInput(input, gradOutput)
  local y, g = self.output:contiguous(), gradOutput:contiguous()
  local yd, yo, gd, go, out = y._storage, y._offset, g._storage, g._offset, {}
  for k = 1, y:nElement() do out[k] = 0 end
  softmax.lines(y, function(base, dim, stride)
    local sum = 0
    for d = 0, dim - 1 do
      sum = sum + gd[go + base + d * stride]
    end
    for d = 0, dim - 1 do
      local p = base + d * stride
      out[p] = gd[go + p] - exp(yd[yo + p]) * sum
    end
  end, 1)
  self.gradInput:set(util.adoptStorage(out, util.storageClassOf(self.gradInput)), 1, y:size())
  return self.gradInput
end
