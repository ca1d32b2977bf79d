"""nn.CustomConv and nn.SpatialConvolutionMM: the Torch7 protocol, both constructors,
3-D and 4-D input, both kernels, and the original's gradient bug against the port's fix."""

import numpy as np
import pytest
from hypothesis import given, settings

import reference
from crossconv import oracles, strategies
from crossconv.compare import Tolerance, assert_close, assert_nontrivial
from lua_port import CustomConv, LuaError

FP64 = Tolerance(rtol=1e-10, atol=1e-10)
#: Central differences with step 1e-6 on float64: truncation ~1e-12, rounding ~1e-10.
FD = Tolerance(rtol=1e-6, atol=1e-6)


def _module(runtime, x, w, b, stride, padding, kernel):
    out_channels, channels, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    m = CustomConv(channels, out_channels, kw, kh, sw, sh, pw, ph, kernel=kernel, bias=b is not None,
                   runtime=runtime)
    m.weight = w
    if b is not None:
        m.bias = b
    return m


def _pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


@settings(max_examples=10)
@given(strategies.tanprod_conv2d_cases(dtypes=("float64",), max_dilation=1))
def test_three_d_input_is_one_sample_of_four_d_input(runtime, case):
    t, p = case.tensors, case.params
    x, w, b = t["input"], t["weight"], t["bias"]
    m = _module(runtime, x, w, b, _pair(p["stride"]), _pair(p["padding"]), "tanprod")
    batch_out = m.forward(x)
    expected = reference.tanprod_conv2d(x, w, b, stride=p["stride"], padding=p["padding"])
    assert_nontrivial(expected, case.describe())
    assert_close(batch_out, expected, FP64, case.describe())
    grad = np.random.default_rng(case.seed).standard_normal(batch_out.shape)
    batch_grad = m.backward(x, grad)
    for n in range(x.shape[0]):
        np.testing.assert_array_equal(m.forward(x[n]), batch_out[n])
        np.testing.assert_array_equal(m.backward(x[n], grad[n]), batch_grad[n])


@pytest.mark.parametrize("kernel", ["tanprod", "linear"])
def test_the_seeds_constructor_takes_one_2d_map(runtime, kernel):
    rng = np.random.default_rng(1)
    x, w = rng.uniform(-0.6, 0.6, (7, 6)), rng.uniform(-0.6, 0.6, (3, 3))
    m = CustomConv(3, kernel=kernel, runtime=runtime)
    assert m.weight.shape == (3, 3) and m.bias is None
    m.weight = w
    out = m.forward(x)
    seed = oracles.seed_customconv_2d(x, w, kernel="tan" if kernel == "tanprod" else "linear")
    assert out.shape == (5, 4)
    assert_close(out, seed, FP64, "CustomConv(3) vs the original's structure")
    np.testing.assert_array_equal(m.forward(x[None]), out[None])
    np.testing.assert_array_equal(m.forward(x[None, None]), out[None, None])


def test_backward_accumulates_scaled_parameter_gradients_and_overwrites_grad_input(runtime):
    rng = np.random.default_rng(2)
    x, w, b = rng.uniform(-0.6, 0.6, (2, 2, 5, 5)), rng.uniform(-0.6, 0.6, (3, 2, 3, 2)), rng.normal(size=3)
    m = _module(runtime, x, w, b, (1, 2), (1, 0), "tanprod")
    grad = rng.normal(size=m.forward(x).shape)
    m.zero_grad_parameters()
    first_input_grad = m.backward(x, grad)
    unit_w, unit_b = m.grad_weight, m.grad_bias
    expected = reference.tanprod_conv2d_vjp(grad, x, w, b, stride=(1, 2), padding=(1, 0))
    assert_close(unit_w, expected["weight"], FP64, "gradWeight")
    assert_close(unit_b, expected["bias"], FP64, "gradBias")
    assert_close(first_input_grad, expected["input"], FP64, "gradInput")

    second_input_grad = m.backward(x, grad, scale=0.5)  # adds 0.5 x the gradient
    np.testing.assert_array_equal(second_input_grad, first_input_grad)  # overwritten, not summed
    assert_close(m.grad_weight, 1.5 * unit_w, FP64, "accumulated gradWeight")
    assert_close(m.grad_bias, 1.5 * unit_b, FP64, "accumulated gradBias")

    m.zero_grad_parameters()
    assert not m.grad_weight.any() and not m.grad_bias.any()
    m.backward(x, grad, scale=-3)
    assert_close(m.grad_weight, -3 * unit_w, FP64, "gradWeight with scale -3")
    m.acc_grad_parameters(x, grad, 3)
    assert np.abs(m.grad_weight).max() < 1e-12 * np.abs(unit_w).max()
    params, grads = m.parameters()
    assert [p.shape for p in params] == [(3, 2, 3, 2), (3,)] and len(grads) == 2


