"""``crossconv verify --framework onnx``: a function that builds and runs an ONNX graph
(NumPy arrays in and out, as onnx_impl's ops) is held to the reference, forward only."""

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper

import reference
from crossconv.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _pair(value):
    return [value, value] if isinstance(value, int) else list(value)


def max_pool2d_as_onnx_maxpool(input, kernel_size, stride=None, padding=0, dilation=1,
                               ceil_mode=False, return_indices=False):
    """A user's graph: one ai.onnx MaxPool run by onnxruntime, its flat indices turned into
    per-plane ones. The mistake is MaxPool's: onnxruntime lets no NaN win a window."""
    kernel = _pair(kernel_size)
    stride = kernel if stride is None else _pair(stride)
    pad = _pair(padding)
    element = TensorProto.FLOAT if input.dtype == np.float32 else TensorProto.DOUBLE
    node = helper.make_node("MaxPool", ["X"], ["Y", "I"], kernel_shape=kernel, strides=stride,
                            pads=pad + pad, dilations=_pair(dilation), ceil_mode=int(ceil_mode))
    graph = helper.make_graph(
        [node], "user_max_pool",
        [helper.make_tensor_value_info("X", element, None)],
        [helper.make_tensor_value_info("Y", element, None),
         helper.make_tensor_value_info("I", TensorProto.INT64, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)],
                             ir_version=10)
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    values, flat = session.run(None, {"X": np.ascontiguousarray(input)})
    plane = input.shape[2] * input.shape[3]
    return (values, flat % plane) if return_indices else values


def verify(capsys, *args):
    code = main(["verify", *args])
    return code, capsys.readouterr().out


def test_onnx_impl_passes_as_a_user_graph_builder(capsys):
    code, out = verify(capsys, "onnx_impl:avg_pool2d", "--op", "avg_pool2d",
                       "--framework", "onnx", "--examples", "10")
    assert code == 0, out
    assert out.startswith("PASS onnx_impl:avg_pool2d matches reference.avg_pool2d (forward, onnx)")


def test_a_graph_where_nan_never_wins_is_caught(capsys):
    code, out = verify(capsys, f"{__name__}:max_pool2d_as_onnx_maxpool", "--op", "max_pool2d",
                       "--framework", "onnx", "--examples", "5")
    assert code == 1, out
    assert "vs expected nan" in out.splitlines()[0], out
    assert "np.array(array, dtype=DTYPE)" in out  # the snippet makes NumPy arrays


def test_gradients_and_devices_are_refused(capsys):
    code, out = verify(capsys, "onnx_impl:conv2d", "--op", "conv2d", "--framework", "onnx",
                       "--grad")
    assert code == 2 and "onnx functions are checked forward only" in capsys.readouterr().err + out
    code, out = verify(capsys, "onnx_impl:conv2d", "--op", "conv2d", "--framework", "onnx",
                       "--device", "cuda")
    assert code == 2 and "--device applies to torch and jax only" in capsys.readouterr().err + out


def test_the_user_graph_is_right_on_finite_input():
    # so the failure above is MaxPool's NaN rule, not a slip of the builder
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6)).astype(np.float32)
    values, indices = max_pool2d_as_onnx_maxpool(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    expected = reference.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(values, expected[0])
    np.testing.assert_array_equal(indices, expected[1])
