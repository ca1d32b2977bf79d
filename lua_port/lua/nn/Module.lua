-- nn.Module: Torch7's module protocol.
--
--   forward(input)                      -> updateOutput(input)
--   backward(input, gradOutput, scale)  -> updateGradInput(input, gradOutput), which
--       OVERWRITES self.gradInput, then accGradParameters(input, gradOutput, scale),
--       which ADDS scale * dLoss/dParameters to gradWeight / gradBias.
--   zeroGradParameters() zeroes the accumulated gradients; parameters() returns
--   {weight, bias}, {gradWeight, gradBias} (the ones present); updateParameters(lr)
--   subtracts lr * gradient; getParameters() moves every parameter (and every gradient)
--   into one flat storage and returns the two flat tensors.
-- Subclasses override updateOutput / updateGradInput / accGradParameters, never forward
-- or backward: containers (nn.Sequential and friends) call the update* methods directly.
-- As in Torch7, a new module has no `train` field (nil counts as training where a
-- module cares), and training() / evaluate() return nothing.

nn = nn or {}

local util = torch._util
local Module = torch.class("nn.Module")

function Module:__init()
  self.gradInput = torch.Tensor()
  self.output = torch.Tensor()
  self._type = self.output:type()
end

function Module:parameters()
  if self.weight and self.bias then
    return { self.weight, self.bias }, { self.gradWeight, self.gradBias }
  elseif self.weight then
    return { self.weight }, { self.gradWeight }
  elseif self.bias then
    return { self.bias }, { self.gradBias }
  end
end

function Module:updateOutput(input)
  return self.output
end

function Module:forward(input)
  return self:updateOutput(input)
end

function Module:backward(input, gradOutput, scale)
  scale = scale or 1
  self:updateGradInput(input, gradOutput)
  self:accGradParameters(input, gradOutput, scale)
  return self.gradInput
end

function Module:updateGradInput(input, gradOutput)
  return self.gradInput
end

function Module:accGradParameters(input, gradOutput, scale)
end

function Module:zeroGradParameters()
  local _, gradParams = self:parameters()
  if gradParams then
    for i = 1, #gradParams do
      gradParams[i]:zero()
    end
  end
end

function Module:updateParameters(learningRate)
  local params, gradParams = self:parameters()
  if params then
    for i = 1, #params do
      params[i]:add(-learningRate, gradParams[i])
    end
  end
end

function Module:training()
  self.train = true
end

function Module:evaluate()
  self.train = false
end

function Module:reset()
end

--- m:share(other, 'weight', 'bias', ...): m's named tensors become views of other's.
function Module:share(mlp, ...)
  for _, name in ipairs({ ... }) do
    if self[name] ~= nil then
      self[name]:set(mlp[name])
      self.shared = true
      mlp.shared = true
    end
  end
  return self
end

--- A deep copy (shared references inside stay shared, as a save and load would keep
--- them); with names, clone:share(m, ...) follows.
function Module:clone(...)
  local copy = util.deepCopy(self)
  if select("#", ...) > 0 then
    copy:share(self, ...)
  end
  return copy
end

--- m:type() is m's tensor type; m:type(name) converts every tensor of m to that type
--- (tensors shared inside m stay shared).
function Module:type(typeName, tensorCache)
  if not typeName then
    return self._type
  end
  tensorCache = tensorCache or {}
  for key, value in pairs(self) do
    self[key] = nn.utils.recursiveType(value, typeName, tensorCache)
  end
  self._type = typeName
  return self
end

function Module:float(...)
  return self:type("torch.FloatTensor", ...)
end

function Module:double(...)
  return self:type("torch.DoubleTensor", ...)
end

