-- nn.SpatialConvolution(nInputPlane, nOutputPlane, kW, kH, [dW], [dH], [padW], [padH]):
-- 2-D cross-correlation with zero padding (width first in the arguments, as in Torch7;
-- padH defaults to padW). weight [nOutputPlane, nInputPlane, kH, kW], bias
-- [nOutputPlane]; input 3-D (C, H, W) or 4-D (N, C, H, W). Initialised uniform in
-- +-1/sqrt(kW*kH*nInputPlane). The loops are in nn/convolution.lua.

local spatial, convolution = nn.spatial, nn._convolution

local SpatialConvolution, parent = torch.class("nn.SpatialConvolution", "nn.Module")

function SpatialConvolution:__init(nInputPlane, nOutputPlane, kW, kH, dW, dH, padW, padH)
  parent.__init(self)
  spatial.checkShape(self, "SpatialConvolution", nInputPlane, nOutputPlane, kW, kH, dW, dH, padW, padH, 3)
  self.weight = torch.Tensor(nOutputPlane, nInputPlane, kH, kW)
  self.bias = torch.Tensor(nOutputPlane)
  self.gradWeight = torch.Tensor(nOutputPlane, nInputPlane, kH, kW)
  self.gradBias = torch.Tensor(nOutputPlane)
  self:reset()
end

function SpatialConvolution:noBias()
  self.bias = nil
  self.gradBias = nil
  return self
end

--- reset([stdv]): uniform in +-stdv*sqrt(3) (default +-1/sqrt(kW*kH*nInputPlane)).
function SpatialConvolution:reset(stdv)
  if stdv then
    stdv = stdv * math.sqrt(3)
  else
    stdv = 1 / math.sqrt(self.kW * self.kH * self.nInputPlane)
  end
  self.weight:uniform(-stdv, stdv)
  if self.bias then
    self.bias:uniform(-stdv, stdv)
  end
end

-- Files from older Torch7 versions: `padding` instead of padW/padH, or a 2-D weight.
local function backCompatibility(self)
  if self.padding then
    self.padW, self.padH, self.padding = self.padding, self.padding, nil
  else
    self.padW, self.padH = self.padW or 0, self.padH or 0
  end
  if self.weight:dim() == 2 then
    self.weight = self.weight:view(self.nOutputPlane, self.nInputPlane, self.kH, self.kW)
  end
  if self.gradWeight and self.gradWeight:dim() == 2 then
    self.gradWeight = self.gradWeight:view(self.nOutputPlane, self.nInputPlane, self.kH, self.kW)
  end
end

function SpatialConvolution:updateOutput(input)
  backCompatibility(self)
  return (convolution.updateOutput(self, input))
end

function SpatialConvolution:updateGradInput(input, gradOutput)
  if self.gradInput then
    backCompatibility(self)
    return (convolution.updateGradInput(self, input, gradOutput))
  end
end

function SpatialConvolution:accGradParameters(input, gradOutput, scale)
  backCompatibility(self)
  convolution.accGradParameters(self, input, gradOutput, scale)
end

function SpatialConvolution:__tostring__()
  local s = string.format("%s(%d -> %d, %dx%d", torch.type(self), self.nInputPlane, self.nOutputPlane,
    self.kW, self.kH)
  if self.dW ~= 1 or self.dH ~= 1 or self.padW ~= 0 or self.padH ~= 0 then
    s = s .. string.format(", %d,%d", self.dW, self.dH)
  end
  if (self.padW or self.padH) and (self.padW ~= 0 or self.padH ~= 0) then
    s = s .. string.format(", %d,%d", self.padW, self.padH)
  end
  return s .. (self.bias and ")" or ") without bias")
end
