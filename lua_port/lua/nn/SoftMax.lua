-- nn.SoftMax: exp(x - max) / sum over the feature dimension: the only one of a 1-D
-- input, the second of a 2-D batch, the first of a 3-D (C, H, W) input (per pixel), the
-- second of a 4-D batch. gradInput = y * (gradOutput - sum(gradOutput * y)).

local softmax = {}
nn._softmax = softmax

--- (frames, dim, stride) of Torch7's softmax layout for `t`, or an error at `level`.
function softmax.layout(t, level)
  if not torch.isTensor(t) then
    error("input must be a tensor, got a " .. torch.type(t), level + 1)
  end
  local s, d = t._size, #t._size
  if d == 1 then return 1, s[1], 1 end
  if d == 2 then return s[1], s[2], 1 end
  if d == 3 then return 1, s[1], s[2] * s[3] end
  if d == 4 then return s[1], s[2], s[3] * s[4] end
  error(string.format("1D, 2D, 3D or 4D tensor expected, got a %dD tensor", d), level + 1)
end

--- Calls f(base, dim, stride) for every line along the feature dimension (base: the
--- 1-based position of the line's first element in a contiguous tensor).
function softmax.lines(t, f, level)
  local frames, dim, stride = softmax.layout(t, level + 1)
  for frame = 0, frames - 1 do
    for k = 0, stride - 1 do
      f(frame * dim * stride + k + 1, dim, stride)
    end
  end
end

local exp = math.exp
local util = torch._util
local SoftMax = torch.class("nn.SoftMax", "nn.Module")

function SoftMax:updateOutput(input)
  local x = softmax.layout(input, 1) and input:contiguous()
  local xd, xo, out = x._storage, x._offset, {}
  for k = 1, x:nElement() do out[k] = 0 end
  softmax.lines(x, function(base, dim, stride)
    local max = -math.huge
    for d = 0, dim - 1 do
      local v = xd[xo + base + d * stride]
      if v >= max then max = v end
    end
    local sum = 0
    for d = 0, dim - 1 do
      local z = exp(xd[xo + base + d * stride] - max)
      out[base + d * stride] = z
      sum = sum + z
    end
    local scale = 1 / sum
    for d = 0, dim - 1 do
      out[base + d * stride] = out[base + d * stride] * scale
    end
  end, 1)
  self.output:set(util.adoptStorage(out, util.storageClassOf(self.output)), 1, input:size())
  return self.output
end

function SoftMax:updateGradInput(input, gradOutput)
  local y, g = self.output:contiguous(), gradOutput:contiguous()
  local yd, yo, gd, go, out = y._storage, y._offset, g._storage, g._offset, {}
  for k = 1, y:nElement() do out[k] = 0 end
  softmax.lines(y, function(base, dim, stride)
    local sum = 0
    for d = 0, dim - 1 do
      local p = base + d * stride
      sum = sum + gd[go + p] * yd[yo + p]
    end
    for d = 0, dim - 1 do
      local p = base + d * stride
      out[p] = yd[yo + p] * (gd[go + p] - sum)
    end
  end, 1)
  self.gradInput:set(util.adoptStorage(out, util.storageClassOf(self.gradInput)), 1, y:size())
  return self.gradInput
end