@settings(max_examples=15)
@given(strategies.conv2d_cases(dtypes=("float64",), max_groups=1, max_dilation=1, string_padding=False))
def test_the_linear_kernel_equals_conv2d_with_bias(runtime, case):
    t, p = case.tensors, case.params
    x, w, b = t["input"], t["weight"], t["bias"]
    m = _module(runtime, x, w, b, _pair(p["stride"]), _pair(p["padding"]), "linear")
    expected = reference.conv2d(x, w, b, stride=p["stride"], padding=p["padding"])
    assert_close(m.forward(x), expected, FP64, case.describe())
    grad = np.random.default_rng(case.seed).standard_normal(expected.shape)
    grads = reference.conv2d_vjp(grad, x, w, b, stride=p["stride"], padding=p["padding"])
    assert_close(m.backward(x, grad), grads["input"], FP64, case.describe())
    assert_close(m.grad_weight, grads["weight"], FP64, case.describe())


def test_spatial_convolution_mm_keeps_torch7s_weight_layout(lua):
    rng = np.random.default_rng(3)
    x, w, b = rng.normal(size=(2, 3, 6, 5)), rng.normal(size=(4, 3, 2, 3)), rng.normal(size=4)
    out, weight_size = lua(f"""
        local mm = nn.SpatialConvolutionMM(3, 4, 3, 2, 1, 2, 1, 0)   -- kW=3, kH=2, dW=1, dH=2, padW=1
        mm.weight:copy(torch.Tensor({_lua_table(w.reshape(4, -1))}))  -- row o: (c*kH + i)*kW + j
        mm.bias:copy(torch.Tensor({_lua_table(b)}))
        return mm:forward(torch.Tensor({_lua_table(x)})), mm.weight:size()
    """)
    assert weight_size == (4, 3 * 2 * 3)
    assert_close(out, reference.conv2d(x, w, b, stride=(2, 1), padding=(0, 1)), FP64, "MM")


def test_lua_modules_reject_bad_inputs_with_torch7_messages(lua):
    cases = {
        "nn.CustomConv(3):forward(torch.Tensor(2, 2))": "Output size is too small",
        "nn.CustomConv(2, 3, 3, 3):forward(torch.Tensor(3, 5, 5))": "input has 3 planes",
        "nn.CustomConv(2, 3, 3, 3):forward(torch.Tensor(5, 5))": "3D or 4D (batch mode) tensor expected",
        "nn.CustomConv(2, 3, 0, 3)": "kW must be a positive integer",
        "nn.CustomConv(2, 3)": "nn.CustomConv(k [, kernel]) or",
        "nn.CustomConv(3, 'cubic')": "unknown kernel 'cubic'",
        "nn.SpatialConvolutionMM(1, 1, 2, 2, 1, 1, -1)": "padW must be an integer >= 0",
        "local m, x = nn.CustomConv(3), torch.rand(5, 5) m:forward(x) m:backward(x, torch.rand(2, 2))":
            "gradOutput must have the output's size 3x3",
    }
    for code, message in cases.items():
        with pytest.raises(LuaError) as error:
            lua(code)
        assert message in str(error.value), code
        assert error.value.line == 1, code


