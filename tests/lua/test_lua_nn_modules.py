"""Every nn module of the Torch7 shim against torch.nn with the same weights, float64:
forward, gradInput and the parameters' gradients (accGradParameters with scale 1), on
LuaJIT and Lua 5.4."""

import zlib

import numpy as np
import pytest
from torch7_cases import assert_close, lua_gradients, lua_module, lua_value, set_lua_parameters, torch_of

torch = pytest.importorskip("torch")
nn = torch.nn


def _conv(c_in, c_out, kernel, stride, padding):
    return nn.Conv2d(c_in, c_out, kernel, stride, padding)


def _reshaper(fn):
    class Fn(nn.Module):
        def forward(self, x):
            return fn(x)

    return Fn()


def _residual():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(5, 5)

        def forward(self, x):
            return self.linear(x) + x

    return Residual()


def _concat():
    class Both(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(2, 1, 1)

        def forward(self, x):
            return torch.cat([self.a(x), self.b(x)], 1)

    return Both()


def _parallel():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(4, 2)

        def forward(self, xs):
            return [self.a(xs[0]), self.b(xs[1])]

    return Pair()


def _sequential():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3), nn.Sigmoid())


#: id -> (Lua constructor, torch module factory, input shape(s)). The torch module's
#: parameters are in Torch7's order (weight, bias, module by module); MM's weight is the
#: same numbers as Conv2d's, reshaped.
CASES = {
    "Linear vector": ("nn.Linear(5, 3)", lambda: nn.Linear(5, 3), (5,)),
    "Linear batch": ("nn.Linear(5, 3)", lambda: nn.Linear(5, 3), (4, 5)),
    "Linear noBias": ("nn.Linear(5, 3, false)", lambda: nn.Linear(5, 3, bias=False), (2, 5)),
    "SpatialConvolution": ("nn.SpatialConvolution(3, 4, 3, 2, 2, 1, 1, 0)",
                           lambda: _conv(3, 4, (2, 3), (1, 2), (0, 1)), (2, 3, 5, 7)),
    "SpatialConvolution 3D input": ("nn.SpatialConvolution(2, 3, 3, 3, 1, 1, 1)",
                                    lambda: _conv(2, 3, 3, 1, 1), (2, 4, 5)),
    "SpatialConvolutionMM": ("nn.SpatialConvolutionMM(3, 4, 3, 2, 1, 2, 0, 1)",
                             lambda: _conv(3, 4, (2, 3), (2, 1), (1, 0)), (2, 3, 6, 5)),
    "SpatialMaxPooling floor": ("nn.SpatialMaxPooling(2, 2)", lambda: nn.MaxPool2d(2), (2, 3, 7, 7)),
    "SpatialMaxPooling ceil pad": ("nn.SpatialMaxPooling(3, 2, 2, 1, 1, 0):ceil()",
                                   lambda: nn.MaxPool2d((2, 3), (1, 2), (0, 1), ceil_mode=True),
                                   (2, 2, 5, 8)),
    "SpatialAveragePooling stride 1": ("nn.SpatialAveragePooling(2, 2)",
                                       lambda: nn.AvgPool2d(2, stride=1), (1, 2, 4, 5)),
    "SpatialAveragePooling ceil pad": ("nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1):ceil()",
                                       lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True), (2, 2, 6, 6)),
    "SpatialAveragePooling exclude pad": ("nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1):setCountExcludePad()",
                                          lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False),
                                          (2, 2, 5, 6)),
    "SpatialBatchNormalization": ("nn.SpatialBatchNormalization(3)", lambda: nn.BatchNorm2d(3), (4, 3, 3, 2)),
    "BatchNormalization": ("nn.BatchNormalization(4, 1e-3, 0.3)",
                           lambda: nn.BatchNorm1d(4, eps=1e-3, momentum=0.3), (6, 4)),
    "ReLU": ("nn.ReLU()", nn.ReLU, (3, 4)),
    "Threshold": ("nn.Threshold(0.1, -2)", lambda: nn.Threshold(0.1, -2.0), (3, 4)),
    "Tanh": ("nn.Tanh()", nn.Tanh, (3, 4)),
    "Sigmoid": ("nn.Sigmoid()", nn.Sigmoid, (3, 4)),
    "SoftMax 1D": ("nn.SoftMax()", lambda: nn.Softmax(0), (5,)),
    "SoftMax 2D": ("nn.SoftMax()", lambda: nn.Softmax(1), (3, 5)),
    "SoftMax 3D": ("nn.SoftMax()", lambda: nn.Softmax(0), (3, 2, 4)),
    "SoftMax 4D": ("nn.SoftMax()", lambda: nn.Softmax(1), (2, 3, 2, 2)),
    "LogSoftMax 2D": ("nn.LogSoftMax()", lambda: nn.LogSoftmax(1), (3, 5)),
    "LogSoftMax 4D": ("nn.LogSoftMax()", lambda: nn.LogSoftmax(1), (2, 3, 2, 2)),
    "View batch": ("nn.View(12)", lambda: _reshaper(lambda x: x.reshape(2, 12)), (2, 3, 4)),
    "View one sample": ("nn.View(12)", lambda: _reshaper(lambda x: x.reshape(12)), (3, 4)),
    "View -1": ("nn.View(-1)", lambda: _reshaper(lambda x: x.reshape(-1)), (2, 3, 4)),
    "View -1 setNumInputDims": ("nn.View(-1):setNumInputDims(2)",
                                lambda: _reshaper(lambda x: x.reshape(2, -1)), (2, 3, 4)),
    "Reshape": ("nn.Reshape(3, 4)", lambda: _reshaper(lambda x: x.reshape(2, 3, 4)), (2, 12)),
    "SpatialZeroPadding": ("nn.SpatialZeroPadding(1, 2, -1, 0)", lambda: nn.ZeroPad2d((1, 2, -1, 0)),
                           (2, 2, 4, 3)),
    "Identity": ("nn.Identity()", nn.Identity, (3, 2)),
    "CAddTable": ("nn.CAddTable()", lambda: _reshaper(lambda xs: xs[0] + xs[1]), [(2, 3), (2, 3)]),
    "Sequential": ("nn.Sequential():add(nn.SpatialConvolution(1, 2, 3, 3)):add(nn.Tanh())"
                   ":add(nn.View(2 * 4 * 4)):add(nn.Linear(32, 3)):add(nn.Sigmoid())", _sequential,
                   (2, 1, 6, 6)),
    "Concat": ("nn.Concat(2):add(nn.SpatialConvolution(2, 3, 3, 3, 1, 1, 1))"
               ":add(nn.SpatialConvolution(2, 1, 1, 1))",
               _concat, (2, 2, 4, 4)),
    "ConcatTable residual": ("nn.Sequential():add(nn.ConcatTable():add(nn.Linear(5, 5)):add(nn.Identity()))"
                             ":add(nn.CAddTable())", _residual, (3, 5)),
    "ParallelTable": ("nn.ParallelTable():add(nn.Linear(3, 2)):add(nn.Linear(4, 2))", _parallel,
                      [(2, 3), (2, 4)]),
}


