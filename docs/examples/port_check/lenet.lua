-- A LeNet-style Torch7 model, as a 2016 paper's repository would build it, saved to
-- lenet.t7 (docs/porting.md, "Checking a PyTorch port"). Run it in lua_port's sandbox:
--   lua_port.run(open("lenet.lua").read(), files={"lenet.t7": "w"})
require 'nn'
torch.manualSeed(42)

local net = nn.Sequential()
net:add(nn.SpatialConvolution(1, 6, 5, 5))          -- 1x32x32 -> 6x28x28
net:add(nn.ReLU())
net:add(nn.SpatialMaxPooling(3, 3, 2, 2):ceil())     -- 6x28x28 -> 6x14x14 (floor would give 13x13)
net:add(nn.SpatialConvolution(6, 16, 4, 4))         -- -> 16x11x11
net:add(nn.ReLU())
net:add(nn.SpatialMaxPooling(2, 2, 2, 2))            -- -> 16x5x5
net:add(nn.View(16 * 5 * 5))
net:add(nn.Linear(16 * 5 * 5, 120))
net:add(nn.ReLU())
net:add(nn.Linear(120, 84))
net:add(nn.ReLU())
net:add(nn.Linear(84, 10))
net:add(nn.LogSoftMax())

torch.save('lenet.t7', net)
return tostring(net)
