-- Matrix products with Torch7's calling conventions (BLAS gemm / gemv / ger):
--   r:addmm([v1,] [M,] [v2,] A, B)    r = v1*M + v2*(A @ B)     (M defaults to r, v1 and v2 to 1)
--   r:addmv([v1,] [v,] [v2,] A, x)    r = v1*v + v2*(A @ x)
--   r:addr([v1,] [M,] [v2,] x, y)     r = v1*M + v2*(x y^T)
--   torch.addmm([r,] [v1,] M, [v2,] A, B) ... allocate r when it is not given;
--   torch.mm(A, B), torch.mv(A, x), torch.ger(x, y); r:mm(A, B), r:mv(A, x).
-- As in BLAS, v1 = 0 ignores M entirely (an uninitialised or NaN M does not leak in).
-- The result is formed in a scratch array and then written to r, so r may alias M, A or B.

local util = torch._util
local Tensor = torch.getmetatable("torch.DoubleTensor")
local isTensor = torch.isTensor

local function sizeError(fname, ...)
  local parts = {}
  for i = 1, select("#", ...) do
    parts[i] = util.sizeString((select(i, ...))._size)
  end
  error(string.format("size mismatch in '%s': %s", fname, table.concat(parts, ", ")), 4)
end

-- Parse [v1,] [M,] [v2,] P, Q from the end; M is nil when not given.
local function parse(fname, ...)
  local n = select("#", ...)
  local args = { ... }
  local P, Q = args[n - 1], args[n]
  if not (isTensor(P) and isTensor(Q)) then
    error(string.format("invalid arguments to '%s': expected [v1,] [M,] [v2,] tensor, tensor", fname), 4)
  end
  local i, v1, M, v2 = n - 2, 1, nil, 1
  if type(args[i]) == "number" then v2, i = args[i], i - 1 end
  if isTensor(args[i]) then M, i = args[i], i - 1 end
  if type(args[i]) == "number" then v1, i = args[i], i - 1 end
  if i > 0 then
    error(string.format("invalid arguments to '%s': expected [v1,] [M,] [v2,] tensor, tensor", fname), 4)
  end
  return v1, M, v2, P, Q
end

local function at(t)
  return t._storage, t._offset + 1, t._stride[1], t._stride[2]
end

