-- nn.SpatialMaxPooling(kW, kH, [dW = kW], [dH = kH], [padW = 0], [padH = 0]): the maximum
-- of each window of a 3-D or 4-D input; :ceil() / :floor() choose the output-size
-- rounding (floor by default; see nn/pooling.lua). Padding never wins (it is not read);
-- the first maximum in row-major window order wins ties, and a NaN never replaces the
-- running maximum. self.indices (a LongTensor) holds, per output, the 1-based position
-- y*W + x + 1 of the maximum in its plane; the gradient goes to that position only.

local pooling = nn._pooling
local util = torch._util

local SpatialMaxPooling, parent = torch.class("nn.SpatialMaxPooling", "nn.Module")

function SpatialMaxPooling:__init(kW, kH, dW, dH, padW, padH)
  parent.__init(self)
  self.kW = kW
  self.kH = kH
  self.dW = dW or kW
  self.dH = dH or kH
  self.padW = padW or 0
  self.padH = padH or 0
  self.ceil_mode = false
  self.indices = torch.LongTensor()
end

function SpatialMaxPooling:ceil()
  self.ceil_mode = true
  return self
end

function SpatialMaxPooling:floor()
  self.ceil_mode = false
  return self
end

local function maxpool(g, m, xd, xo, out, index)
  local H, W, oh, ow = g.H, g.W, g.oh, g.ow
  local kH, kW, dH, dW, padH, padW = m.kH, m.kW, m.dH, m.dW, m.padH, m.padW
  local k = 0
  for plane = 0, g.planes - 1 do
    local base = xo + plane * H * W + 1
    for y = 0, oh - 1 do
      local h0 = y * dH - padH
      local h1 = h0 + kH < H and h0 + kH or H
      if h0 < 0 then h0 = 0 end
      for x = 0, ow - 1 do
        local w0 = x * dW - padW
        local w1 = w0 + kW < W and w0 + kW or W
        if w0 < 0 then w0 = 0 end
        local best, at = -math.huge, -1
        for r = h0, h1 - 1 do
          for c = w0, w1 - 1 do
            local v = xd[base + r * W + c]
            if v > best then
              best, at = v, r * W + c
            end
          end
        end
        k = k + 1
        out[k], index[k] = best, at + 1
      end
    end
  end
end

function SpatialMaxPooling:updateOutput(input)
  self.ceil_mode = self.ceil_mode or false
  self.padW, self.padH = self.padW or 0, self.padH or 0
  self.indices = self.indices and self.indices:long() or torch.LongTensor()
  local g = pooling.geometry(self, input, 1)
  local x = input:contiguous()
  local out, index = {}, {}
  maxpool(g, self, x._storage, x._offset, out, index)
  self.output:set(util.adoptStorage(out, util.storageClassOf(self.output)), 1, g.sizes)
  self.indices:set(util.adoptStorage(index, util.storageClass.Long), 1, g.sizes)
  self.iheight, self.iwidth = g.H, g.W
  return self.output
end

function SpatialMaxPooling:updateGradInput(input, gradOutput)
  local g = pooling.geometry(self, input, 1)
  local grad = pooling.checkGradOutput(g, gradOutput, 1)
  local gd, go, index = grad._storage, grad._offset, self.indices:contiguous()
  local id, io = index._storage, index._offset
  local gx = {}
  for k = 1, g.planes * g.H * g.W do
    gx[k] = 0
  end
  local plane, k = g.oh * g.ow, 0
  for p = 0, g.planes - 1 do
    local base = p * g.H * g.W
    for _ = 1, plane do
      k = k + 1
      local at = id[io + k]
      if at > 0 then
        gx[base + at] = gx[base + at] + gd[go + k]
      end
    end
  end
  self.gradInput:set(util.adoptStorage(gx, util.storageClassOf(self.gradInput)), 1, input:size())
  return self.gradInput
end

function SpatialMaxPooling:empty()
  self:clearState()
end

function SpatialMaxPooling:__tostring__()
  local s = string.format("%s(%dx%d, %d,%d", torch.type(self), self.kW, self.kH, self.dW, self.dH)
  if (self.padW or self.padH) and (self.padW ~= 0 or self.padH ~= 0) then
    s = s .. ", " .. self.padW .. "," .. self.padH
  end
  return s .. ")"
end

function SpatialMaxPooling:clearState()
  if self.indices then
    self.indices:set()
  end
  return parent.clearState(self)
end
