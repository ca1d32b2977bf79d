-- nn.Threshold([threshold = 1e-6], [value = 0], [inplace = false]):
-- y = x if x > threshold else value (strictly greater); the gradient passes where
-- x > threshold. In place, the input itself is overwritten (value must not exceed the
-- threshold then).

local pointwise = nn._pointwise

local Threshold, parent = torch.class("nn.Threshold", "nn.Module")

function Threshold:__init(th, v, ip)
  parent.__init(self)
  self.threshold = th or 1e-6
  self.val = v or 0
  if (th and type(th) ~= "number") or (v and type(v) ~= "number") then
    error("nn.Threshold(threshold, value)", 2)
  end
  self.inplace = ip or false
  if ip and type(ip) ~= "boolean" then
    error("in-place processing requires a boolean flag", 2)
  end
  self:validateParameters()
end

function Threshold:validateParameters()
  self.inplace = self.inplace or false
  if self.inplace and self.val > self.threshold then
    error(string.format("in-place processing requires value (%s) not exceed threshold (%s)",
      tostring(self.val), tostring(self.threshold)), 2)
  end
end

function Threshold:updateOutput(input)
  self:validateParameters()
  pointwise.checkTensor(input, "input")
  local th, val = self.threshold, self.val
  if self.inplace then
    input:apply(function(x) if x <= th then return val end end)
    self.output:set(input)
    return self.output
  end
  return (pointwise.map(self, "output", input, function(x)
    if x > th then return x end
    return val
  end))
end

function Threshold:updateGradInput(input, gradOutput)
  self:validateParameters()
  local th = self.threshold
  if self.inplace then
    local x = input:contiguous()
    local k, xd, xo = 0, x._storage, x._offset
    gradOutput:apply(function(g)
      k = k + 1
      if xd[xo + k] <= th then return 0 end
      return g
    end)
    self.gradInput:set(gradOutput)
    return self.gradInput
  end
  return (pointwise.map2(self, "gradInput", gradOutput, input, function(g, x)
    if x > th then return g end
    return 0
  end, input))
end

function Threshold:__tostring__()
  return torch.type(self)
end
