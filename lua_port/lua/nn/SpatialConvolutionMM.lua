-- nn.SpatialConvolutionMM(nInputPlane, nOutputPlane, kW, kH, [dW], [dH], [padW], [padH]):
-- nn.SpatialConvolution with Torch7's "MM" weight layout, nOutputPlane x
-- (nInputPlane*kH*kW) (column (c*kH + i)*kW + j): the same numbers, one matrix row per
-- output plane. The loops are in nn/convolution.lua.

local spatial, convolution = nn.spatial, nn._convolution

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

-- noBias() and reset([stdv]) as nn.SpatialConvolution's (the weight's layout does not matter).
SpatialConvolutionMM.noBias = nn.SpatialConvolution.noBias
SpatialConvolutionMM.reset = nn.SpatialConvolution.reset

local function backCompatibility(self)
  self.padW, self.padH = self.padW or self.padding or 0, self.padH or self.padding or 0
  self.padding = nil
end

function SpatialConvolutionMM:updateOutput(input)
  backCompatibility(self)
  return (convolution.updateOutput(self, input))
end

function SpatialConvolutionMM:updateGradInput(input, gradOutput)
  if self.gradInput then
    return (convolution.updateGradInput(self, input, gradOutput))
  end
end

function SpatialConvolutionMM:accGradParameters(input, gradOutput, scale)
  convolution.accGradParameters(self, input, gradOutput, scale)
end

SpatialConvolutionMM.__tostring__ = nn.SpatialConvolution.__tostring__
