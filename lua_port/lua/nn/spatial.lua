-- The sliding-window engine behind nn.SpatialConvolutionMM and nn.CustomConv, and the
-- kernels it runs (nn.spatial.kernels).
--
-- A kernel combines, for one output pixel, one term f(x, w) per tap (c, i, j) of the
-- window, x the zero-padded input under the tap and w the tap's weight:
--   reduce = "sum":  out = bias + sum_t f(x_t, w_t)      ("linear": f = x*w, a convolution)
--   reduce = "prod": out = bias + prod_t f(x_t, w_t)     ("tanprod": f = tan(x + w), nn.CustomConv's)
-- A kernel may add prepare(v) and fast(pv, pw, x, w) == f(x, w) from values prepared
-- once per input value and weight (the forward pass then uses them; see "tanprod").
-- dfdx(x, w, fx) and dfdw(x, w, fx) are f's partial derivatives (fx = f(x, w), given so a
-- kernel can reuse it: tan' = 1 + tan^2). A padded tap reads x = 0, so it contributes
-- f(0, w): tan(w) for "tanprod", as SpatialConvolutionMM's zero padding implies.
--
-- Layouts (all contiguous, row-major): input [N, C, H, W], weight [O, C, kH, kW] (the same
-- numbers as SpatialConvolutionMM's [O, C*kH*kW]), output [N, O, oh, ow].
--
-- Forward: for each (n, o) output plane, tap by tap, one pass over the plane (work per
-- tap: one f per output pixel; no unfolded copy of the input). Backward: pixel by pixel,
-- the window's terms go to a C*kH*kW buffer; for "prod" the product of the OTHER terms is
-- prefix * suffix (suffix products over the buffer), never out / f: exact where a term
-- is 0. Per output pixel: 2 passes over its C*kH*kW window.

local util = torch._util
local floor, ceil, tan = math.floor, math.ceil, math.tan

local spatial = {}
nn.spatial = spatial

-- Kernels' prepare/fast forms pay off in LuaJIT's compiled code (LuaJIT reports Lua 5.1);
-- Lua 5.4's interpreter runs one libm call faster than the formula's few operations.
local PREPARED = _VERSION == "Lua 5.1"

spatial.kernels = {
  tanprod = {
    reduce = "prod",
    f = function(x, w) return tan(x + w) end,
    -- tan(x + w) = (tan x + tan w) / (1 - tan x tan w), from tangents computed once per
    -- input value and weight: 90000 libm tan calls become 4096 for a 64x64 map and a 5x5
    -- kernel. Where the formula loses accuracy (1 - tan x tan w < 1/2: near a pole;
    -- |tan x + tan w| < 2^-10 |tan x - tan w|: cancellation, e.g. the exact zero at
    -- x = -w) it calls tan(x + w) instead, so the term stays within ~2^10 ulps (about
    -- 1e-13 relative) of tan(x + w), and exactly 0 where x + w = 0.
    prepare = tan,
    fast = function(tx, tw, x, w)
      local sum, den, diff = tx + tw, 1 - tx * tw, tx - tw
      if den >= 0.5 and 1048576 * sum * sum >= diff * diff then
        return sum / den
      end
      return tan(x + w)
    end,
    dfdx = function(x, w, fx) return 1 + fx * fx end,
    dfdw = function(x, w, fx) return 1 + fx * fx end,
  },
  linear = {
    reduce = "sum",
    f = function(x, w) return x * w end,
    dfdx = function(x, w) return w end,
    dfdw = function(x) return x end,
  },
}

--- The kernel named `kernel` (or a kernel table, checked), else an error at `level`.
function spatial.kernel(kernel, level)
  if type(kernel) == "string" then
    local found = spatial.kernels[kernel]
    if not found then
      local names = {}
      for name in pairs(spatial.kernels) do names[#names + 1] = "'" .. name .. "'" end
      table.sort(names)
      error(string.format("unknown kernel '%s' (known: %s)", kernel, table.concat(names, ", ")), level + 1)
    end
    return found
  end
  if type(kernel) ~= "table" or (kernel.reduce ~= "sum" and kernel.reduce ~= "prod")
      or type(kernel.f) ~= "function" or type(kernel.dfdx) ~= "function"
      or type(kernel.dfdw) ~= "function"
      or (kernel.fast ~= nil and (type(kernel.fast) ~= "function" or type(kernel.prepare) ~= "function")) then
    error("a kernel is a name or a table {reduce = 'sum' | 'prod', f = fn(x, w), dfdx = fn(x, w, fx), "
      .. "dfdw = fn(x, w, fx) [, prepare = fn(v), fast = fn(px, pw, x, w)]}", level + 1)
  end
  return kernel
end

--- Check `input` against module m and return the geometry of the call and the input as
--- a contiguous tensor. m has nInputPlane, nOutputPlane, kW, kH, dW, dH, padW, padH and,
--- for the question's one-map form, mapMode (a 2-D input gives a 2-D output).
function spatial.geometry(m, input, level)
  if not torch.isTensor(input) then
    error("bad argument #1 (input): a tensor expected, got " .. torch.type(input), level + 1)
  end
  local size, nd = input._size, #input._size
  local N, C, H, W
  if nd == 4 then
    N, C, H, W = size[1], size[2], size[3], size[4]
  elseif nd == 3 then
    N, C, H, W = 1, size[1], size[2], size[3]
  elseif nd == 2 and m.mapMode then
    N, C, H, W = 1, 1, size[1], size[2]
  else
    error(string.format("%s tensor expected for input, but got a %dD tensor of size %s",
      m.mapMode and "2D (one map), 3D or 4D (batch mode)" or "3D or 4D (batch mode)", nd,
      util.sizeString(size)), level + 1)
  end
  if C ~= m.nInputPlane then
    error(string.format("input has %d planes but the module expects nInputPlane = %d (input of size %s)",
      C, m.nInputPlane, util.sizeString(size)), level + 1)
  end
  local rows, cols = H + 2 * m.padH - m.kH, W + 2 * m.padW - m.kW
  local oh, ow = floor(rows / m.dH) + 1, floor(cols / m.dW) + 1
  if rows < 0 or cols < 0 or oh < 1 or ow < 1 then
    error(string.format("Given input size: (%dx%dx%d). Calculated output size: (%dx%dx%d). "
      .. "Output size is too small (kernel %dx%d, stride %dx%d, padding %dx%d)", C, H, W,
      m.nOutputPlane, rows < 0 and 0 or oh, cols < 0 and 0 or ow, m.kH, m.kW, m.dH, m.dW, m.padH,
      m.padW), level + 1)
  end
  local g = {
    N = N, C = C, H = H, W = W, O = m.nOutputPlane, kH = m.kH, kW = m.kW, dH = m.dH, dW = m.dW,
    padH = m.padH, padW = m.padW, oh = oh, ow = ow, dims = nd,
  }
  return g, input:contiguous()
end

--- The output sizes for geometry g (2-D, 3-D or 4-D like the input).
function spatial.outputSize(g)
  if g.dims == 2 then
    return { g.oh, g.ow }
  elseif g.dims == 3 then
    return { g.O, g.oh, g.ow }
  end
  return { g.N, g.O, g.oh, g.ow }
end

-- Output columns [first, last] whose tap column j lands inside the input.
local function insideColumns(g, j)
  local first = ceil((g.padW - j) / g.dW)
  local last = floor((g.W - 1 + g.padW - j) / g.dW)
  if first < 0 then first = 0 end
  if last > g.ow - 1 then last = g.ow - 1 end
  return first, last
end

-- out[row + col] = out[row + col] (*|+) term(col) for col = first..last, where term(col)
-- is the kernel's term for input position xq + col*dW (and prepared position pq + col*dW).
local function combineTaps(out, row, first, last, product, kernel, xd, xq, px, pq, dW, wv, pw)
  local fast = px and kernel.fast
  if fast then
    if product and dW == 1 then
      -- Unit stride (the question's case) without col * dW: LuaJIT then keeps the indices
      -- integers, and this loop runs in about 60% of the time.
      for col = first, last do
        local p = row + col
        out[p] = out[p] * fast(px[pq + col], pw, xd[xq + col], wv)
      end
    elseif product then
      for col = first, last do
        local p, q = row + col, col * dW
        out[p] = out[p] * fast(px[pq + q], pw, xd[xq + q], wv)
      end
    else
      for col = first, last do
        local p, q = row + col, col * dW
        out[p] = out[p] + fast(px[pq + q], pw, xd[xq + q], wv)
      end
    end
    return
  end
  local f = kernel.f
  if product then
    for col = first, last do
      local p = row + col
      out[p] = out[p] * f(xd[xq + col * dW], wv)
    end
  else
    for col = first, last do
      local p = row + col
      out[p] = out[p] + f(xd[xq + col * dW], wv)
    end
  end
end

local function combinePadding(out, first, last, product, pad)
  if product then
    for p = first, last do
      out[p] = out[p] * pad
    end
  else
    for p = first, last do
      out[p] = out[p] + pad
    end
  end
end

local scratch, SCRATCH = {}, 2 ^ 20

-- forward for a "prod" kernel with prepare/fast (tanprod under LuaJIT), every loop in
-- this one function: LuaJIT compiles nested loops of one function into one trace tree,
-- while a loop inside a called function cuts the caller's trace (the per-row calls of
-- the generic path cost a third of its time). px: the prepared input values.
local function forwardPrepared(g, kernel, x, w, b, out, px)
  local fast, prepare, f = kernel.fast, kernel.prepare, kernel.f
  local xd, xo, wd, wo = x._storage, x._offset, w._storage, w._offset
  local N, C, H, W, O = g.N, g.C, g.H, g.W, g.O
  local kH, kW, dH, dW, padH, padW = g.kH, g.kW, g.dH, g.dW, g.padH, g.padW
  local oh, ow = g.oh, g.ow
  local plane = oh * ow
  for n = 0, N - 1 do
    for o = 0, O - 1 do
      local ob = (n * O + o) * plane
      for p = ob + 1, ob + plane do
        out[p] = 1
      end
      for c = 0, C - 1 do
        local xb = (n * C + c) * H * W
        for i = 0, kH - 1 do
          for j = 0, kW - 1 do
            local wv = wd[wo + ((o * C + c) * kH + i) * kW + j + 1]
            local pw, pad = prepare(wv), f(0, wv)
            local first, last = insideColumns(g, j)
            for y = 0, oh - 1 do
              local r = y * dH - padH + i
              local row = ob + y * ow + 1
              if r < 0 or r >= H or last < first then
                for p = row, row + ow - 1 do
                  out[p] = out[p] * pad
                end
              else
                local q = xb + r * W - padW + j + 1
                for p = row, row + first - 1 do
                  out[p] = out[p] * pad
                end
                if dW == 1 then
                  -- unit stride (the question's case): no col * dW, integer indices
                  local shift = q - row
                  for p = row + first, row + last do
                    local s = p + shift
                    out[p] = out[p] * fast(px[s], pw, xd[xo + s], wv)
                  end
                else
                  for col = first, last do
                    local p, s = row + col, q + col * dW
                    out[p] = out[p] * fast(px[s], pw, xd[xo + s], wv)
                  end
                end
                for p = row + last + 1, row + ow - 1 do
                  out[p] = out[p] * pad
                end
              end
            end
          end
        end
      end
      if b then
        local bias = b._storage[b._offset + o * b._stride[1] + 1]
        for p = ob + 1, ob + plane do
          out[p] = out[p] + bias
        end
      end
    end
  end
end

local function forward(g, kernel, x, w, b, out)
  local product = kernel.reduce == "prod"
  local xd, xo, wd, wo = x._storage, x._offset, w._storage, w._offset
  local N, C, H, W, O = g.N, g.C, g.H, g.W, g.O
  local kH, kW, dH, dW, padH, padW = g.kH, g.kW, g.dH, g.dW, g.padH, g.padW
  local oh, ow = g.oh, g.ow
  local plane = oh * ow
  -- A kernel with prepare/fast: prepare every input value once (px[k] for xd[xo + k]).
  local prepare, px = PREPARED and kernel.fast and kernel.prepare, nil
  if prepare then
    -- Reused up to SCRATCH values: no garbage per call (entries past N*C*H*W are stale).
    local count = N * C * H * W
    px = count <= SCRATCH and scratch or {}
    for k = 1, count do
      px[k] = prepare(xd[xo + k])
    end
    if product then
      return forwardPrepared(g, kernel, x, w, b, out, px)
    end
  end
  for n = 0, N - 1 do
    for o = 0, O - 1 do
      local ob = (n * O + o) * plane
      local init = product and 1 or 0
      for p = ob + 1, ob + plane do
        out[p] = init
      end
      for c = 0, C - 1 do
        local xb = (n * C + c) * H * W
        for i = 0, kH - 1 do
          for j = 0, kW - 1 do
            local wv = wd[wo + ((o * C + c) * kH + i) * kW + j + 1]
            local pw = prepare and prepare(wv)
            local pad = kernel.f(0, wv)
            local first, last = insideColumns(g, j)
            for y = 0, oh - 1 do
              local r = y * dH - padH + i
              local row = ob + y * ow + 1
              if r < 0 or r >= H or last < first then
                combinePadding(out, row, row + ow - 1, product, pad)
              else
                local q = xb + r * W - padW + j + 1
                combinePadding(out, row, row + first - 1, product, pad)
                combineTaps(out, row, first, last, product, kernel, xd, xo + q, px, q, dW, wv, pw)
                combinePadding(out, row + last + 1, row + ow - 1, product, pad)
              end
            end
          end
        end
      end
      if b then
        local bias = b._storage[b._offset + o * b._stride[1] + 1]
        for p = ob + 1, ob + plane do
          out[p] = out[p] + bias
        end
      end
    end
  end
end

--- out (a Lua array, 1-based, [N, O, oh, ow]) = the kernel over every window.
--- x, w, b: tensors (contiguous [N,C,H,W] and [O,C,kH,kW] numbers; b may be nil).
function spatial.forward(g, kernel, x, w, b, out)
  -- LuaJIT checks a __newindex metamethod on every store into a table that has one
  -- (a DoubleStorage does): writing into a bare table runs twice as fast.
  local class = getmetatable(out)
  setmetatable(out, nil)
  local ok, err = pcall(forward, g, kernel, x, w, b, out)
  setmetatable(out, class)
  if not ok then
    error(err, 0)
  end
end

--- Gradients of spatial.forward for the cotangent gradOutput (contiguous [N,O,oh,ow]):
--- gradInput (a Lua array [N,C,H,W], zeroed by the caller) receives dL/dx when given;
--- gradWeight (a Lua array [O,C,kH,kW]) receives dL/dw when given. Both are added to.
function spatial.backward(g, kernel, x, w, gradOutput, gradInput, gradWeight)
  local f, dfdx, dfdw, product = kernel.f, kernel.dfdx, kernel.dfdw, kernel.reduce == "prod"
  local xd, xo, wd, wo = x._storage, x._offset, w._storage, w._offset
  local gd, go = gradOutput._storage, gradOutput._offset
  local N, C, H, W, O = g.N, g.C, g.H, g.W, g.O
  local kH, kW, dH, dW, padH, padW = g.kH, g.kW, g.dH, g.dW, g.padH, g.padW
  local oh, ow = g.oh, g.ow
  local taps = C * kH * kW
  -- One window: input values, weight values, terms, input positions (0: padding),
  -- weight positions; suffix[t] = product of terms t..taps.
  local xs, ws, fs, at, wat, suffix = {}, {}, {}, {}, {}, {}
  suffix[taps + 1] = 1
  for n = 0, N - 1 do
    for o = 0, O - 1 do
      for y = 0, oh - 1 do
        for col = 0, ow - 1 do
          local grad = gd[go + ((n * O + o) * oh + y) * ow + col + 1]
          local t = 0
          for c = 0, C - 1 do
            for i = 0, kH - 1 do
              local r = y * dH - padH + i
              for j = 0, kW - 1 do
                local s = col * dW - padW + j
                t = t + 1
                local wpos = ((o * C + c) * kH + i) * kW + j + 1
                local wv = wd[wo + wpos]
                local xv, xpos = 0, 0
                if r >= 0 and r < H and s >= 0 and s < W then
                  xpos = ((n * C + c) * H + r) * W + s + 1
                  xv = xd[xo + xpos]
                end
                xs[t], ws[t], fs[t], at[t], wat[t] = xv, wv, f(xv, wv), xpos, wpos
              end
            end
          end
          if product then
            for k = taps, 1, -1 do
              suffix[k] = suffix[k + 1] * fs[k]
            end
          end
          local prefix = 1
          for k = 1, taps do
            local gk = grad
            if product then
              gk = grad * (prefix * suffix[k + 1])
              prefix = prefix * fs[k]
            end
            if gradInput and at[k] > 0 then
              gradInput[at[k]] = gradInput[at[k]] + gk * dfdx(xs[k], ws[k], fs[k])
            end
            if gradWeight then
              gradWeight[wat[k]] = gradWeight[wat[k]] + gk * dfdw(xs[k], ws[k], fs[k])
            end
          end
        end
      end
    end
  end
end

--- Per output plane o: the sum of gradOutput over n, y, x (the bias gradient).
function spatial.biasGradient(g, gradOutput)
  local gd, go, plane = gradOutput._storage, gradOutput._offset, g.oh * g.ow
  local sums = {}
  for o = 1, g.O do
    sums[o] = 0
  end
  for n = 0, g.N - 1 do
    for o = 0, g.O - 1 do
      local base = go + (n * g.O + o) * plane
      local acc = 0
      for p = base + 1, base + plane do
        acc = acc + gd[p]
      end
      sums[o + 1] = sums[o + 1] + acc
    end
  end
  return sums
end

--- Check gradOutput has the output's sizes for geometry g; return it contiguous.
function spatial.checkGradOutput(g, gradOutput, level)
  if not torch.isTensor(gradOutput) then
    error("bad argument #2 (gradOutput): a tensor expected, got " .. torch.type(gradOutput),
      level + 1)
  end
  local expected = spatial.outputSize(g)
  local same = #expected == gradOutput:nDimension()
  for d = 1, #expected do
    same = same and expected[d] == gradOutput._size[d]
  end
  if not same then
    error(string.format("gradOutput must have the output's size %s, got %s", util.sizeString(expected),
      util.sizeString(gradOutput._size)), level + 1)
  end
  return gradOutput:contiguous()
end

--- Lua array of n zeros.
function spatial.zeros(n)
  local a = {}
  for i = 1, n do
    a[i] = 0
  end
  return a
end

--- The module's common shape arguments, checked (Torch7 defaults: stride 1, padH = padW).
function spatial.checkShape(m, fname, nIn, nOut, kW, kH, dW, dH, padW, padH, level)
  local function positive(v, argn, name)
    if not util.isInt(v) or v < 1 then
      util.argError(argn, fname, name .. " must be a positive integer, got " .. tostring(v), level + 2)
    end
    return v
  end
  m.nInputPlane = positive(nIn, 1, "nInputPlane")
  m.nOutputPlane = positive(nOut, 2, "nOutputPlane")
  m.kW = positive(kW, 3, "kW")
  m.kH = positive(kH, 4, "kH")
  m.dW = positive(dW or 1, 5, "dW")
  m.dH = positive(dH or 1, 6, "dH")
  padW = padW or 0
  padH = padH or padW
  if not util.isInt(padW) or padW < 0 then
    util.argError(7, fname, "padW must be an integer >= 0, got " .. tostring(padW), level + 1)
  end
  if not util.isInt(padH) or padH < 0 then
    util.argError(8, fname, "padH must be an integer >= 0, got " .. tostring(padH), level + 1)
  end
  m.padW, m.padH = padW, padH
end

--- A [O, C, kH, kW] tensor over `buffer` (a Lua array), to add into a gradient tensor.
function spatial.asTensor(buffer, size)
  return util.makeTensor(util.adoptStorage(buffer), 0, size, util.contiguousStrides(size))
end

return spatial
