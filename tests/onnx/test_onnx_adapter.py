"""The harness side of ONNX: the NumPy-in, NumPy-out adapter that runs onnx_impl (and a
user's own graph builder), and columns that are n/a, not a crash, without onnxruntime."""

import importlib.util

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from crossconv import frameworks, measure  # noqa: E402
from crossconv.cases import Case  # noqa: E402
from crossconv.registry import BACKENDS, OPS, implementations  # noqa: E402


def _raw_max_pool(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                  return_indices=False):
    """A graph builder as a user might write one: ONNX's MaxPool, as exporters emit it."""
    from onnx import TensorProto, helper

    element = TensorProto.FLOAT if input.dtype == np.float32 else TensorProto.DOUBLE
    node = helper.make_node("MaxPool", ["X"], ["Y", "I"], kernel_shape=[kernel_size] * 2,
                            strides=[stride or kernel_size] * 2, pads=[padding] * 4,
                            dilations=[dilation] * 2, ceil_mode=int(ceil_mode))
    graph = helper.make_graph([node], "pool", [helper.make_tensor_value_info("X", element, None)],
                              [helper.make_tensor_value_info("Y", element, None),
                               helper.make_tensor_value_info("I", TensorProto.INT64, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out, indices = session.run(None, {"X": input})
    plane = input.shape[2] * input.shape[3]
    return (out, indices % plane) if return_indices else out


def _pool_case(values):
    return Case("max_pool2d", {"input": np.asarray(values, np.float32)},
                {"kernel_size": 2, "return_indices": True})


def test_the_adapter_measures_a_users_onnx_graph_and_finds_the_nan_rule():
    adapter = frameworks.adapter("onnx")
    finite = _pool_case(np.arange(32.0).reshape(2, 1, 4, 4)[:, :, ::-1])
    assert all(c.passed for c in measure.measure_forward(adapter, _raw_max_pool, finite))
    with_nan = _pool_case([[[[1.0, np.nan], [3.0, 2.0]]]])
    with np.errstate(all="ignore"):
        comparisons = measure.measure_forward(adapter, _raw_max_pool, with_nan)
    assert not comparisons[0].passed  # MaxPool lets no NaN win: 3 where the contract has NaN


def test_the_adapter_runs_onnx_impl_and_has_no_gradients():
    import onnx_impl

    adapter = frameworks.adapter("onnx")
    case = OPS["avg_pool2d"].boundary()[0].case
    (out,) = adapter.forward(onnx_impl.avg_pool2d, case, {"runtime": "reference"})
    assert out.dtype == np.float64 and out.shape[:2] == case.tensors["input"].shape[:2]
    with pytest.raises(NotImplementedError, match="forward only"):
        adapter.vjp(onnx_impl.avg_pool2d, case, out, ["input"], {})


def test_the_adapter_on_cuda_needs_the_cuda_execution_provider():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA execution provider")
    with pytest.raises(LookupError, match="onnxruntime cannot use device 'cuda'"):
        frameworks.adapter("onnx", "cuda")


def test_without_onnxruntime_the_onnxruntime_column_is_na(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    for impl in implementations(backend="onnxruntime"):
        assert frameworks.implementation_status(impl) == "onnxruntime is not installed"
    # The ONNX reference evaluator needs only onnx.
    assert frameworks.backend_status(BACKENDS["onnx-reference"]) is None
