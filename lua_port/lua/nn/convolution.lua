-- The dense convolution loops behind nn.SpatialConvolution and nn.SpatialConvolutionMM
-- (Torch7 runs them in C, THNN's SpatialConvolutionMM): cross-correlation with zero
-- padding, weight [O, C, kH, kW] (MM's [O, C*kH*kW] holds the same numbers), bias [O].
--
-- Every loop runs tap by tap: for one (plane, tap) pair the weight is a constant and the
-- innermost loop walks one output row with a unit stride, which LuaJIT compiles to a
-- tight loop. Rows and columns whose tap falls into the padding are skipped (they read
-- zeros), so no padded copy and no unfolded matrix is ever built.
--   forward:        out[n,o,y,x] = b[o] + sum_{c,i,j} w[o,c,i,j] * x[n,c,y*dH-padH+i, x*dW-padW+j]
--   gradInput:      gx[n,c,r,s]  = sum over the windows that read (r, s) of w * g
--   gradParameters: gw[o,c,i,j] += scale * sum_{n,y,x} g[n,o,y,x] * x[...];  gb[o] += scale * sum g
-- Work per call: N*O*C*kH*kW*oh*ow multiply-adds for each of the three.

local spatial = nn.spatial
local util = torch._util
local floor, ceil = math.floor, math.ceil

local convolution = {}
nn._convolution = convolution

-- Output rows y0..y1 whose tap row i is inside the input, and columns x0..x1 for tap
-- column j.
local function rows(g, i)
  local y0 = ceil((g.padH - i) / g.dH)
  local y1 = floor((g.H - 1 + g.padH - i) / g.dH)
  return y0 < 0 and 0 or y0, y1 > g.oh - 1 and g.oh - 1 or y1
end

local function columns(g, j)
  local x0 = ceil((g.padW - j) / g.dW)
  local x1 = floor((g.W - 1 + g.padW - j) / g.dW)
  return x0 < 0 and 0 or x0, x1 > g.ow - 1 and g.ow - 1 or x1
end

-- out (bare, 1-based, [N, O, oh, ow]) = the convolution of x (storage xd, 0-based
-- offset xo, contiguous [N, C, H, W]) with w (wd, wo) plus the bias (bd, bo, bs; bd nil:
-- none).
local function forward(g, xd, xo, wd, wo, bd, bo, bs, out)
  local N, C, H, W, O = g.N, g.C, g.H, g.W, g.O
  local kH, kW, dH, dW, padH, padW, ow = g.kH, g.kW, g.dH, g.dW, g.padH, g.padW, g.ow
  local plane = g.oh * ow
  for n = 0, N - 1 do
    for o = 0, O - 1 do
      local ob = (n * O + o) * plane
      local bias = bd and bd[bo + o * bs + 1] or 0
      for p = ob + 1, ob + plane do
        out[p] = bias
      end
      for c = 0, C - 1 do
        local xb = xo + (n * C + c) * H * W - padW + 1
        local wb = wo + (o * C + c) * kH * kW + 1
        for i = 0, kH - 1 do
          local y0, y1 = rows(g, i)
          for j = 0, kW - 1 do
            local wv = wd[wb + i * kW + j]
            local x0, x1 = columns(g, j)
            for y = y0, y1 do
              local row = ob + y * ow + 1
              local q = xb + (y * dH - padH + i) * W + j
              for x = x0, x1 do
                out[row + x] = out[row + x] + wv * xd[q + x * dW]
              end
            end
          end
        end
      end
    end
  end
end

-- gx (bare, 1-based, [N, C, H, W], zeroed by the caller) += the input gradient for the
-- output gradient gd (contiguous, offset go).
local function backwardInput(g, wd, wo, gd, go, gx)
  local N, C, H, W, O = g.N, g.C, g.H, g.W, g.O
  local kH, kW, dH, dW, padH, padW, ow = g.kH, g.kW, g.dH, g.dW, g.padH, g.padW, g.ow
  local plane = g.oh * ow
  for n = 0, N - 1 do
    for o = 0, O - 1 do
      local ob = go + (n * O + o) * plane + 1
      for c = 0, C - 1 do
        local xb = (n * C + c) * H * W - padW + 1
        local wb = wo + (o * C + c) * kH * kW + 1
        for i = 0, kH - 1 do
          local y0, y1 = rows(g, i)
          for j = 0, kW - 1 do
            local wv = wd[wb + i * kW + j]
            local x0, x1 = columns(g, j)
            for y = y0, y1 do
              local row = ob + y * ow
              local q = xb + (y * dH - padH + i) * W + j
              for x = x0, x1 do
                local p = q + x * dW
                gx[p] = gx[p] + wv * gd[row + x]
              end
            end
          end
        end
      end
    end
  end
end

-- gw (bare, [O, C, kH, kW] from offset gwo) += scale * the weight gradient; gb (bare,
-- offset gbo, stride gbs) += scale * the bias gradient when given.
local function accGradParameters(g, xd, xo, gd, go, gw, gwo, gb, gbo, gbs, scale)
  local N, C, H, W, O = g.N, g.C, g.H, g.W, g.O
  local kH, kW, dH, dW, padH, padW, ow = g.kH, g.kW, g.dH, g.dW, g.padH, g.padW, g.ow
  local plane = g.oh * ow
  for o = 0, O - 1 do
    for c = 0, C - 1 do
      for i = 0, kH - 1 do
        local y0, y1 = rows(g, i)
        for j = 0, kW - 1 do
          local x0, x1 = columns(g, j)
          local acc = 0
          for n = 0, N - 1 do
            local ob = go + (n * O + o) * plane + 1
            local xb = xo + (n * C + c) * H * W - padW + 1
            for y = y0, y1 do
              local row = ob + y * ow
              local q = xb + (y * dH - padH + i) * W + j
              for x = x0, x1 do
                acc = acc + gd[row + x] * xd[q + x * dW]
              end
            end
          end
          local k = gwo + ((o * C + c) * kH + i) * kW + j + 1
          gw[k] = gw[k] + scale * acc
        end
      end
    end
    if gb then
      local acc = 0
      for n = 0, N - 1 do
        local ob = go + (n * O + o) * plane
        for p = ob + 1, ob + plane do
          acc = acc + gd[p]
        end
      end
      local k = gbo + o * gbs + 1
      gb[k] = gb[k] + scale * acc
    end
  end
end

-- The module's weight as contiguous numbers, checked against its geometry.
local function weightOf(m)
  local w = m.weight
  if w:nElement() ~= m.nOutputPlane * m.nInputPlane * m.kH * m.kW then
    error(string.format("weight has %d elements, expected %dx%dx%dx%d", w:nElement(), m.nOutputPlane,
      m.nInputPlane, m.kH, m.kW), 3)
  end
  return w:contiguous()
end

--- m.output = m's convolution of input (checks as THNN's, raised at the module's line).
function convolution.updateOutput(m, input)
  local g, x = spatial.geometry(m, input, 2)
  local w = weightOf(m)
  local b = m.bias
  local out = m.output
  local size = spatial.outputSize(g)
  local data = {}
  forward(g, x._storage, x._offset, w._storage, w._offset, b and b._storage, b and b._offset,
    b and b._stride[1], data)
  out:set(util.adoptStorage(data, util.storageClassOf(out)), 1, size)
  return out
end

--- m.gradInput = the input gradient (a tensor shaped like input).
function convolution.updateGradInput(m, input, gradOutput)
  local g, x = spatial.geometry(m, input, 2)
  local grad = spatial.checkGradOutput(g, gradOutput, 2)
  local w = weightOf(m)
  local data = {}
  for k = 1, x:nElement() do
    data[k] = 0
  end
  backwardInput(g, w._storage, w._offset, grad._storage, grad._offset, data)
  m.gradInput:set(util.adoptStorage(data, util.storageClassOf(m.gradInput)), 1, input:size())
  return m.gradInput
end

--- m.gradWeight (and m.gradBias) += scale * the parameters' gradient.
function convolution.accGradParameters(m, input, gradOutput, scale)
  local g, x = spatial.geometry(m, input, 2)
  local grad = spatial.checkGradOutput(g, gradOutput, 2)
  local gw, gb = m.gradWeight, m.gradBias
  if not gw:isContiguous() or gw:nElement() ~= m.weight:nElement() then
    error("gradWeight must be a contiguous tensor shaped like weight", 2)
  end
  local storages = { gw._storage }
  if gb then
    storages[2] = gb._storage
  end
  util.bare(storages, accGradParameters, g, x._storage, x._offset, grad._storage, grad._offset,
    gw._storage, gw._offset, gb and gb._storage, gb and gb._offset, gb and gb._stride[1], scale or 1)
end

return convolution
