-- Tensor arithmetic with Torch7's calling conventions.
--
-- Method forms work IN PLACE and return self, so chains mutate one tensor:
--   x:add(v)  x:add(y)  x:add(v, y)     x = x + v | x + y | x + v*y
--   r:add(x, v)  r:add(x, y)  r:add(x, v, y)   r = ... (r resized like x)
--   x:mul(v)  x:div(v)  x:cmul(y)  x:cdiv(y)  x:pow(n)  x:tan()  x:cos() ...
--   r:mul(x, v)  r:cmul(x, y)  r:pow(x, n)  r:pow(n, x)  r:tan(x) ...
-- torch.<name>(...) with no result tensor allocates a new one (torch.cmul(x, y),
-- torch.tan(x), torch.mul(x, v), ...); torch.tan(number) is math.tan. Element-wise
-- operations with two tensors need the same number of elements, not the same sizes, and
-- run element by element in row-major order, so aliased operands behave as in Torch7.
-- Reductions: sum, prod, mean, max, min (whole tensor -> number; with a dimension -> a
-- tensor keeping that dimension with size 1; max and min also return the 1-based indices
-- as a LongTensor). Matrix products: mm, mv, addmm, addmv, addr. Also cat and sort.
-- Random numbers come from a Park-Miller generator (torch.manualSeed), identical on
-- every Lua runtime. Results have the type of the tensor they come from; element-wise
-- results are converted to it (float32 rounding, integer truncation).

local util = torch._util
local Tensor = torch.getmetatable("torch.DoubleTensor")
local isTensor = torch.isTensor
local positions = util.positions

local function typeList(...)
  local names = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    names[i] = isTensor(v) and "DoubleTensor" or type(v)
  end
  return table.concat(names, ", ")
end

-- Element-wise results are converted to the result's type (nothing to do for doubles).
local function converted(r)
  local convert = util.storageConvert(getmetatable(r._storage))
  if convert then
    local data = r._storage
    for _, p in ipairs((positions(r))) do
      data[p] = convert(data[p])
    end
  end
  return r
end

local function badArguments(fname, expected, ...)
  error(string.format("invalid arguments to '%s': got (%s); expected %s", fname, typeList(...), expected), 3)
end

local function sameCount(a, b, fname)
  local n, m = a:nElement(), b:nElement()
  if n ~= m then
    error(string.format("inconsistent tensor size in '%s': %s (%d elements) and %s (%d elements)", fname,
      util.sizeString(a._size), n, util.sizeString(b._size), m), 4)
  end
end

