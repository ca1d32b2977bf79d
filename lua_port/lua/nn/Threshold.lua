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
  -- A loop here rather than pointwise.map with a closure: LuaJIT compiles a trace per
  -- closure object, and a new closure per call would be a new trace every time.
  local x = input:contiguous()
  local xd, xo, data = x._storage, x._offset, {}
  for k = 1, x:nElement() do
    local v = xd[xo + k]
    data[k] = v > th and v or val
  end
  self.output:set(torch._util.adoptStorage(data, torch._util.storageClassOf(self.output)), 1, input:size())
  return self.output
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
  if gradOutput:nElement() ~= input:nElement() then
    error(string.format("gradOutput has %d elements, the input %d", gradOutput:nElement(), input:nElement()), 2)
  end
  local x, g = input:contiguous(), gradOutput:contiguous()
  local xd, xo, gd, go, data = x._storage, x._offset, g._storage, g._offset, {}
  for k = 1, x:nElement() do
    data[k] = xd[xo + k] > th and gd[go + k] or 0
  end
  self.gradInput:set(torch._util.adoptStorage(data, torch._util.storageClassOf(self.gradInput)), 1, input:size())
  return self.gradInput
end

function Threshold:__tostring__()
  return torch.type(self)
end