def _inputs(shape, rng):
    if isinstance(shape, list):
        return [rng.standard_normal(s) for s in shape]
    return rng.standard_normal(shape)


@pytest.mark.parametrize("name", CASES)
def test_module_matches_torch_nn_forward_and_backward(runtime, name):
    code, factory, shape = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    torch.manual_seed(0)
    reference = factory().double()
    for p in reference.parameters():
        p.data.copy_(torch_of(rng.uniform(-0.8, 0.8, tuple(p.shape))))
    model = lua_module(runtime, code)
    params = list(reference.parameters())
    set_lua_parameters(model, [p.detach().numpy() for p in params])
    x = _inputs(shape, rng)

    xt = [torch_of(a, True) for a in x] if isinstance(x, list) else torch_of(x, True)
    expected = reference(xt)
    got = model.forward(x)
    if isinstance(expected, list):
        for g, e in zip(got, expected, strict=True):
            assert_close(g, e.detach(), f"{name} forward")
    else:
        assert_close(got, expected.detach(), f"{name} forward")

    outs = expected if isinstance(expected, list) else [expected]
    grads = [rng.standard_normal(tuple(o.shape)) for o in outs]
    torch.autograd.backward(outs, [torch_of(g) for g in grads])
    model.lua.method(model.obj, "zeroGradParameters")
    grad_input = model.backward(x, grads if isinstance(expected, list) else grads[0])
    if isinstance(xt, list):
        for g, t in zip(grad_input, xt, strict=True):
            assert_close(g, t.grad, f"{name} gradInput")
    else:
        assert_close(grad_input, xt.grad, f"{name} gradInput")
    for i, (g, p) in enumerate(zip(lua_gradients(model), params, strict=True)):
        assert_close(g, p.grad.reshape(g.shape), f"{name} grad {i}")


