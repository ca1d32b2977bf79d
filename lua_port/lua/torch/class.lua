-- Torch7's class system (torch.class, torch.type, torch.getmetatable) in plain Lua.
--
-- As in Torch7's luaT: an instance is a table whose metatable is its class's metatable;
-- methods live in that metatable, and a class looks up what it lacks in its parent's
-- (the metatable's own metatable indexes the parent). torch.class returns the class and
-- its parent's metatable, and installs a constructor table (call it to build an instance:
-- it calls __init) in the package named by the class name, e.g. nn.CustomConv.
--
-- Torch7's hooks are kept: a class may define __index__(self, key) returning
-- (value, true) for keys it handles (the Tensor does, for numbers and index tables),
-- __newindex__(self, key, value) returning true, and __tostring__, __call__, __add__,
-- __sub__, __mul__, __div__, __unm__ behind the metamethods of the same names.

torch = torch or {}

local classes = {}  -- type name -> class metatable

local FORWARDED = { "__tostring", "__call", "__add", "__sub", "__mul", "__div", "__unm", "__concat" }

local function package_of(name)
  local G = _G
  local path, class = string.match(name, "^(.*)%.([^.]+)$")
  if not path then
    return G, name
  end
  local package = G
  for part in string.gmatch(path, "[^.]+") do
    package = type(package) == "table" and rawget(package, part) or nil
  end
  if type(package) ~= "table" then
    error(string.format("%s is an invalid module name", path), 3)
  end
  return package, class
end

local function forward(mt, event)
  local method = event .. "__"
  mt[event] = function(...)
    local fn = mt[method]
    if fn then
      return fn(...)
    end
    if event == "__tostring" then
      return mt.__typename
    end
    error(string.format("attempt to perform '%s' on a %s value", event, mt.__typename), 2)
  end
end

local function newclass(name, parent)
  local mt = { __typename = name }
  setmetatable(mt, { __index = parent })
  mt.__index = function(self, key)
    local value = mt[key]
    if value == nil and type(key) ~= "string" then
      local index = mt.__index__
      if index then
        local result, handled = index(self, key)
        if handled then
          return result
        end
      end
    end
    return value
  end
  mt.__newindex = function(self, key, value)
    local newindex = mt.__newindex__
    if newindex and type(key) ~= "string" and newindex(self, key, value) then
      return
    end
    rawset(self, key, value)
  end
  for _, event in ipairs(FORWARDED) do
    forward(mt, event)
  end
  return mt
end

--- torch.class(name [, parentName] [, package]): a new class; returns (class, parent).
function torch.class(name, parentName, package)
  if type(name) ~= "string" then
    error("bad argument #1 to 'class' (class name expected)", 2)
  end
  if type(parentName) == "table" then
    parentName, package = nil, parentName
  end
  if classes[name] then
    error(string.format("class %s has been already assigned", name), 2)
  end
  local parent
  if parentName ~= nil then
    parent = classes[parentName]
    if not parent then
      error(string.format("invalid parent class name %s", tostring(parentName)), 2)
    end
  end
  local class
  if package then
    class = string.match(name, "([^.]+)$")
  else
    package, class = package_of(name)
  end
  local mt = newclass(name, parent)
  classes[name] = mt
  local constructor = setmetatable({}, {
    __index = mt,
    __newindex = mt,
    __call = function(_, ...)
      local self = setmetatable({}, mt)
      local init = mt.__init
      if init then
        init(self, ...)
      end
      return self
    end,
    __tostring = function() return "torch.class " .. name end,
  })
  rawset(package, class, constructor)
  return mt, parent
end

--- The class metatable registered under a type name, or nil.
function torch.getmetatable(name)
  return classes[name]
end

--- The Torch type name of obj ("torch.DoubleTensor", "nn.CustomConv"), else type(obj).
function torch.typename(obj)
  local mt = getmetatable(obj)
  if type(mt) == "table" then
    local name = rawget(mt, "__typename")
    if type(name) == "string" then
      return name
    end
  end
  return nil
end

function torch.type(obj)
  return torch.typename(obj) or type(obj)
end

--- Is obj an instance of the class named typeName or of a class derived from it?
function torch.isTypeOf(obj, typeName)
  local mt = getmetatable(obj)
  while type(mt) == "table" do
    if rawget(mt, "__typename") == typeName then
      return true
    end
    if rawget(mt, "__sibling") then
      return false  -- tensor and storage types share methods without being subclasses
    end
    local chain = getmetatable(mt)
    mt = chain and rawget(chain, "__index")
  end
  return false
end

--- The version a class writes into .t7 files (its __version field, inherited; 1 by default).
function torch.version(obj)
  local mt = getmetatable(obj)
  return type(mt) == "table" and mt.__version or 1
end

--- A function that builds an empty instance of the class named `name` (no __init), as
--- torch.load needs; nil for an unknown name.
function torch.factory(name)
  local mt = classes[name]
  if not mt then
    return nil
  end
  local factory = rawget(mt, "__factory")
  return factory or function()
    return setmetatable({}, mt)
  end
end

--- The names of every class, sorted (for "not in the shim" messages).
function torch.classNames(prefix)
  local names = {}
  for name in pairs(classes) do
    if prefix == nil or string.sub(name, 1, #prefix) == prefix then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  return names
end

return torch
