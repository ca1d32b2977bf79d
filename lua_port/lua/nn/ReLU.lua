-- nn.ReLU([inplace]): nn.Threshold(0, 0): y = x where x > 0, else 0.

local ReLU, Parent = torch.class("nn.ReLU", "nn.Threshold")

function ReLU:__init(p)
  Parent.__init(self, 0, 0, p)
end
