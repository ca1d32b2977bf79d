-- nn.SpatialZeroPadding(padLeft, [padRight], [padTop], [padBottom]): zeros added around
-- the last two dimensions of a 3-D or 4-D input (each defaults to padLeft); a negative
-- pad crops instead. The gradient is the matching crop of gradOutput.

local SpatialZeroPadding, parent = torch.class("nn.SpatialZeroPadding", "nn.Module")

function SpatialZeroPadding:__init(pad_l, pad_r, pad_t, pad_b)
  parent.__init(self)
  self.pad_l = pad_l
  self.pad_r = pad_r or self.pad_l
  self.pad_t = pad_t or self.pad_l
  self.pad_b = pad_b or self.pad_l
end

-- The parts of `padded` and `plain` (the padded and unpadded tensors) that coincide.
local function overlap(self, padded, plain, h, w)
  if self.pad_t < 0 then plain = plain:narrow(h, 1 - self.pad_t, plain:size(h) + self.pad_t) end
  if self.pad_b < 0 then plain = plain:narrow(h, 1, plain:size(h) + self.pad_b) end
  if self.pad_l < 0 then plain = plain:narrow(w, 1 - self.pad_l, plain:size(w) + self.pad_l) end
  if self.pad_r < 0 then plain = plain:narrow(w, 1, plain:size(w) + self.pad_r) end
  if self.pad_t > 0 then padded = padded:narrow(h, 1 + self.pad_t, padded:size(h) - self.pad_t) end
  if self.pad_b > 0 then padded = padded:narrow(h, 1, padded:size(h) - self.pad_b) end
  if self.pad_l > 0 then padded = padded:narrow(w, 1 + self.pad_l, padded:size(w) - self.pad_l) end
  if self.pad_r > 0 then padded = padded:narrow(w, 1, padded:size(w) - self.pad_r) end
  return padded, plain
end

local function dims(input)
  local d = torch.isTensor(input) and input:dim() or 0
  if d ~= 3 and d ~= 4 then
    error("input must be 3 or 4-dimensional", 2)
  end
  return d - 1, d
end

function SpatialZeroPadding:updateOutput(input)
  local h, w = dims(input)
  local size = input:size()
  size[h] = size[h] + self.pad_t + self.pad_b
  size[w] = size[w] + self.pad_l + self.pad_r
  if size[w] < 1 or size[h] < 1 then
    error("input is too small", 2)
  end
  self.output:resize(size):zero()
  local target, source = overlap(self, self.output, input, h, w)
  target:copy(source)
  return self.output
end

function SpatialZeroPadding:updateGradInput(input, gradOutput)
  local h, w = dims(input)
  self.gradInput:resizeAs(input):zero()
  local source, target = overlap(self, gradOutput, self.gradInput, h, w)
  target:copy(source)
  return self.gradInput
end

function SpatialZeroPadding:__tostring__()
  return torch.type(self) .. string.format("(l=%d, r=%d, t=%d, b=%d)", self.pad_l, self.pad_r,
    self.pad_t, self.pad_b)
end
