-- The dense convolution loops behind nn.SpatialConvolution and nn.SpatialConvolutionMM,
-- as Torch7 runs them (THNN's SpatialConvolutionMM): cross-correlation with zero
-- padding, weight [O, C, kH, kW] (MM's [O, C*kH*kW] holds the same numbers), bias [O].
--
-- One sample at a time, the input is unfolded into a [K = C*kH*kW, P = oh*ow] matrix
-- (column p holds the window of output pixel p, zeros where it covers padding; one
-- scratch array, reused), and each pass is a matrix product whose innermost loop runs
-- along P with unit stride (long loops are what LuaJIT compiles well):
--   forward:        out[n] = W [O, K] @ cols + b
--   gradInput:      gcols = W^T @ g[n], then folded back (added) onto the input pixels
--   gradParameters: gW += scale * g[n] @ cols^T (dot products along P), gb += scale * sum_P g[n]
-- Work per sample and pass: O*K*P multiply-adds; memory: K*P numbers of scratch.

local spatial = nn.spatial
local util = torch._util

local convolution = {}
nn._convolution = convolution

local cols, gcols = {}, {}

-- The [K, P] rectangle of each kernel tap (i, j): output rows y0..y1 and columns x0..x1
-- whose tap lands inside the input.
local function taps(g)
  local rows, columns = {}, {}
  for i = 0, g.kH - 1 do
    local y0 = math.ceil((g.padH - i) / g.dH)
    local y1 = math.floor((g.H - 1 + g.padH - i) / g.dH)
    rows[i] = { y0 < 0 and 0 or y0, y1 > g.oh - 1 and g.oh - 1 or y1 }
  end
  for j = 0, g.kW - 1 do
    local x0 = math.ceil((g.padW - j) / g.dW)
    local x1 = math.floor((g.W - 1 + g.padW - j) / g.dW)
    columns[j] = { x0 < 0 and 0 or x0, x1 > g.ow - 1 and g.ow - 1 or x1 }
  end
  return rows, columns
end

-- cols = the unfolded sample whose first input element is xd[xb + 1].
local function unfold(g, rows, columns, xd, xb)
  local C, H, W, kH, kW = g.C, g.H, g.W, g.kH, g.kW
  local dH, dW, padH, padW, ow = g.dH, g.dW, g.padH, g.padW, g.ow
  local P = g.oh * ow
  for k = 1, C * kH * kW * P do
    cols[k] = 0
  end
  local k = 0
  for c = 0, C - 1 do
    for i = 0, kH - 1 do
      local y0, y1 = rows[i][1], rows[i][2]
      for j = 0, kW - 1 do
        local x0, x1 = columns[j][1], columns[j][2]
        local kb = k * P + 1
        for y = y0, y1 do
          local q = xb + (c * H + y * dH - padH + i) * W - padW + j + 1
          local row = kb + y * ow
          for x = x0, x1 do
            cols[row + x] = xd[q + x * dW]
          end
        end
        k = k + 1
      end
    end
  end
end

-- gx[xb + ...] += gcols folded back onto the input positions of sample n.
local function fold(g, rows, columns, gx, xb)
  local C, H, W, kH, kW = g.C, g.H, g.W, g.kH, g.kW
  local dH, dW, padH, padW, ow = g.dH, g.dW, g.padH, g.padW, g.ow
  local P = g.oh * ow
  local k = 0
  for c = 0, C - 1 do
    for i = 0, kH - 1 do
      local y0, y1 = rows[i][1], rows[i][2]
      for j = 0, kW - 1 do
        local x0, x1 = columns[j][1], columns[j][2]
        local kb = k * P + 1
        for y = y0, y1 do
          local q = xb + (c * H + y * dH - padH + i) * W - padW + j + 1
          local row = kb + y * ow
          for x = x0, x1 do
            local p = q + x * dW
            gx[p] = gx[p] + gcols[row + x]
          end
        end
        k = k + 1
      end
    end
  end
end

-- out (bare, 1-based, [N, O, oh, ow]) = the convolution of x (storage xd, 0-based
-- offset xo, contiguous [N, C, H, W]) with w (wd, wo) plus the bias (bd, bo, bs; bd nil:
-- none).
local function forward(g, xd, xo, wd, wo, bd, bo, bs, out)
  local O, K, P = g.O, g.C * g.kH * g.kW, g.oh * g.ow
  local rows, columns = taps(g)
  for n = 0, g.N - 1 do
    unfold(g, rows, columns, xd, xo + n * g.C * g.H * g.W)
    for o = 0, O - 1 do
      local ob = (n * O + o) * P
      local bias = bd and bd[bo + o * bs + 1] or 0
      for p = ob + 1, ob + P do
        out[p] = bias
      end
      local wb = wo + o * K + 1
      for k = 0, K - 1 do
        local w = wd[wb + k]
        local cb = k * P - ob
        for p = ob + 1, ob + P do
          out[p] = out[p] + w * cols[cb + p]
        end
      end
    end
  end
end

-- gx (bare, 1-based, [N, C, H, W], zeroed by the caller) += the input gradient for the
-- output gradient gd (contiguous, offset go).
local function backwardInput(g, wd, wo, gd, go, gx)
  local O, K, P = g.O, g.C * g.kH * g.kW, g.oh * g.ow
  local rows, columns = taps(g)
  for n = 0, g.N - 1 do
    for k = 0, K - 1 do
      local kb = k * P
      for p = kb + 1, kb + P do
        gcols[p] = 0
      end
      for o = 0, O - 1 do
        local w = wd[wo + o * K + k + 1]
        local gb = go + (n * O + o) * P - kb
        for p = kb + 1, kb + P do
          gcols[p] = gcols[p] + w * gd[gb + p]
        end
      end
    end
    fold(g, rows, columns, gx, n * g.C * g.H * g.W)
  end
end

-- gw (bare, [O, C*kH*kW] from offset gwo) += scale * the weight gradient; gb (bare,
-- offset gbo, stride gbs) += scale * the bias gradient when given.
local function accGradParameters(g, xd, xo, gd, go, gw, gwo, gb, gbo, gbs, scale)
  local O, K, P = g.O, g.C * g.kH * g.kW, g.oh * g.ow
  local rows, columns = taps(g)
  for n = 0, g.N - 1 do
    unfold(g, rows, columns, xd, xo + n * g.C * g.H * g.W)
    for o = 0, O - 1 do
      local ob = go + (n * O + o) * P
      for k = 0, K - 1 do
        local cb, acc = k * P - ob, 0
        for p = ob + 1, ob + P do
          acc = acc + gd[p] * cols[cb + p]
        end
        local at = gwo + o * K + k + 1
        gw[at] = gw[at] + scale * acc
      end
      if gb then
        local acc = 0
        for p = ob + 1, ob + P do
          acc = acc + gd[p]
        end
        local at = gbo + o * gbs + 1
        gb[at] = gb[at] + scale * acc
      end
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
