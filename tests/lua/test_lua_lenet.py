"""A Torch7 LeNet written as in 2016, run as a user's snippet (lua_port.run): forward,
backward and an SGD step equal torch.nn's to 1e-10 in float64, on LuaJIT and Lua 5.4;
and the nn.Module methods such code uses (getParameters, clone, training/evaluate,
type conversions, printing)."""

import numpy as np
import pytest
from torch7_cases import assert_close

torch = pytest.importorskip("torch")

LENET = """
require 'nn'
torch.manualSeed(123)

local net = nn.Sequential()
net:add(nn.SpatialConvolution(1, 6, 5, 5))   -- 1 input image channel, 6 output channels, 5x5 convolution
net:add(nn.ReLU())
net:add(nn.SpatialMaxPooling(2, 2, 2, 2))
net:add(nn.SpatialConvolution(6, 16, 5, 5))
net:add(nn.ReLU())
net:add(nn.SpatialMaxPooling(2, 2, 2, 2))
net:add(nn.View(16 * 5 * 5))                 -- reshapes 16x5x5 into a vector of 400
net:add(nn.Linear(16 * 5 * 5, 120))
net:add(nn.ReLU())
net:add(nn.Linear(120, 84))
net:add(nn.ReLU())
net:add(nn.Linear(84, 10))
net:add(nn.LogSoftMax())

local criterion = nn.ClassNLLCriterion()
local parameters, gradParameters = net:getParameters()
local initial = parameters:clone()

local input = torch.randn(2, 1, 32, 32)
local target = torch.Tensor({3, 10})

-- one step of SGD, as optim.sgd's feval loop does it
gradParameters:zero()
local output = net:forward(input):clone()   -- the next forward reuses the output tensor
local loss = criterion:forward(output, target)
local gradOutput = criterion:backward(output, target)
local gradInput = net:backward(input, gradOutput)
parameters:add(-0.05, gradParameters)
local after = net:forward(input):clone()

return initial, input, output, loss, gradInput, gradParameters, parameters, after, tostring(net)
"""


def _torch_lenet():
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2, 2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
                         nn.ReLU(), nn.Linear(84, 10), nn.LogSoftmax(dim=1)).double()


def test_a_2016_lenet_trains_one_sgd_step_like_torch(lua):
    initial, x, output, loss, grad_input, grad_params, params, after, text = lua(LENET)
    net = _torch_lenet()
    # getParameters: one flat storage, each module's weight then bias, in module order.
    offset = 0
    for p in net.parameters():
        p.data.copy_(torch.from_numpy(initial[offset:offset + p.numel()].reshape(p.shape)))
        offset += p.numel()
    assert offset == initial.size == 61706
    xt = torch.tensor(x, requires_grad=True)
    out = net(xt)
    target = torch.tensor([2, 9])  # Torch7's classes 3 and 10, 1-based
    torch_loss = torch.nn.functional.nll_loss(out, target)
    torch_loss.backward()
    assert_close(output, out.detach(), "output")
    assert loss == pytest.approx(float(torch_loss.detach()), rel=1e-12)
    assert_close(grad_input, xt.grad, "gradInput")
    grads = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    assert_close(grad_params, grads, "gradParameters (flat)")
    with torch.no_grad():
        for p in net.parameters():
            p -= 0.05 * p.grad
    assert_close(params, torch.cat([p.reshape(-1) for p in net.parameters()]).detach(), "after the SGD step")
    assert_close(after, net(xt).detach(), "output after the step")
    assert text.startswith("nn.Sequential {\n  [input -> (1) -> (2)")
    assert "(7): nn.View(400)" in text and "(8): nn.Linear(400 -> 120)" in text


def test_module_methods_used_by_training_code(lua):
    results = lua("""
        local net = nn.Sequential():add(nn.Linear(3, 4)):add(nn.Dropout(0.5)):add(nn.Linear(4, 2))
        local params, grads = net:getParameters()
        local shares = net.modules[1].weight:storage() == params:storage()
            and net.modules[3].bias:storage() == params:storage()
        params:fill(0.5)                                 -- the modules see the change
        local seen = net.modules[3].bias[2]
        net:evaluate()
        local evaluating = net.modules[2].train == false
        net:training()
        local copy = net:clone()
        copy.modules[1].weight:fill(9)
        local independent = net.modules[1].weight[1][1] == 0.5
        local shared = net:clone('weight', 'bias')
        shared.modules[1].weight:fill(7)
        local sharing = net.modules[1].weight[1][1] == 7
        net:zeroGradParameters()
        local before = net.modules[1].weight[1][1]
        net.modules[1].gradWeight:fill(1)
        net:updateParameters(0.25)
        local floats = nn.Linear(2, 2):float()
        local p, g = nn.Sequential():add(nn.Linear(2, 3)):parameters()
        return {params:nElement(), shares and 1 or 0, seen, evaluating and 1 or 0, independent and 1 or 0,
                sharing and 1 or 0, before - net.modules[1].weight[1][1], #p, #g},
               {torch.type(floats.weight), floats:type(), torch.type(floats:double().weight)}
    """)
    numbers, types = results
    assert numbers == [3 * 4 + 4 + 4 * 2 + 2, 1.0, 0.5, 1.0, 1.0, 1.0, 0.25, 2.0, 2.0]
    assert types == ["torch.FloatTensor", "torch.FloatTensor", "torch.DoubleTensor"]


def test_a_float_module_rounds_its_parameters_to_float32(lua):
    weight = lua("local m = nn.Linear(2, 1) m.weight:fill(0.1) return m:float().weight:double()")
    assert weight[0, 0] == float(np.float32(0.1)) != 0.1