-- Every tensor of `params`, moved into one storage (Torch7's Module.flatten): tensors
-- that share a storage keep sharing it, and a storage's elements that no tensor uses are
-- left out when every tensor is contiguous.
function Module.flatten(parameters)
  if not parameters or #parameters == 0 then
    return torch.Tensor()
  end
  local Tensor = parameters[1].new
  local bases, order, total = {}, {}, 0
  for _, p in ipairs(parameters) do
    local storage = p:storage()
    if not bases[storage] then
      bases[storage] = total
      order[#order + 1] = storage
      total = total + #storage
    end
  end
  local used, meta = {}, {}
  for k, p in ipairs(parameters) do
    local base = bases[p:storage()] + p:storageOffset()
    meta[k] = { offset = base, size = p:size(), stride = p:stride(), contiguous = p:isContiguous() }
    local view = util.makeTensor({}, base - 1, p._size, p._stride)
    for _, position in ipairs(util.positions(view)) do
      used[position] = true
    end
  end
  local values = {}
  for _, storage in ipairs(order) do
    local base = bases[storage]
    for i = 1, #storage do
      values[base + i] = storage[i]
    end
  end
  local compact, map = {}, {}
  for i = 1, total do
    if used[i] then
      compact[#compact + 1] = values[i]
      map[i] = #compact
    end
  end
  if #compact ~= total then
    for k = 1, #parameters do
      if not meta[k].contiguous then
        error("Cannot gather tensors that are not compact", 3)
      end
      meta[k].offset = map[meta[k].offset]
    end
    values = compact
  end
  local flat = Tensor(#values)
  local storage = flat:storage()
  for i = 1, #values do
    storage[i] = values[i]
  end
  for k, p in ipairs(parameters) do
    p:set(storage, meta[k].offset, meta[k].size, meta[k].stride)
  end
  return flat
end

function Module:getParameters()
  local parameters, gradParameters = self:parameters()
  local p, g = Module.flatten(parameters), Module.flatten(gradParameters)
  if p:nElement() ~= g:nElement() then
    error("check that you are sharing parameters and gradParameters", 2)
  end
  if parameters then
    for i = 1, #parameters do
      if parameters[i]:storageOffset() ~= gradParameters[i]:storageOffset() then
        error("misaligned parameter at " .. tostring(i), 2)
      end
    end
  end
  return p, g
end

--- How a module goes into a .t7 file: the table of its fields.
function Module:write(file)
  local object = {}
  for key, value in pairs(self) do
    object[key] = value
  end
  file:writeObject(object)
end

function Module:read(file)
  local object = file:readObject()
  for key, value in pairs(object) do
    self[key] = value
  end
end

function Module:__call__(input, gradOutput)
  self:forward(input)
  if gradOutput then
    self:backward(input, gradOutput)
    return self.output, self.gradInput
  end
  return self.output
end

--- callback(module) on this module and its children, depth first.
function Module:apply(callback)
  callback(self)
  if self.modules then
    for _, module in ipairs(self.modules) do
      module:apply(callback)
    end
  end
end

function Module:findModules(typename, container)
  container = container or self
  local nodes, containers = {}, {}
  if torch.typename(self) == typename then
    nodes[#nodes + 1], containers[#containers + 1] = self, container
  end
  if type(self.modules) == "table" then
    for _, child in ipairs(self.modules) do
      local found, where = child:findModules(typename, self)
      for j = 1, #found do
        nodes[#nodes + 1], containers[#containers + 1] = found[j], where[j]
      end
    end
  end
  return nodes, containers
end

function Module:listModules()
  local modules = { self }
  if self.modules then
    for _, child in ipairs(self.modules) do
      for _, m in ipairs(child:listModules()) do
        modules[#modules + 1] = m
      end
    end
  end
  return modules
end

function Module:clearState()
  return nn.utils.clear(self, "output", "gradInput")
end

function Module:replace(callback)
  local out = callback(self)
  if self.modules then
    for i, module in ipairs(self.modules) do
      self.modules[i] = module:replace(callback)
    end
  end
  return out
end

function Module:__tostring__()
  return torch.type(self)
end
