-- What lua_port's Python side asks of a Torch7 model held in the trusted Lua state
-- (lua_port.torch7, the port checker): loading and saving bytes, and running the model
-- while recording what every leaf module (every module without children) receives and
-- produces, in the order the calls happen.

local util = torch._util
local inspect = {}

--- The bytes holder[1]:sub(first, last) as numbers (Python cannot take binary Lua
--- strings whole: they stay in Lua, in a table).
function inspect.bytes(holder, first, last)
  return string.byte(holder[1], first, last)
end

--- torch.deserialize for Python: `data` the bytes of a .t7 file.
function inspect.load(data, mode)
  return torch.deserialize(data, mode)
end

--- torch.serialize for Python: ({bytes}, length).
function inspect.save(object, mode)
  local s = torch.serialize(object, mode)
  return { s }, #s
end

-- A copy of a tensor, or of the tensors in a (nested) table.
local function copy(value)
  if torch.isTensor(value) then
    return value:clone()
  elseif type(value) == "table" then
    local t = {}
    for i, v in ipairs(value) do
      t[i] = copy(v)
    end
    return t
  end
  return value
end

--- The leaves of a module tree, depth first: {module, path} with path "(2)(1)" (the
--- positions in the containers above it), each module once.
function inspect.leaves(model)
  local out, seen = {}, {}
  local function walk(module, path)
    if seen[module] then
      return
    end
    seen[module] = true
    if type(module.modules) == "table" and #module.modules > 0 then
      for i, child in ipairs(module.modules) do
        walk(child, path .. "(" .. i .. ")")
      end
    else
      out[#out + 1] = { module = module, path = path }
    end
  end
  walk(model, "")
  return out
end

-- Wrap method `name` of every leaf to call record(leaf, result, ...) after the class's
-- method; returns the function that removes the wrappers.
local function wrap(leaves, name, record)
  for _, leaf in ipairs(leaves) do
    local module = leaf.module
    local method = getmetatable(module)[name]
    rawset(module, name, function(self, ...)
      local result = method(self, ...)
      record(leaf, result, ...)
      return result
    end)
  end
  return function()
    for _, leaf in ipairs(leaves) do
      rawset(leaf.module, name, nil)
    end
  end
end

--- model:forward(input), recording {path, module, input, output} per leaf call.
function inspect.forward(model, input)
  local leaves, records = inspect.leaves(model), {}
  local unwrap = wrap(leaves, "updateOutput", function(leaf, output, x)
    records[#records + 1] = { path = leaf.path, module = leaf.module, typename = torch.typename(leaf.module),
      text = tostring(leaf.module), input = copy(x), output = copy(output) }
  end)
  local ok, err = pcall(model.forward, model, input)
  unwrap()
  if not ok then
    error(err, 0)
  end
  return records, model.output
end

--- model:zeroGradParameters() then model:backward(input, gradOutput), recording
--- {path, gradOutput, gradInput} per leaf call (the parameters' gradients are read from
--- the modules afterwards).
function inspect.backward(model, input, gradOutput)
  local leaves, records = inspect.leaves(model), {}
  model:zeroGradParameters()
  local unwrap = wrap(leaves, "updateGradInput", function(leaf, gradInput, _, g)
    records[#records + 1] = { path = leaf.path, gradOutput = copy(g), gradInput = copy(gradInput) }
  end)
  local ok, err = pcall(model.backward, model, input, gradOutput)
  unwrap()
  if not ok then
    error(err, 0)
  end
  return records, model.gradInput
end

--- A module's own parameters and their gradients ({} when it has none).
function inspect.parameters(module)
  local params, grads = module:parameters()
  return params or {}, grads or {}
end

--- Fill tensor t with the numbers of the Lua array data (converted to t's type).
function inspect.assign(t, data)
  local flat = util.makeTensor(util.adoptStorage(data), 0, { #data }, { 1 })
  t:copy(flat:view(t:size()))
end

return inspect
