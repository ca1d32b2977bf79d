-- nn.Identity: output = input and gradInput = gradOutput (the same objects, not copies).

local Identity, _ = torch.class("nn.Identity", "nn.Module")

function Identity:updateOutput(input)
  self.output = input
  return self.output
end

function Identity:updateGradInput(input, gradOutput)
  self.gradInput = gradOutput
  return self.gradInput
end

function Identity:clearState()
  local function clear(field)
    local value = self[field]
    if torch.isTensor(value) then
      self[field] = value.new()
    elseif type(value) == "table" then
      self[field] = {}
    else
      self[field] = nil
    end
  end
  clear("output")
  clear("gradInput")
  return self
end