def test_python_custom_conv_checks_its_arguments(runtime):
    with pytest.raises(ValueError, match="kernel must be one of"):
        CustomConv(3, kernel="cubic", runtime=runtime)
    with pytest.raises(ValueError, match="k must be positive"):
        CustomConv(0, runtime=runtime)
    with pytest.raises(TypeError, match="expected CustomConv"):
        CustomConv(1, 2, runtime=runtime)
    m = CustomConv(2, 3, 3, 3, runtime=runtime)
    with pytest.raises(ValueError, match="input has 4 channels"):
        m.forward(np.zeros((4, 5, 5)))
    with pytest.raises(ValueError, match=r"input must be \[C, H, W\] or \[N, C, H, W\]"):
        m.forward(np.zeros((5, 5)))
    with pytest.raises(ValueError, match="output size would be"):
        m.forward(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="weight must have shape"):
        m.weight = np.zeros((3, 2, 2, 3))
    with pytest.raises(ValueError, match="grad_output must have shape"):
        m.backward(np.zeros((2, 5, 5)), np.zeros((3, 2, 2)))
    with pytest.raises(TypeError, match="scale must be a real number"):
        m.backward(np.zeros((2, 5, 5)), np.zeros((3, 3, 3)), scale="2")
    with pytest.raises(ValueError, match="no bias"):
        CustomConv(3, runtime=runtime).bias = np.zeros(1)


# ----------------------------------------------------------------------------- the original's gradient

# The original's backward re-expressed on the shim: for every tap, the tap's receptive-field
# view (ranges with negative ends) is cloned and the divisor built as ONE in-place chain
# on that clone; the gradient is gradOutput * output / divisor. Beside it the same formula
# without aliasing (allocating forms), and the port's nn.CustomConv:backward.
SEED_GRADIENTS = """
local x = torch.Tensor(%(x)s)
local w = torch.Tensor(%(w)s)
local gradOut = torch.Tensor(%(g)s)
local k = w:size(1)
local m = nn.CustomConv(k)
m.weight:copy(w)
local out = m:forward(x):clone()

local function gradients(divisorOf)
  local gradInput, gradWeight = torch.zeros(x:size()), torch.zeros(k, k)
  for i = 1, k do
    for j = 1, k do
      local taps = {{i, i - k - 1}, {j, j - k - 1}}
      local term = torch.cmul(gradOut, torch.cdiv(out, divisorOf(x[taps]:clone(), w[i][j])))
      gradInput[taps]:add(term)
      gradWeight[i][j] = gradWeight[i][j] + term:sum()
    end
  end
  return gradInput, gradWeight
end

local function seedDivisor(u, wij)       -- Torch7 in-place methods: u is changed by each call
  return u:add(wij):tan():cmul(u:add(wij):cos():pow(2))
end
local function intendedDivisor(u, wij)   -- tan(x + w) * cos^2(x + w), no aliasing
  return torch.cmul(torch.tan(torch.add(u, wij)), torch.pow(torch.cos(torch.add(u, wij)), 2))
end

local seedInput, seedWeight = gradients(seedDivisor)
local intendedInput, intendedWeight = gradients(intendedDivisor)
m:zeroGradParameters()
local portInput = m:backward(x, gradOut):clone()
return seedInput, seedWeight, intendedInput, intendedWeight, portInput, m.gradWeight,
       seedDivisor(x[{{1, -k}, {1, -k}}]:clone(), w[1][1])
"""


def _lua_table(a):
    return repr(np.asarray(a).tolist()).replace("[", "{").replace("]", "}")


def _finite_differences(x, w, g, step=1e-6):
    """d/dx and d/dw of sum(g * tanprod(x, w)) by central differences (the reference)."""

    def loss(x_, w_):
        return np.sum(g * reference.tanprod_conv2d(x_[None, None], w_[None, None])[0, 0])

    grads = []
    for arg in (x, w):
        grad = np.zeros_like(arg)
        for index in np.ndindex(arg.shape):
            plus, minus = arg.copy(), arg.copy()
            plus[index] += step
            minus[index] -= step
            args = (plus, w) if arg is x else (x, plus)
            args_minus = (minus, w) if arg is x else (x, minus)
            grad[index] = (loss(*args) - loss(*args_minus)) / (2 * step)
        grads.append(grad)
    return grads


def _seed_run(lua, x, w, g):
    return lua(SEED_GRADIENTS % {"x": _lua_table(x), "w": _lua_table(w), "g": _lua_table(g)})


