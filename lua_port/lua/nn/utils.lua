-- nn.utils: the helpers Torch7's modules share (type conversion, clearing buffers).

nn.utils = nn.utils or {}

--- `value` with every tensor converted to type `typeName`; tables and modules are
--- converted in place. Tensors met twice (and tensors sharing a storage) stay shared:
--- `cache` maps each original tensor and storage to its converted form.
function nn.utils.recursiveType(value, typeName, cache)
  cache = cache or {}
  if torch.isTensor(value) then
    if cache[value] then
      return cache[value]
    end
    local converted = value
    if torch.typename(value) ~= typeName then
      local kind = string.match(typeName, "^torch%.(%a+)Tensor$")
      local makeStorage = kind and torch[kind .. "Storage"]
      if not makeStorage then
        error(string.format("unknown tensor type '%s'", tostring(typeName)), 3)
      end
      local storage = value:storage()
      if not cache[storage] then
        cache[storage] = makeStorage(#storage):copy(storage)
      end
      converted = torch[kind .. "Tensor"]():set(cache[storage], value:storageOffset(), value:size(),
        value:stride())
    end
    cache[value] = converted
    return converted
  elseif type(value) == "table" then
    if cache[value] then
      return value
    end
    cache[value] = true
    if torch.isTypeOf(value, "nn.Module") or torch.isTypeOf(value, "nn.Criterion") then
      value:type(typeName, cache)
    elseif not torch.typename(value) then
      for key, item in pairs(value) do
        value[key] = nn.utils.recursiveType(item, typeName, cache)
      end
    end
  end
  return value
end

local function names_of(...)
  local names = { ... }
  if type(names[1]) == "table" then
    return names[1]
  end
  return names
end

--- nn.utils.clear(module, 'output', 'gradInput', ...) (or a table of names): empties the
--- named fields (tensors keep their object, tables become {}, others nil).
function nn.utils.clear(self, ...)
  for _, name in ipairs(names_of(...)) do
    local value = self[name]
    if torch.isTensor(value) then
      value:set()
    elseif type(value) == "table" then
      self[name] = {}
    elseif value ~= nil then
      self[name] = nil
    end
  end
  return self
end

--- nn.utils.release(module, 'output', ...): as clear, but a tensor field gets a new empty
--- tensor instead of being emptied in place, for fields that hold another's tensor (a
--- container's output is its last child's, Identity's its input), which clear would empty.
function nn.utils.release(self, ...)
  for _, name in ipairs(names_of(...)) do
    local value = self[name]
    if torch.isTensor(value) then
      self[name] = value.new()
    elseif type(value) == "table" then
      self[name] = {}
    else
      self[name] = nil
    end
  end
  return self
end