@pytest.mark.parametrize("spatial", [False, True])
def test_batch_normalization_running_statistics_and_evaluation(runtime, spatial):
    # Torch7: running = momentum * batch + (1 - momentum) * running, the UNBIASED batch
    # variance for running_var; evaluation normalises with the running statistics.
    rng = np.random.default_rng(5)
    shape = (5, 3, 2, 2) if spatial else (5, 3)
    reference = (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(3, momentum=0.2).double()
    model = lua_module(runtime, f"nn.{'Spatial' if spatial else ''}BatchNormalization(3, 1e-5, 0.2)")
    set_lua_parameters(model, [p.detach().numpy() for p in reference.parameters()])
    for _ in range(2):
        x = rng.normal(2.0, 3.0, shape)
        reference(torch_of(x))
        model.forward(x)
    fields = model.lua.call(model.lua.torch.type, model.obj)
    assert fields.endswith("BatchNormalization")
    assert_close(model.lua.array(model.obj.running_mean), reference.running_mean, "running_mean")
    assert_close(model.lua.array(model.obj.running_var), reference.running_var, "running_var")
    reference.eval()
    model.evaluate()
    x = rng.normal(size=shape)
    assert_close(model.forward(x), reference(torch_of(x)).detach(), "evaluation")


def test_dropout_scales_kept_elements_in_training_and_passes_through_in_evaluation(runtime):
    model = lua_module(runtime, "nn.Dropout(0.25)")
    x = np.random.default_rng(1).uniform(1, 2, (40, 50))
    out = model.forward(x)
    kept = out != 0
    assert 0.65 < kept.mean() < 0.85
    assert_close(out[kept], x[kept] / 0.75, "kept elements scaled by 1/(1-p)")
    grad = model.backward(x, np.ones_like(x))
    assert_close(grad, kept / 0.75, "the gradient takes the same mask")
    model.evaluate()
    assert_close(model.forward(x), x, "evaluation: identity")
    v1 = lua_module(runtime, "nn.Dropout(0.25, true)")
    v1.evaluate()
    assert_close(v1.forward(x), x * 0.75, "v1 scales in evaluation")


CRITERIA = {
    "ClassNLLCriterion": ("nn.ClassNLLCriterion()", lambda o, t: torch.nn.functional.nll_loss(o, t)),
    "ClassNLLCriterion sum": ("nn.ClassNLLCriterion(nil, false)",
                              lambda o, t: torch.nn.functional.nll_loss(o, t, reduction="sum")),
    "ClassNLLCriterion weights": ("nn.ClassNLLCriterion(torch.Tensor({0.5, 2, 1, 3}))",
                                  lambda o, t: torch.nn.functional.nll_loss(
                                      o, t, weight=torch_of([0.5, 2, 1, 3]))),
    "CrossEntropyCriterion": ("nn.CrossEntropyCriterion()",
                              lambda o, t: torch.nn.functional.cross_entropy(o, t)),
}


@pytest.mark.parametrize("name", CRITERIA)
def test_criterion_matches_torch_with_one_based_targets(runtime, name):
    code, loss_fn = CRITERIA[name]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4))
    targets = np.array([2, 0, 3, 3, 1])
    criterion = lua_module(runtime, code)
    lua = criterion.lua
    lx, lt = lua.tensor(x), lua.tensor(targets + 1.0)  # Torch7's classes are 1-based
    result = lua.method(criterion.obj, "forward", lx, lt)
    loss = result[0] if isinstance(result, tuple) else result
    xt = torch_of(x, True)
    expected = loss_fn(xt, torch.tensor(targets))
    expected.backward()
    assert loss == pytest.approx(float(expected.detach()), rel=1e-12)
    assert_close(lua.array(lua.method(criterion.obj, "backward", lx, lt)), xt.grad, f"{name} gradInput")


@pytest.mark.parametrize("size_average", [True, False])
def test_mse_criterion_averages_over_every_element(runtime, size_average):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    criterion = lua_module(runtime, f"nn.MSECriterion({'true' if size_average else 'false'})")
    lua = criterion.lua
    loss = lua.method(criterion.obj, "forward", lua.tensor(x), lua.tensor(y))
    xt = torch_of(x, True)
    expected = torch.nn.functional.mse_loss(xt, torch_of(y), reduction="mean" if size_average else "sum")
    expected.backward()
    assert loss == pytest.approx(float(expected.detach()), rel=1e-12)
    grad_input = lua.method(criterion.obj, "backward", lua.tensor(x), lua.tensor(y))
    assert_close(lua.array(grad_input), xt.grad, "MSE")


def test_lua_value_helper_reads_tables(runtime):
    model = lua_module(runtime, "nn.ConcatTable():add(nn.Identity()):add(nn.Identity())")
    out = model.forward(np.ones((2, 2)))
    assert isinstance(out, list) and len(out) == 2
    assert lua_value(model, None) is None


def test_clear_state_empties_own_buffers_and_leaves_shared_tensors(lua):
    # Identity's output is its input and a container's output its last child's: clearState
    # must drop those references, not empty the tensors they share.
    code = """
    local x = torch.Tensor(2, 3):fill(1)
    local id = nn.Identity()
    id:forward(x)
    id:clearState()
    local net = nn.Sequential():add(nn.Linear(3, 4)):add(nn.Tanh())
    local y = net:forward(x)
    local last = net.modules[2].output
    net:clearState()
    return {x:nElement(), id.output:nElement(), net.output:nElement(),
            last:nElement(), net.modules[1].output:nElement()}
    """
    assert lua(code) == [6, 0, 0, 0, 0]