def test_the_seeds_gradient_is_wrong_because_of_in_place_aliasing(lua):
    rng = np.random.default_rng(4)
    x, w = rng.uniform(-0.6, 0.6, (6, 5)), rng.uniform(-0.6, 0.6, (3, 3))
    g = rng.normal(size=(4, 3))
    seed_x, seed_w, intended_x, intended_w, port_x, port_w, divisor = _seed_run(lua, x, w, g)
    fd_x, fd_w = _finite_differences(x, w, g)

    # The chain computes cos^4(tan(x + w) + w), not tan(x + w) cos^2(x + w).
    u = x[:4, :3] + w[0, 0]
    np.testing.assert_allclose(divisor, np.cos(np.tan(u) + w[0, 0]) ** 4, rtol=1e-14)
    assert not np.allclose(divisor, np.tan(u) * np.cos(u) ** 2, rtol=1e-2)

    # So the original's gradient is far off, while the same formula without aliasing is right...
    for seed, fd in ((seed_x, fd_x), (seed_w, fd_w)):
        assert np.abs(seed - fd).max() > 0.1 * np.abs(fd).max()
    assert_close(intended_x, fd_x, FD, "the original's formula without aliasing, d/dinput")
    assert_close(intended_w, fd_w, FD, "the original's formula without aliasing, d/dweight")
    # ... and so is the port's.
    assert_close(port_x, fd_x, FD, "nn.CustomConv:backward, d/dinput")
    assert_close(port_w, fd_w, FD, "nn.CustomConv:backward, d/dweight")


def test_the_ports_gradient_is_exact_where_a_factor_is_zero_and_division_is_not(lua):
    rng = np.random.default_rng(5)
    x, w = rng.uniform(-0.6, 0.6, (5, 5)), rng.uniform(-0.6, 0.6, (3, 3))
    x[2, 3] = -w[1, 2]  # tan(x + w) == 0 in the window of output (1, 1)
    g = rng.normal(size=(3, 3))
    *_, intended_x, intended_w, port_x, port_w, _ = _seed_run(lua, x, w, g)
    fd_x, fd_w = _finite_differences(x, w, g)
    assert np.isnan(intended_x).any() and np.isnan(intended_w).any()  # 0 / 0
    assert_nontrivial(fd_x[2, 3], "the zero factor's gradient")
    assert_close(port_x, fd_x, FD, "nn.CustomConv:backward at a zero factor, d/dinput")
    assert_close(port_w, fd_w, FD, "nn.CustomConv:backward at a zero factor, d/dweight")


def test_a_kernel_of_your_own_plugs_in(lua):
    # out = sum over the window of (x - w)^2: an L2 "template distance" kernel.
    rng = np.random.default_rng(9)
    x, w = rng.normal(size=(1, 5, 6)), rng.normal(size=(2, 1, 2, 3))
    out, grad_input, grad_weight = lua(f"""
        nn.CustomConv.kernels.distance = {{
          reduce = 'sum',
          f = function(x, w) return (x - w) ^ 2 end,
          dfdx = function(x, w) return 2 * (x - w) end,
          dfdw = function(x, w) return -2 * (x - w) end,
        }}
        local m = nn.CustomConv(1, 2, 3, 2, 'distance'):noBias()
        m.weight:copy(torch.Tensor({_lua_table(w)}))
        local x = torch.Tensor({_lua_table(x)})
        local out = m:forward(x):clone()
        return out, m:backward(x, torch.ones(out:size())), m.gradWeight
    """)
    windows = np.lib.stride_tricks.sliding_window_view(x[0], (2, 3))  # [4, 4, 2, 3]
    expected = ((windows[None] - w[:, 0, None, None]) ** 2).sum(axis=(-2, -1))
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    diff = windows[None] - w[:, 0, None, None]  # [O, 4, 4, 2, 3]
    np.testing.assert_allclose(grad_weight[:, 0], (-2 * diff).sum(axis=(1, 2)), rtol=1e-12)
    expected_input = np.zeros((5, 6))
    for i in range(2):
        for j in range(3):
            expected_input[i:i + 4, j:j + 4] += (2 * diff[..., i, j]).sum(axis=0)
    np.testing.assert_allclose(grad_input[0], expected_input, rtol=1e-12)
