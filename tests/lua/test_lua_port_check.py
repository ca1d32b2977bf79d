"""The port checker (lua_port.port_check, crossconv port-check) and lua_port.to_torch: the
worked example's planted slip is found at its layer, a faithful port passes, and the
other ways a port can part (weights, structure, code between layers, backward) are
reported where they happen."""

import os
from pathlib import Path

import numpy as np
import pytest

import lua_port
from lua_port.runtimes import trusted
from lua_port.torch7 import Torch7Model

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from lua_port.port_check import port_check  # noqa: E402
from lua_port.to_torch import to_torch  # noqa: E402

#: The worked example of docs/porting.md ("Checking a PyTorch port").
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "port_check"


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    """lenet.t7, written by docs/examples/port_check/lenet.lua in a snippet, as the docs do."""
    folder = tmp_path_factory.mktemp("model")
    here = os.getcwd()
    os.chdir(folder)
    try:
        lua_port.run((EXAMPLE / "lenet.lua").read_text(), files={"lenet.t7": "w"})
    finally:
        os.chdir(here)
    return folder / "lenet.t7"


@pytest.fixture(scope="module")
def ports():
    path = EXAMPLE / "lenet_port.py"
    namespace = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return path, namespace


def test_the_planted_ceil_slip_is_found_at_its_layer(runtime, lenet, ports):
    _, namespace = ports
    report = port_check(lenet, namespace["Net"], input_shape=(1, 1, 32, 32), runtime=runtime)
    assert not report.ok and report.stage == "forward"
    assert report.pair.lua.path == "(3)" and report.pair.port_name == "pool1"
    assert report.difference.torch7_shape == (1, 6, 14, 14) and report.difference.port_shape == (1, 6, 13, 13)
    assert "rounds its output size up (:ceil())" in report.message
    text = str(report)
    assert "They part at the forward pass" in text and "(3) nn.SpatialMaxPooling(3x3, 2,2):ceil()" in text


def test_the_fixed_port_agrees_forward_and_backward(runtime, lenet, ports):
    _, namespace = ports
    report = port_check(lenet, namespace["FixedNet"], input_shape=(2, 1, 32, 32), runtime=runtime)
    assert report.ok, str(report)
    paired = [p for p in report.pairs if p.lua is not None and p.port_module is not None]
    assert len(paired) == 7 and all(p.forward_diff < 1e-12 and p.backward_diff < 1e-12 for p in paired)


