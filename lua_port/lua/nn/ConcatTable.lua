-- nn.ConcatTable: every child gets the same input; the output is the table of their
-- outputs. Backward: child i gets gradOutput[i], and their gradInputs are summed
-- (element by element when the input is itself a table).

local ConcatTable, parent = torch.class("nn.ConcatTable", "nn.Container")

function ConcatTable:__init()
  parent.__init(self)
  self.modules = {}
  self.output = {}
end

function ConcatTable:updateOutput(input)
  for i = 1, #self.modules do
    self.output[i] = self:rethrowErrors(self.modules[i], i, "updateOutput", input)
  end
  return self.output
end

-- t1[k] = f(t1, k, v) for every tensor v of t2, recursively through nested tables.
local function retable(t1, t2, f)
  for k, v in ipairs(t2) do
    if torch.type(v) == "table" then
      t1[k] = retable(t1[k] or {}, v, f)
    else
      f(t1, k, v)
    end
  end
  for i = #t2 + 1, #t1 do
    t1[i] = nil
  end
  return t1
end

local function backward(self, method, input, gradOutput, scale)
  if torch.type(input) == "table" then
    for i, module in ipairs(self.modules) do
      local gradInput = self:rethrowErrors(module, i, method, input, gradOutput[i], scale)
      if torch.type(gradInput) ~= "table" then
        error("currentGradInput is not a table!", 2)
      end
      if #input ~= #gradInput then
        error("table size mismatch: " .. #input .. " ~= " .. #gradInput, 2)
      end
      if i == 1 then
        self.gradInput = torch.type(self.gradInput) == "table" and self.gradInput or {}
        retable(self.gradInput, gradInput, function(t, k, v)
          t[k] = t[k] or v:clone()
          t[k]:resize(v:size()):copy(v)
        end)
      else
        retable(self.gradInput, gradInput, function(t, k, v)
          if t[k] then t[k]:add(v) else t[k] = v:clone() end
        end)
      end
    end
  else
    if torch.type(self.gradInput) == "table" then
      self.gradInput = input:clone()
    end
    for i, module in ipairs(self.modules) do
      local gradInput = self:rethrowErrors(module, i, method, input, gradOutput[i], scale)
      if i == 1 then
        self.gradInput:resize(gradInput:size()):copy(gradInput)
      else
        self.gradInput:add(gradInput)
      end
    end
  end
  return self.gradInput
end

function ConcatTable:updateGradInput(input, gradOutput)
  return backward(self, "updateGradInput", input, gradOutput)
end

function ConcatTable:backward(input, gradOutput, scale)
  return backward(self, "backward", input, gradOutput, scale or 1)
end

function ConcatTable:accGradParameters(input, gradOutput, scale)
  scale = scale or 1
  for i, module in ipairs(self.modules) do
    self:rethrowErrors(module, i, "accGradParameters", input, gradOutput[i], scale)
  end
end

ConcatTable.__tostring__ = parent.branches