-- out[(i-1)*p + j] = v2 * sum_k A[i,k] B[k,j] (+ the caller's start values in out).
local function gemm(out, v2, A, B)
  local n, m, p = A._size[1], A._size[2], B._size[2]
  local ad, ab, as1, as2 = at(A)
  local bd, bb, bs1, bs2 = at(B)
  if bs1 == 1 and p > 1 then
    -- B's columns are contiguous (B = W:t()): one dot product per output.
    for i = 0, n - 1 do
      local arow = ab + i * as1
      for j = 0, p - 1 do
        local bcol, acc = bb + j * bs2, 0
        for k = 0, m - 1 do
          acc = acc + ad[arow + k * as2] * bd[bcol + k]
        end
        local o = i * p + j + 1
        out[o] = out[o] + v2 * acc
      end
    end
  else
    for i = 0, n - 1 do
      local row = i * p + 1
      for k = 0, m - 1 do
        local a = v2 * ad[ab + i * as1 + k * as2]
        local brow = bb + k * bs1
        for j = 0, p - 1 do
          out[row + j] = out[row + j] + a * bd[brow + j * bs2]
        end
      end
    end
  end
end

-- The scratch array holding v1 * M (or zeros when v1 == 0), in row-major order.
local function start(v1, M, count)
  local out = {}
  if v1 == 0 or M == nil then
    for k = 1, count do out[k] = 0 end
    return out
  end
  local c = M:contiguous()
  local d, o = c._storage, c._offset
  for k = 1, count do
    out[k] = v1 * d[o + k]
  end
  return out
end

-- Write the scratch array into r (resized to `size`), converting to r's type.
local function finish(r, out, size)
  if not (r:nDimension() == #size and r._size[1] == size[1] and (#size == 1 or r._size[2] == size[2])) then
    r:resize(size)
  end
  local convert = util.storageConvert(getmetatable(r._storage))
  local data = r._storage
  if convert then
    for k = 1, #out do
      out[k] = convert(out[k])
    end
  end
  if r:isContiguous() then
    local o = r._offset
    for k = 1, #out do
      data[o + k] = out[k]
    end
  else
    local pos = util.positions(r)
    for k = 1, #pos do
      data[pos[k]] = out[k]
    end
  end
  return r
end

local function addmm(r, fname, ...)
  local v1, M, v2, A, B = parse(fname, ...)
  M = M or r
  if A:nDimension() ~= 2 or B:nDimension() ~= 2 or A._size[2] ~= B._size[1] then
    sizeError(fname, A, B)
  end
  local n, p = A._size[1], B._size[2]
  if v1 ~= 0 and (M:nDimension() ~= 2 or M._size[1] ~= n or M._size[2] ~= p) then
    sizeError(fname, M, A, B)
  end
  local out = start(v1, M, n * p)
  gemm(out, v2, A, B)
  return finish(r, out, { n, p })
end

local function addmv(r, fname, ...)
  local v1, v, v2, A, x = parse(fname, ...)
  v = v or r
  if A:nDimension() ~= 2 or x:nDimension() ~= 1 or A._size[2] ~= x._size[1] then
    sizeError(fname, A, x)
  end
  local n, m = A._size[1], A._size[2]
  if v1 ~= 0 and (v:nDimension() ~= 1 or v._size[1] ~= n) then
    sizeError(fname, v, A, x)
  end
  local out = start(v1, v, n)
  local ad, ab, as1, as2 = at(A)
  local xd, xb, xs = x._storage, x._offset + 1, x._stride[1]
  for i = 0, n - 1 do
    local acc = 0
    for k = 0, m - 1 do
      acc = acc + ad[ab + i * as1 + k * as2] * xd[xb + k * xs]
    end
    out[i + 1] = out[i + 1] + v2 * acc
  end
  return finish(r, out, { n })
end

local function addr(r, fname, ...)
  local v1, M, v2, x, y = parse(fname, ...)
  M = M or r
  if x:nDimension() ~= 1 or y:nDimension() ~= 1 then
    sizeError(fname, x, y)
  end
  local n, p = x._size[1], y._size[1]
  if v1 ~= 0 and (M:nDimension() ~= 2 or M._size[1] ~= n or M._size[2] ~= p) then
    sizeError(fname, M, x, y)
  end
  local out = start(v1, M, n * p)
  local xd, xb, xs = x._storage, x._offset + 1, x._stride[1]
  local yd, yb, ys = y._storage, y._offset + 1, y._stride[1]
  for i = 0, n - 1 do
    local a = v2 * xd[xb + i * xs]
    for j = 0, p - 1 do
      local o = i * p + j + 1
      out[o] = out[o] + a * yd[yb + j * ys]
    end
  end
  return finish(r, out, { n, p })
end

function Tensor:addmm(...)
  return (addmm(self, "addmm", ...))
end

function Tensor:addmv(...)
  return (addmv(self, "addmv", ...))
end

function Tensor:addr(...)
  return (addr(self, "addr", ...))
end

function Tensor:mm(A, B)
  return (addmm(self, "mm", 0, self, 1, A, B))
end

function Tensor:mv(A, x)
  return (addmv(self, "mv", 0, self, 1, A, x))
end

-- torch.<name>([r,] ...): r is the first argument when one more tensor is given than
-- the method form needs.
local function allocating(name, method, tensors)
  torch[name] = function(...)
    local n, first = select("#", ...), ...
    local given = 0
    for i = 1, n do
      if isTensor((select(i, ...))) then given = given + 1 end
    end
    if given > tensors and isTensor(first) then
      return (method(first, name, select(2, ...)))
    end
    local model
    for i = 1, n do
      local v = select(i, ...)
      if isTensor(v) then model = v break end
    end
    return (method(model and model.new() or torch.Tensor(), name, ...))
  end
end
allocating("addmm", addmm, 3)
allocating("addmv", addmv, 3)
allocating("addr", addr, 3)

function torch.mm(A, B)
  return (addmm(A.new(), "mm", 0, A, 1, A, B))
end

function torch.mv(A, x)
  return (addmv(A.new(), "mv", 0, x, 1, A, x))
end

function torch.ger(x, y)
  return (addr(x.new(), "ger", 0, 1, x, y))
end
