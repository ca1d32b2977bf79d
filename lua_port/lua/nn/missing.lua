-- Loaded last: asking torch or nn for a class the shim does not have (a capitalised name
-- that is not there, such as nn.SpatialFullConvolution or torch.CudaTensor) raises an
-- error that says so and lists the classes the shim has, instead of Lua's "attempt to
-- call a nil value" further on. Lower-case names (functions, fields) are left alone.

local function guard(package, prefix)
  setmetatable(package, {
    __index = function(_, key)
      if type(key) == "string" and string.match(key, "^%u") then
        local names = torch.classNames(prefix .. ".")
        error(string.format("%s.%s is not in lua_port's Torch7 shim, which has: %s", prefix, key,
          table.concat(names, ", ")), 2)
      end
      return nil
    end,
  })
end

guard(torch, "torch")
guard(nn, "nn")
