-- nn.SpatialAveragePooling(kW, kH, [dW = 1], [dH = 1], [padW = 0], [padH = 0]): the mean
-- of each window (note the stride's default: 1, not the kernel). :ceil() / :floor() as
-- for max pooling; setCountIncludePad() (the default) divides by the window's size
-- within the padded input, setCountExcludePad() by its cells inside the input. A window
-- hanging past the padded input (ceil mode) divides by its part within it.

local pooling = nn._pooling
local util = torch._util

local SpatialAveragePooling, parent = torch.class("nn.SpatialAveragePooling", "nn.Module")

function SpatialAveragePooling:__init(kW, kH, dW, dH, padW, padH)
  parent.__init(self)
  self.kW = kW
  self.kH = kH
  self.dW = dW or 1
  self.dH = dH or 1
  self.padW = padW or 0
  self.padH = padH or 0
  self.ceil_mode = false
  self.count_include_pad = true
  self.divide = true
end

function SpatialAveragePooling:ceil()
  self.ceil_mode = true
  return self
end

function SpatialAveragePooling:floor()
  self.ceil_mode = false
  return self
end

function SpatialAveragePooling:setCountIncludePad()
  self.count_include_pad = true
  return self
end

function SpatialAveragePooling:setCountExcludePad()
  self.count_include_pad = false
  return self
end

-- Files from Torch7 versions before ceil_mode and padding.
local function backwardCompatible(self)
  if self.ceil_mode == nil then
    self.ceil_mode = false
    self.count_include_pad = true
    self.padH = 0
    self.padW = 0
  end
end

-- Calls f(k, base, h0, h1, w0, w1, divisor) for output k (1-based, all planes in order):
-- the window's rows h0..h1-1 and columns w0..w1-1 inside the input of plane `base`.
local function windows(g, m, f)
  local H, W, oh, ow = g.H, g.W, g.oh, g.ow
  local kH, kW, dH, dW, padH, padW = m.kH, m.kW, m.dH, m.dW, m.padH, m.padW
  local k = 0
  for plane = 0, g.planes - 1 do
    local base = plane * H * W + 1
    for y = 0, oh - 1 do
      for x = 0, ow - 1 do
        local h0, w0 = y * dH - padH, x * dW - padW
        local h1 = math.min(h0 + kH, H + padH)
        local w1 = math.min(w0 + kW, W + padW)
        local size = (h1 - h0) * (w1 - w0)
        h0, w0 = math.max(h0, 0), math.max(w0, 0)
        h1, w1 = math.min(h1, H), math.min(w1, W)
        local divisor = m.count_include_pad and size or (h1 - h0) * (w1 - w0)
        k = k + 1
        f(k, base, h0, h1, w0, w1, divisor)
      end
    end
  end
end

function SpatialAveragePooling:updateOutput(input)
  backwardCompatible(self)
  local g = pooling.geometry(self, input, 1)
  local x = input:contiguous()
  local xd, xo, W, out = x._storage, x._offset, g.W, {}
  windows(g, self, function(k, base, h0, h1, w0, w1, divisor)
    local sum = 0
    for r = h0, h1 - 1 do
      for c = w0, w1 - 1 do
        sum = sum + xd[xo + base + r * W + c]
      end
    end
    out[k] = sum / divisor
  end)
  self.output:set(util.adoptStorage(out, util.storageClassOf(self.output)), 1, g.sizes)
  if not self.divide then
    self.output:mul(self.kW * self.kH)
  end
  return self.output
end

function SpatialAveragePooling:updateGradInput(input, gradOutput)
  if not self.gradInput then
    return
  end
  backwardCompatible(self)
  local g = pooling.geometry(self, input, 1)
  local grad = pooling.checkGradOutput(g, gradOutput, 1)
  local gd, go, W, gx = grad._storage, grad._offset, g.W, {}
  for k = 1, g.planes * g.H * g.W do
    gx[k] = 0
  end
  windows(g, self, function(k, base, h0, h1, w0, w1, divisor)
    local share = gd[go + k] / divisor
    for r = h0, h1 - 1 do
      for c = w0, w1 - 1 do
        local p = base + r * W + c
        gx[p] = gx[p] + share
      end
    end
  end)
  self.gradInput:set(util.adoptStorage(gx, util.storageClassOf(self.gradInput)), 1, input:size())
  if not self.divide then
    self.gradInput:mul(self.kW * self.kH)
  end
  return self.gradInput
end

function SpatialAveragePooling:__tostring__()
  local s = string.format("%s(%dx%d, %d,%d", torch.type(self), self.kW, self.kH, self.dW, self.dH)
  if (self.padW or self.padH) and (self.padW ~= 0 or self.padH ~= 0) then
    s = s .. ", " .. self.padW .. "," .. self.padH
  end
  return s .. ")"
end
