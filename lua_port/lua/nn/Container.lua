-- nn.Container: what Sequential, Concat, ConcatTable and ParallelTable share: a list of
-- modules (self.modules), add / get / size, and the protocol calls forwarded to every
-- child. An error inside a child comes back prefixed "In <i> module of <container>:",
-- as in Torch7, keeping the child's own message (its file and line).

local Container, parent = torch.class("nn.Container", "nn.Module")

local MEMORY = "not enough memory"

function Container:__init(...)
  parent.__init(self, ...)
  self.modules = {}
end

function Container:add(module)
  table.insert(self.modules, module)
  return self
end

function Container:get(index)
  return self.modules[index]
end

function Container:size()
  return #self.modules
end

local function rethrow(self, index, ok, ...)
  if ok then
    return ...
  end
  local err = ...
  if type(err) ~= "string" or err == MEMORY then
    error(err, 0)
  end
  error(string.format("In %d module of %s:\n%s", index, torch.type(self), err), 0)
end

--- module[funcName](module, ...) for child `index`, prefixing its errors with the
--- position of the module in this container.
function Container:rethrowErrors(module, index, funcName, ...)
  return rethrow(self, index, pcall(module[funcName], module, ...))
end

function Container:applyToModules(func)
  for _, module in ipairs(self.modules) do
    func(module)
  end
end

function Container:zeroGradParameters()
  self:applyToModules(function(module) module:zeroGradParameters() end)
end

function Container:updateParameters(learningRate)
  self:applyToModules(function(module) module:updateParameters(learningRate) end)
end

function Container:training()
  self:applyToModules(function(module) module:training() end)
  parent.training(self)
end

function Container:evaluate()
  self:applyToModules(function(module) module:evaluate() end)
  parent.evaluate(self)
end

function Container:share(mlp, ...)
  for i = 1, #self.modules do
    self.modules[i]:share(mlp.modules[i], ...)
  end
  return self
end

function Container:reset(stdv)
  self:applyToModules(function(module) module:reset(stdv) end)
end

function Container:parameters()
  local weights, gradWeights = {}, {}
  for i = 1, #self.modules do
    local w, gw = self.modules[i]:parameters()
    if w then
      for k = 1, #w do
        weights[#weights + 1] = w[k]
        gradWeights[#gradWeights + 1] = gw[k]
      end
    end
  end
  return weights, gradWeights
end

function Container:clearState()
  nn.utils.release(self, "output", "gradInput")  -- the children's tensors: not emptied
  for _, module in ipairs(self.modules or {}) do
    module:clearState()
  end
  return self
end

-- The Torch7 drawing of a container whose children all see the input (Concat,
-- ConcatTable, ParallelTable).
function Container.branches(self)
  local lines = { torch.type(self) .. " {", "  input" }
  for i, module in ipairs(self.modules) do
    local last = i == #self.modules
    local text = tostring(module):gsub("\n", "\n  " .. (last and "       " or "  |    "))
    lines[#lines + 1] = "  " .. (last and "   `-> " or "  |`-> ") .. "(" .. i .. "): " .. text
  end
  lines[#lines + 1] = "     ... -> output"
  lines[#lines + 1] = "}"
  return table.concat(lines, "\n")
end
