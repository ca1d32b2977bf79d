-- nn.SpatialConvolutionMM(nInputPlane, nOutputPlane, kW, kH, [dW], [dH], [padW], [padH]):
-- Torch7's convolution (cross-correlation) with zero padding, weight nOutputPlane x
-- (nInputPlane*kH*kW) (column (c*kH + i)*kW + j), bias nOutputPlane; 3-D (C, H, W) or 4-D
-- (N, C, H, W) input. Computed by nn.spatial's "linear" kernel, tap by tap.

local spatial = nn.spatial

local SpatialConvolutionMM, parent = torch.class("nn.SpatialConvolutionMM", "nn.Module")

function SpatialConvolutionMM:__init(nInputPlane, nOutputPlane, kW, kH, dW, dH, padW, padH)
  parent.__init(self)
  spatial.checkShape(self, "SpatialConvolutionMM", nInputPlane, nOutputPlane, kW, kH, dW, dH, padW,
    padH, 3)
  local columns = self.nInputPlane * self.kH * self.kW
  self.weight = torch.Tensor(self.nOutputPlane, columns)
  self.bias = torch.Tensor(self.nOutputPlane)
  self.gradWeight = torch.Tensor(self.nOutputPlane, columns)
  self.gradBias = torch.Tensor(self.nOutputPlane)
  self:reset()
end

function SpatialConvolutionMM:noBias()
  self.bias = nil
  self.gradBias = nil
  return self
end

function SpatialConvolutionMM:reset(stdv)
  stdv = stdv or 1 / math.sqrt(self.kW * self.kH * self.nInputPlane)
  self.weight:uniform(-stdv, stdv)
  if self.bias then
    self.bias:uniform(-stdv, stdv)
  end
  return self
end

-- The weight as [O, C, kH, kW] numbers (a view when contiguous).
local function weight4d(self)
  return self.weight:contiguous()
end

function SpatialConvolutionMM:updateOutput(input)
  local g, x = spatial.geometry(self, input, 2)
  self.output:resize(spatial.outputSize(g))
  spatial.forward(g, spatial.kernels.linear, x, weight4d(self), self.bias, self.output._storage)
  return self.output
end

function SpatialConvolutionMM:updateGradInput(input, gradOutput)
  local g, x = spatial.geometry(self, input, 2)
  local grad = spatial.checkGradOutput(g, gradOutput, 2)
  local buffer = spatial.zeros(x:nElement())
  spatial.backward(g, spatial.kernels.linear, x, weight4d(self), grad, buffer, nil)
  self.gradInput:resizeAs(input):copy(spatial.asTensor(buffer, x._size))
  return self.gradInput
end

function SpatialConvolutionMM:accGradParameters(input, gradOutput, scale)
  scale = scale or 1
  local g, x = spatial.geometry(self, input, 2)
  local grad = spatial.checkGradOutput(g, gradOutput, 2)
  local buffer = spatial.zeros(self.weight:nElement())
  spatial.backward(g, spatial.kernels.linear, x, weight4d(self), grad, nil, buffer)
  self.gradWeight:add(scale, spatial.asTensor(buffer, self.gradWeight._size))
  if self.gradBias then
    self.gradBias:add(scale, spatial.asTensor(spatial.biasGradient(g, grad), { self.nOutputPlane }))
  end
end

function SpatialConvolutionMM:__tostring__()
  local text = string.format("%s(%d -> %d, %dx%d", torch.type(self), self.nInputPlane, self.nOutputPlane,
    self.kW, self.kH)
  if self.dW ~= 1 or self.dH ~= 1 or self.padW ~= 0 or self.padH ~= 0 then
    text = text .. string.format(", %d,%d", self.dW, self.dH)
  end
  if self.padW ~= 0 or self.padH ~= 0 then
    text = text .. string.format(", %d,%d", self.padW, self.padH)
  end
  return text .. (self.bias and ")" or ") without bias")
end
