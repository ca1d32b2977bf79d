-- What nn.SpatialMaxPooling and nn.SpatialAveragePooling share: THNN's shape rules.
--   out = floor((in - k + 2*pad) / stride) + 1   (ceil with ceil_mode)
-- and, only when there is padding, a last window that would start at or past
-- in + pad is dropped. The padding may be at most half the kernel (kW/2 >= padW).
-- Without padding, a ceil-mode window may start past the input (possible when
-- stride > kernel): THNN keeps it, as this port does (max: -inf and no index; average: a
-- count of zero or less).

local util = torch._util
local floor, ceil = math.floor, math.ceil

local pooling = {}
nn._pooling = pooling

local function outputSize(size, k, d, pad, ceilMode)
  local span = size - k + 2 * pad
  local out = (ceilMode and ceil(span / d) or floor(span / d)) + 1
  if pad > 0 and (out - 1) * d >= size + pad then
    out = out - 1
  end
  return out
end

--- The geometry {planes, H, W, oh, ow, sizes} of module m (kW, kH, dW, dH, padW, padH,
--- ceil_mode) on input, after THNN's checks (errors at `level`).
function pooling.geometry(m, input, level)
  if not torch.isTensor(input) then
    error("bad argument #1 (input): a tensor expected, got " .. torch.type(input), level + 1)
  end
  local nd = input:nDimension()
  if nd ~= 3 and nd ~= 4 then
    error(string.format("3D or 4D input tensor expected but got: %dD tensor of size %s", nd,
      util.sizeString(input._size)), level + 1)
  end
  if not (m.kW > 0 and m.kH > 0) then
    error(string.format("kernel size should be greater than zero, but got kH: %d kW: %d", m.kH, m.kW), level + 1)
  end
  if not (m.dW > 0 and m.dH > 0) then
    error(string.format("stride should be greater than zero, but got dH: %d dW: %d", m.dH, m.dW), level + 1)
  end
  if not (floor(m.kW / 2) >= m.padW and floor(m.kH / 2) >= m.padH) then
    error(string.format("pad should be smaller than half of kernel size, but got padW = %d, padH = %d, "
      .. "kW = %d, kH = %d", m.padW, m.padH, m.kW, m.kH), level + 1)
  end
  local s = input._size
  local C, H, W = s[nd - 2], s[nd - 1], s[nd]
  local oh = outputSize(H, m.kH, m.dH, m.padH, m.ceil_mode)
  local ow = outputSize(W, m.kW, m.dW, m.padW, m.ceil_mode)
  if oh < 1 or ow < 1 then
    error(string.format("Given input size: (%dx%dx%d). Calculated output size: (%dx%dx%d). Output size "
      .. "is too small", C, H, W, C, oh, ow), level + 1)
  end
  local sizes = nd == 4 and { s[1], C, oh, ow } or { C, oh, ow }
  return { planes = (nd == 4 and s[1] or 1) * C, H = H, W = W, oh = oh, ow = ow, sizes = sizes }
end

--- Check that gradOutput has the output's sizes (errors at `level`); return it contiguous.
function pooling.checkGradOutput(g, gradOutput, level)
  local same = torch.isTensor(gradOutput) and gradOutput:nDimension() == #g.sizes
  for d = 1, #g.sizes do
    same = same and gradOutput._size[d] == g.sizes[d]
  end
  if not same then
    error(string.format("gradOutput must have the output's size %s, got %s", util.sizeString(g.sizes),
      torch.isTensor(gradOutput) and util.sizeString(gradOutput._size) or torch.type(gradOutput)), level + 1)
  end
  return gradOutput:contiguous()
end

return pooling
