-- nn.CustomConv: the convolution of the Torch7 custom convolution question whose window combines tan(input + weight)
-- by a product instead of summing input * weight, ported to Torch7's module protocol.
--
--   nn.CustomConv(k [, kernel])
--       the original module: one 2-D map in, one 2-D map out, weight k x k, no bias,
--       stride 1, no padding (3-D (1, H, W) and 4-D (N, 1, H, W) input work too).
--   nn.CustomConv(nInputPlane, nOutputPlane, kW, kH, [dW], [dH], [padW], [padH] [, kernel])
--       SpatialConvolutionMM's arguments and zero padding; weight
--       [nOutputPlane, nInputPlane, kH, kW], bias [nOutputPlane]; 3-D (C, H, W) or 4-D
--       (N, C, H, W) input.
-- kernel: 'tanprod' (default, the original's), 'linear' (then the module equals
-- nn.SpatialConvolutionMM), another name registered in nn.CustomConv.kernels, or a kernel
-- table (see nn/spatial.lua). setKernel(kernel) switches it.
--
-- Unlike the original, the module follows Torch7's protocol: updateOutput reads its input
-- argument (forward is not overridden), updateGradInput overwrites gradInput,
-- accGradParameters ADDS scale * the parameters' gradient, and the tanprod gradient is
-- formed from prefix and suffix products, never by dividing by tan(input + weight).

local spatial = nn.spatial

local CustomConv, parent = torch.class("nn.CustomConv", "nn.Module")

CustomConv.kernels = spatial.kernels

local USAGE = "nn.CustomConv(k [, kernel]) or nn.CustomConv(nInputPlane, nOutputPlane, kW, kH, "
  .. "[dW], [dH], [padW], [padH] [, kernel]) expected"

function CustomConv:__init(...)
  parent.__init(self)
  local args, nargs = { ... }, select("#", ...)
  local kernel = "tanprod"
  local last = args[nargs]
  if type(last) == "string" or (type(last) == "table" and not torch.isTensor(last)) then
    kernel, args[nargs], nargs = last, nil, nargs - 1
  end
  if nargs == 1 then
    spatial.checkShape(self, "CustomConv", 1, 1, args[1], args[1], 1, 1, 0, 0, 3)
    self.mapMode = true
    self.weight = torch.Tensor(self.kH, self.kW)
    self.gradWeight = torch.Tensor(self.kH, self.kW)
  elseif nargs >= 4 and nargs <= 8 then
    spatial.checkShape(self, "CustomConv", args[1], args[2], args[3], args[4], args[5], args[6], args[7],
      args[8], 3)
    self.weight = torch.Tensor(self.nOutputPlane, self.nInputPlane, self.kH, self.kW)
    self.bias = torch.Tensor(self.nOutputPlane)
    self.gradWeight = torch.Tensor(self.nOutputPlane, self.nInputPlane, self.kH, self.kW)
    self.gradBias = torch.Tensor(self.nOutputPlane)
  else
    error(USAGE .. string.format(", got %d arguments", select("#", ...)), 3)
  end
  self.kernelName = type(kernel) == "string" and kernel or "custom"
  self.kernel = spatial.kernel(kernel, 3)
  self:reset()
end

function CustomConv:setKernel(kernel)
  self.kernel = spatial.kernel(kernel, 2)
  self.kernelName = type(kernel) == "string" and kernel or "custom"
  return self
end

function CustomConv:noBias()
  self.bias = nil
  self.gradBias = nil
  return self
end

--- Weight (and bias) uniform in [-stdv, stdv]: stdv = 1/sqrt(kW*kH*nInputPlane) as
--- SpatialConvolutionMM, 0.5 for the original form (its torch.rand(k, k):add(-0.5)).
function CustomConv:reset(stdv)
  stdv = stdv or (self.mapMode and 0.5 or 1 / math.sqrt(self.kW * self.kH * self.nInputPlane))
  self.weight:uniform(-stdv, stdv)
  if self.bias then
    self.bias:uniform(-stdv, stdv)
  end
  return self
end

local function checkParameters(self, level)
  if self.weight:nElement() ~= self.nOutputPlane * self.nInputPlane * self.kH * self.kW then
    error(string.format("weight has %d elements, expected %dx%dx%dx%d", self.weight:nElement(),
      self.nOutputPlane, self.nInputPlane, self.kH, self.kW), level + 1)
  end
  return self.weight:contiguous()
end

function CustomConv:updateOutput(input)
  local g, x = spatial.geometry(self, input, 2)
  local w = checkParameters(self, 2)
  self.output:resize(spatial.outputSize(g))
  spatial.forward(g, self.kernel, x, w, self.bias, self.output._storage)
  return self.output
end

function CustomConv:updateGradInput(input, gradOutput)
  local g, x = spatial.geometry(self, input, 2)
  local grad = spatial.checkGradOutput(g, gradOutput, 2)
  local buffer = spatial.zeros(x:nElement())
  spatial.backward(g, self.kernel, x, checkParameters(self, 2), grad, buffer, nil)
  self.gradInput:resizeAs(input):copy(spatial.asTensor(buffer, x._size))
  return self.gradInput
end

function CustomConv:accGradParameters(input, gradOutput, scale)
  scale = scale or 1
  local g, x = spatial.geometry(self, input, 2)
  local grad = spatial.checkGradOutput(g, gradOutput, 2)
  local buffer = spatial.zeros(self.weight:nElement())
  spatial.backward(g, self.kernel, x, checkParameters(self, 2), grad, nil, buffer)
  self.gradWeight:add(scale, spatial.asTensor(buffer, self.gradWeight._size))
  if self.gradBias then
    self.gradBias:add(scale, spatial.asTensor(spatial.biasGradient(g, grad), { self.nOutputPlane }))
  end
end

function CustomConv:__tostring__()
  if self.mapMode then
    return string.format("%s(%d, %s)", torch.type(self), self.kW, self.kernelName)
  end
  local text = string.format("%s(%d -> %d, %dx%d", torch.type(self), self.nInputPlane, self.nOutputPlane,
    self.kW, self.kH)
  if self.dW ~= 1 or self.dH ~= 1 or self.padW ~= 0 or self.padH ~= 0 then
    text = text .. string.format(", %d,%d", self.dW, self.dH)
  end
  if self.padW ~= 0 or self.padH ~= 0 then
    text = text .. string.format(", %d,%d", self.padW, self.padH)
  end
  return text .. ", " .. self.kernelName .. (self.bias and ")" or ", without bias)")
end