class _TransposedLinear(nn.Module):
    """A hand-written linear layer storing its weight as [in, out]."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return x @ self.weight + self.bias


def _small_model(code):
    return Torch7Model(trusted("luajit").lua.execute("torch.manualSeed(1) return " + code), "luajit")


def test_a_transposed_weight_is_reported_when_copying_weights():
    model = _small_model("nn.Sequential():add(nn.Linear(5, 3)):add(nn.Tanh())")
    report = port_check(model, nn.Sequential(_TransposedLinear(5, 3), nn.Tanh()), input_shape=(2, 5))
    assert report.stage == "weights" and "transposed" in report.message
    assert "[3, 5]" in report.message and "[5, 3]" in report.message


def test_weights_converted_with_the_wrong_layout_are_found_at_their_layer():
    model = _small_model("nn.Sequential():add(nn.Linear(4, 6)):add(nn.ReLU()):add(nn.Linear(6, 2))")
    t7 = model.describe_t7()
    port = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).double()
    with torch.no_grad():  # a conversion script that reads Torch7's weight as [in, out]
        port[0].weight.copy_(torch.from_numpy(t7.modules[0].weight.T.copy().reshape(6, 4)))
        port[0].bias.copy_(torch.from_numpy(t7.modules[0].bias))
        port[2].weight.copy_(torch.from_numpy(t7.modules[2].weight))
        port[2].bias.copy_(torch.from_numpy(t7.modules[2].bias))
    report = port_check(model, port, input_shape=(3, 4), copy_weights=False)
    assert report.stage == "forward" and report.pair.lua.path == "(1)" and report.pair.port_name == "0"
    d = report.difference
    assert d.index is not None and d.torch7_value != d.port_value
    assert f"Torch7 {d.torch7_value!r}, port {d.port_value!r}" in str(report)


def test_code_between_layers_is_located_by_the_next_layers_input():
    model = _small_model("nn.Sequential():add(nn.Linear(4, 5)):add(nn.ReLU()):add(nn.Linear(5, 2))")

    class Port(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 5), nn.Linear(5, 2)

        def forward(self, x):
            return self.b(torch.tanh(self.a(x)))  # tanh where Torch7 has ReLU

    report = port_check(model, Port(), input_shape=(3, 4))
    assert report.stage == "forward" and report.pair.port_name == "b"
    assert report.difference.what == "input" and "between the previous paired layer" in report.message


def test_a_wrong_backward_is_found_in_the_backward_pass():
    model = _small_model("nn.Sequential():add(nn.Linear(4, 5)):add(nn.ReLU()):add(nn.Linear(5, 2))")

    class LeakyGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clamp(min=0)

        @staticmethod
        def backward(ctx, g):
            return g  # passes the gradient where the input was negative too

    class ReLU(nn.Module):
        def forward(self, x):
            return LeakyGradient.apply(x)

    port = nn.Sequential(nn.Linear(4, 5), ReLU(), nn.Linear(5, 2))
    report = port_check(model, port, input_shape=(6, 4))
    assert report.stage == "backward" and report.pair.lua.path == "(2)"


def test_a_missing_layer_with_parameters_is_a_structure_finding():
    model = _small_model("nn.Sequential():add(nn.Linear(4, 4)):add(nn.Linear(4, 2))")
    report = port_check(model, nn.Sequential(nn.Linear(4, 2)), input_shape=(1, 4))
    assert not report.ok and report.stage in ("structure", "weights")


TO_TORCH_MODEL = """nn.Sequential()
  :add(nn.SpatialZeroPadding(1, 1, 1, 1))
  :add(nn.Concat(2):add(nn.SpatialConvolution(2, 3, 3, 3))
                   :add(nn.SpatialConvolutionMM(2, 2, 3, 3, 1, 1, 0, 0)))
  :add(nn.SpatialBatchNormalization(5))
  :add(nn.Threshold(0.05, -1))
  :add(nn.SpatialAveragePooling(2, 2, 2, 2):ceil())
  :add(nn.View(-1):setNumInputDims(3))
  :add(nn.ConcatTable():add(nn.Linear(45, 45)):add(nn.Identity()))
  :add(nn.CAddTable())
  :add(nn.Dropout(0.3))
  :add(nn.Linear(45, 4))
  :add(nn.SoftMax())"""


def test_to_torch_builds_an_equivalent_module():
    model = _small_model(TO_TORCH_MODEL)
    lua = model.lua
    lua.lua.execute("local m = ... m:evaluate()", model.obj)
    bn = model.obj.modules[3]
    lua.assign(bn.running_mean, np.array([0.1, -0.2, 0.3, 0.0, 0.5]))
    lua.assign(bn.running_var, np.array([1.5, 0.5, 2.0, 1.0, 0.25]))
    converted = to_torch(model)
    assert not converted.training and isinstance(converted[2], nn.BatchNorm2d)
    x = np.random.default_rng(2).standard_normal((2, 2, 5, 5))
    out = converted(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(out, model.forward(x), rtol=1e-12, atol=1e-14)
    report = port_check(model, to_torch(model), x)
    assert report.ok, str(report)


def test_the_command_line_reports_and_exits_with_the_verdict(lenet, ports, capsys):
    from crossconv.cli import main

    port_file, _ = ports
    assert main(["port-check", str(lenet), f"{port_file}:Net", "--input", "1,1,32,32"]) == 1
    out = capsys.readouterr().out
    assert "They part at the forward pass" in out and "pool1" in out
    assert main(["port-check", str(lenet), f"{port_file}:FixedNet", "--input", "4,1,32,32"]) == 0
    assert "agree on every paired layer" in capsys.readouterr().out
    assert main(["port-check", str(lenet), f"{port_file}:Net", "--input", "1,x"]) == 2
    assert main(["port-check", str(lenet), f"{port_file}:Nope", "--input", "1,1,32,32"]) == 2
    assert "has no Nope" in capsys.readouterr().out



@pytest.mark.parametrize("code, shape", [
    ("nn.CustomConv(2, 3, 3, 2, 1, 1, 1, 0)", (2, 2, 5, 6)),
    ("nn.CustomConv(2, 3, 3, 3, 1, 1, 0, 0, 'linear')", (1, 2, 5, 5)),
    ("nn.CustomConv(3)", (6, 5)),
])
def test_to_torch_turns_custom_conv_into_torch_impls_module(code, shape):
    model = _small_model(code)
    x = np.random.default_rng(4).uniform(-0.5, 0.5, shape)
    converted = to_torch(model)
    out = converted(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(out, model.forward(x), rtol=1e-12, atol=1e-14)