-- r[k] = f(a[k]) over row-major positions; r takes a's sizes unless it has them.
-- (Methods call map1/map2 as `return (map2(...))`: not a tail call, so an error raised
-- at level 4 below points at the user's line.)
local function map1(r, a, f)
  if r ~= a and not r:isSameSizeAs(a) then
    r:resizeAs(a)
  end
  local rd, ad = r._storage, a._storage
  if r:isContiguous() and a:isContiguous() then
    local ro, ao = r._offset, a._offset
    for k = 1, r:nElement() do
      rd[ro + k] = f(ad[ao + k])
    end
  else
    local to, n = positions(r)
    local from = r == a and to or positions(a)
    for k = 1, n do
      rd[to[k]] = f(ad[from[k]])
    end
  end
  return converted(r)
end

-- r[k] = f(a[k], b[k]); a and b need the same number of elements.
local function map2(r, a, b, f, fname)
  sameCount(a, b, fname)
  if r ~= a and not r:isSameSizeAs(a) then
    r:resizeAs(a)
  end
  local rd, ad, bd = r._storage, a._storage, b._storage
  if r:isContiguous() and a:isContiguous() and b:isContiguous() then
    local ro, ao, bo = r._offset, a._offset, b._offset
    for k = 1, r:nElement() do
      rd[ro + k] = f(ad[ao + k], bd[bo + k])
    end
  else
    local to, n = positions(r)
    local pa = r == a and to or positions(a)
    local pb = positions(b)
    for k = 1, n do
      rd[to[k]] = f(ad[pa[k]], bd[pb[k]])
    end
  end
  return converted(r)
end

local function plus(x, y) return x + y end
local function minus(x, y) return x - y end
local function times(x, y) return x * y end
local function over(x, y) return x / y end

local ADD = "[result] number | [result] [number] DoubleTensor | result DoubleTensor number DoubleTensor"

-- In-place forms on contiguous tensors, as plain loops: a closure made per call (as map1
-- and map2 take) would cost LuaJIT a new trace per call, and training loops call these
-- once per parameter per step. nil when the fast form does not apply.
local function inPlace(r, op, v, y)
  if not r:isContiguous() or (y ~= nil and (not y:isContiguous() or y:nElement() ~= r:nElement())) then
    return nil
  end
  local rd, ro, n = r._storage, r._offset, r:nElement()
  if op == "add" then
    for k = ro + 1, ro + n do rd[k] = rd[k] + v end
  elseif op == "mul" then
    for k = ro + 1, ro + n do rd[k] = rd[k] * v end
  elseif op == "div" then
    for k = ro + 1, ro + n do rd[k] = rd[k] / v end
  else
    local yd, shift = y._storage, y._offset - ro
    if op == "axpy" then
      for k = ro + 1, ro + n do rd[k] = rd[k] + v * yd[k + shift] end
    elseif op == "cmul" then
      for k = ro + 1, ro + n do rd[k] = rd[k] * yd[k + shift] end
    else
      for k = ro + 1, ro + n do rd[k] = rd[k] / yd[k + shift] end
    end
  end
  return converted(r)
end

function Tensor:add(a, b, c)
  if c == nil then
    local fast
    if type(a) == "number" and b == nil then
      fast = inPlace(self, "add", a)
    elseif isTensor(a) and b == nil then
      fast = inPlace(self, "axpy", 1, a)
    elseif type(a) == "number" and isTensor(b) then
      fast = inPlace(self, "axpy", a, b)
    end
    if fast then
      return fast
    end
  end
  if c ~= nil then
    if isTensor(a) and type(b) == "number" and isTensor(c) then
      return (map2(self, a, c, function(x, y) return x + b * y end, "add"))
    end
  elseif b ~= nil then
    if isTensor(a) and isTensor(b) then
      return (map2(self, a, b, plus, "add"))
    elseif type(a) == "number" and isTensor(b) then
      return (map2(self, self, b, function(x, y) return x + a * y end, "add"))
    elseif isTensor(a) and type(b) == "number" then
      return (map1(self, a, function(x) return x + b end))
    end
  elseif type(a) == "number" then
    return (map1(self, self, function(x) return x + a end))
  elseif isTensor(a) then
    return (map2(self, self, a, plus, "add"))
  end
  badArguments("add", ADD, self, a, b, c)
end

function Tensor:csub(a, b)
  if b ~= nil and isTensor(a) and isTensor(b) then
    return (map2(self, a, b, minus, "csub"))
  elseif b == nil and type(a) == "number" then
    return (map1(self, self, function(x) return x - a end))
  elseif b == nil and isTensor(a) then
    return (map2(self, self, a, minus, "csub"))
  end
  badArguments("csub", "[result] number | [result] DoubleTensor", self, a, b)
end

local function scalarOp(name, f)
  Tensor[name] = function(self, a, b)
    if b == nil and type(a) == "number" then
      local fast = inPlace(self, name, a)
      if fast then
        return fast
      end
      return (map1(self, self, function(x) return f(x, a) end))
    elseif isTensor(a) and type(b) == "number" then
      return (map1(self, a, function(x) return f(x, b) end))
    end
    badArguments(name, "[result DoubleTensor] number", self, a, b)
  end
end
scalarOp("mul", times)
scalarOp("div", over)

local function elementwise(name, f)
  Tensor[name] = function(self, a, b)
    if b == nil and isTensor(a) then
      local fast = inPlace(self, name, nil, a)
      if fast then
        return fast
      end
      return (map2(self, self, a, f, name))
    elseif isTensor(a) and isTensor(b) then
      return (map2(self, a, b, f, name))
    end
    badArguments(name, "[result] DoubleTensor", self, a, b)
  end
end
elementwise("cmul", times)
elementwise("cdiv", over)

function Tensor:pow(a, b)
  if b == nil and type(a) == "number" then
    return (map1(self, self, function(x) return x ^ a end))
  elseif isTensor(a) and type(b) == "number" then
    return (map1(self, a, function(x) return x ^ b end))
  elseif type(a) == "number" and isTensor(b) then
    return (map1(self, b, function(x) return a ^ x end))
  end
  badArguments("pow", "[result DoubleTensor] number | result number DoubleTensor", self, a, b)
end

local exp, log = math.exp, math.log
local UNARY = {
  tan = math.tan, cos = math.cos, sin = math.sin, atan = math.atan, acos = math.acos,
  asin = math.asin, exp = exp, log = log, sqrt = math.sqrt, abs = math.abs,
  floor = math.floor, ceil = math.ceil,
  neg = function(x) return -x end,
  tanh = util.tanh,
  sigmoid = function(x) return 1 / (1 + exp(-x)) end,
  sign = function(x) return x > 0 and 1 or (x < 0 and -1 or 0) end,
}

for name, f in pairs(UNARY) do
  Tensor[name] = function(self, src)
    if src == nil then
      return (map1(self, self, f))
    elseif isTensor(src) then
      return (map1(self, src, f))
    end
    badArguments(name, "[source DoubleTensor]", self, src)
  end
end

function Tensor:clamp(low, high)
  return (map1(self, self, function(x) return x < low and low or (x > high and high or x) end))
end

-- ----------------------------------------------------------------------------- allocating forms

-- An empty result of the type of the first tensor among the arguments.
local function resultFor(a, b)
  local model = isTensor(a) and a or (isTensor(b) and b or nil)
  return model and model.new() or torch.Tensor()
end

function torch.add(a, b, c, d)
  if isTensor(a) and isTensor(b) and c ~= nil then
    return a:add(b, c, d)
  end
  return resultFor(a, b):add(a, b, c)
end

for _, name in ipairs({ "mul", "div", "cmul", "cdiv", "pow", "csub" }) do
  torch[name] = function(a, b, c)
    if c ~= nil then
      return a[name](a, b, c)
    end
    local result = resultFor(a, b)
    return result[name](result, a, b)
  end
end
for name in pairs(UNARY) do
  local f = UNARY[name]
  torch[name] = function(a, b)
    if type(a) == "number" and b == nil then
      return f(a)
    elseif isTensor(a) and b == nil then
      local result = a.new()
      return result[name](result, a)
    elseif isTensor(a) and isTensor(b) then
      return a[name](a, b)
    end
    badArguments("torch." .. name, "number | DoubleTensor | result DoubleTensor", a, b)
  end
end

function torch.clamp(x, low, high)
  return x:clone():clamp(low, high)
end

-- ----------------------------------------------------------------------------- reductions

local function reduceAll(t, init, f)
  local pos, n = positions(t)
  local data, acc = t._storage, init
  for k = 1, n do
    acc = f(acc, data[pos[k]])
  end
  return acc, n
end

-- A tensor like t with size 1 along dim: out[..., 1, ...] = fold of t along dim.
local function reduceDim(t, dim, init, f, fname)
  if not util.isInt(dim) or dim < 1 or dim > t:nDimension() then
    util.argError(1, fname, string.format("dimension %s out of range of %dD tensor",
      tostring(dim), t:nDimension()), 3)
  end
  local size = {}
  for d = 1, t:nDimension() do
    size[d] = d == dim and 1 or t._size[d]
  end
  local result = util.newLike(t, size)
  local out = result._storage
  local outerStride = t._size[dim]
  -- Walk the result's positions; for each, fold the t elements along dim.
  local pos, n = positions(result)
  local index = {}
  for d = 1, #size do index[d] = 1 end
  for k = 1, n do
    local p = t._offset + 1
    for d = 1, #size do
      p = p + (index[d] - 1) * t._stride[d]
    end
    local acc = init
    for i = 0, outerStride - 1 do
      acc = f(acc, t._storage[p + i * t._stride[dim]], i + 1)
    end
    out[pos[k]] = acc
    local d = #size
    while d >= 1 do
      index[d] = index[d] + 1
      if index[d] <= size[d] then break end
      index[d] = 1
      d = d - 1
    end
  end
  return result
end

function Tensor:sum(dim)
  if dim == nil then
    return (reduceAll(self, 0, plus))
  end
  return reduceDim(self, dim, 0, plus, "sum")
end

function Tensor:prod(dim)
  if dim == nil then
    return (reduceAll(self, 1, times))
  end
  return reduceDim(self, dim, 1, times, "prod")
end

function Tensor:mean(dim)
  if dim == nil then
    local total, n = reduceAll(self, 0, plus)
    return total / n
  end
  return reduceDim(self, dim, 0, plus, "mean"):div(self._size[dim])
end

local function extreme(name, better)
  Tensor[name] = function(self, dim)
    if dim == nil then
      if self:nElement() == 0 then
        error(name .. "(): the tensor has no elements", 2)
      end
      return (reduceAll(self, nil, function(acc, x)
        if acc == nil or x ~= x or better(x, acc) then return x end
        return acc
      end))
    end
    if util.isInt(dim) and self._size[dim] == 0 then
      error(string.format("%s(): dimension %d has no elements", name, dim), 2)
    end
    local values = reduceDim(self, dim, nil, function(acc, x)
      if acc == nil or x ~= x or better(x, acc) then return x end
      return acc
    end, name)
    local indices = util.newTensor(values._size, util.storageClass.Long)
    -- Indices: the first position along dim holding the extreme value.
    local valuePos = positions(values)
    local indexPos = positions(indices)
    local size = values._size
    local at = {}
    for d = 1, #size do at[d] = 1 end
    for k = 1, #valuePos do
      local p = self._offset + 1
      for d = 1, #size do p = p + (at[d] - 1) * self._stride[d] end
      local target = values._storage[valuePos[k]]
      for i = 0, self._size[dim] - 1 do
        local v = self._storage[p + i * self._stride[dim]]
        if v == target or (v ~= v and target ~= target) then
          indices._storage[indexPos[k]] = i + 1
          break
        end
      end
      local d = #size
      while d >= 1 do
        at[d] = at[d] + 1
        if at[d] <= size[d] then break end
        at[d] = 1
        d = d - 1
      end
    end
    return values, indices
  end
end
extreme("max", function(x, y) return x > y end)
extreme("min", function(x, y) return x < y end)

function Tensor:dot(other)
  sameCount(self, other, "dot")
  local pa, n = positions(self)
  local pb = positions(other)
  local a, b, acc = self._storage, other._storage, 0
  for k = 1, n do
    acc = acc + a[pa[k]] * b[pb[k]]
  end
  return acc
end

--- x:equal(y): same sizes and every element equal.
function Tensor:equal(other)
  if not isTensor(other) or not self:isSameSizeAs(other) then
    return false
  end
  local pa, n = positions(self)
  local pb = positions(other)
  local a, b = self._storage, other._storage
  for k = 1, n do
    if a[pa[k]] ~= b[pb[k]] then
      return false
    end
  end
  return true
end

--- x:norm([p = 2]): the p-norm of all elements.
function Tensor:norm(p)
  p = p or 2
  local total = reduceAll(self, 0, function(acc, x) return acc + math.abs(x) ^ p end)
  return total ^ (1 / p)
end

--- x:dist(y, [p = 2]): the p-norm of x - y.
function Tensor:dist(other, p)
  return torch.add(self, -1, other):norm(p)
end

--- x:var() / x:std(): the unbiased variance / standard deviation of all elements.
function Tensor:var()
  local n = self:nElement()
  local mean = self:sum() / n
  return (reduceAll(self, 0, function(acc, x) return acc + (x - mean) ^ 2 end)) / (n - 1)
end

function Tensor:std()
  return math.sqrt(self:var())
end

-- Comparisons: x:eq(y) / x:gt(v) ... return a ByteTensor of 0 and 1.
for name, test in pairs({
  eq = function(a, b) return a == b end, ne = function(a, b) return a ~= b end,
  gt = function(a, b) return a > b end, lt = function(a, b) return a < b end,
  ge = function(a, b) return a >= b end, le = function(a, b) return a <= b end,
}) do
  Tensor[name] = function(self, other)
    local result = util.newTensor({}, util.storageClass.Byte)
    if type(other) == "number" then
      return (map1(result, self, function(x) return test(x, other) and 1 or 0 end))
    end
    return (map2(result, self, other, function(x, y) return test(x, y) and 1 or 0 end, name))
  end
  torch[name] = function(a, b)
    return a[name](a, b)
  end
end

for _, name in ipairs({ "sum", "prod", "mean", "max", "min", "dot", "equal", "norm", "dist", "var", "std" }) do
  torch[name] = function(t, ...)
    return t[name](t, ...)
  end
end

-- ----------------------------------------------------------------------------- operators

function Tensor.__add__(a, b)
  if isTensor(a) and isTensor(b) then return a:clone():add(b) end
  if isTensor(a) then return a:clone():add(b) end
  return b:clone():add(a)
end

function Tensor.__sub__(a, b)
  if isTensor(a) and isTensor(b) then return a:clone():csub(b) end
  if isTensor(a) then return a:clone():add(-b) end
  return b:clone():neg():add(a)
end

function Tensor.__mul__(a, b)
  if type(a) == "number" then return b:clone():mul(a) end
  if type(b) == "number" then return a:clone():mul(b) end
  if a:nDimension() == 1 and b:nDimension() == 1 then return a:dot(b) end
  if a:nDimension() == 2 and b:nDimension() == 1 then return torch.mv(a, b) end
  return torch.mm(a, b)
end

function Tensor.__div__(a, b)
  if type(b) ~= "number" then
    error("a tensor can only be divided by a number (use cdiv)", 2)
  end
  return a:clone():div(b)
end

function Tensor.__unm__(a)
  return a:clone():neg()
end

-- ----------------------------------------------------------------------------- random numbers

local MODULUS, MULTIPLIER, SEED = 2147483647, 16807, 1
local state, initial = SEED, SEED

--- torch.manualSeed(seed): reseed the generator (any integer; the default seed is 1).
function torch.manualSeed(seed)
  if not util.isInt(seed) then
    util.argError(1, "manualSeed", "integer expected", 2)
  end
  initial = seed
  state = seed % (MODULUS - 1) + 1
end

function torch.initialSeed()
  return initial
end

-- Uniform in (0, 1): state*MULTIPLIER < 2^46 stays exact in a double.
local function uniform01()
  state = (state * MULTIPLIER) % MODULUS
  return state / MODULUS
end

local function normal01()
  return math.sqrt(-2 * log(uniform01())) * math.cos(2 * math.pi * uniform01())
end

function torch.uniform(a, b)
  a, b = a or 0, b or 1
  return a + (b - a) * uniform01()
end

function torch.normal(mean, std)
  return (mean or 0) + (std or 1) * normal01()
end

function Tensor:uniform(a, b)
  a, b = a or 0, b or 1
  return (map1(self, self, function() return a + (b - a) * uniform01() end))
end

--- x:bernoulli([p]): each element 1 with probability p (default 0.5), else 0.
function Tensor:bernoulli(p)
  p = p or 0.5
  return (map1(self, self, function() return uniform01() <= p and 1 or 0 end))
end

function Tensor:normal(mean, std)
  mean, std = mean or 0, std or 1
  return (map1(self, self, function() return mean + std * normal01() end))
end

local function filled(fill)
  return function(...)
    return torch.Tensor(...):apply(fill)
  end
end
torch.zeros = filled(function() return 0 end)
torch.ones = filled(function() return 1 end)
torch.rand = filled(function() return uniform01() end)
torch.randn = filled(function() return normal01() end)

--- torch.range(a, b [, step]): a, a+step, ..., up to b (inclusive), as in Torch7.
function torch.range(a, b, step)
  step = step or 1
  if step == 0 or (b - a) / step < 0 then
    error("bad arguments to 'range': the range is empty or the step is 0", 2)
  end
  local n = math.floor((b - a) / step + 1e-9) + 1
  local values = {}
  for i = 1, n do
    values[i] = a + (i - 1) * step
  end
  return torch.Tensor(values)
end

function torch.linspace(a, b, n)
  n = n or 100
  local values = {}
  for i = 1, n do
    values[i] = n == 1 and a or a + (b - a) * (i - 1) / (n - 1)
  end
  return torch.Tensor(values)
end
