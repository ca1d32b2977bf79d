"""onnx_impl's graphs: valid models, a dynamic batch, no large buffers, exact edges, errors.

(Parity with the reference on random and boundary cases is tests/test_parity.py's, from
the registry's onnxruntime and onnx-reference rows.)
"""

import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx_impl  # noqa: E402
import reference  # noqa: E402
from crossconv.crosscheck import cast  # noqa: E402
from crossconv.registry import OPS  # noqa: E402
from onnx_impl import runtime  # noqa: E402

DTYPES = ("float32", "float64")


def _first_boundary(op):
    return OPS[op].boundary()[0].case


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_model_passes_the_full_checker_with_a_dynamic_batch(op, dtype):
    case = cast(_first_boundary(op), dtype)
    model = case.call(lambda **call: onnx_impl.model(op, **call))
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 22)]
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if value.name not in ("weight", "bias"):
            assert dims[0].dim_param == "N", value.name
        assert all(d.HasField("dim_value") for d in dims[1:]), value.name


def test_model_returns_a_copy_and_rejects_unknown_ops():
    x = np.ones((1, 1, 4, 4), np.float32)
    first = onnx_impl.model("max_pool2d", input=x, kernel_size=2)
    first.graph.ClearField("node")
    assert len(onnx_impl.model("max_pool2d", input=x, kernel_size=2).graph.node) > 0
    with pytest.raises(ValueError, match="unknown op 'conv3d'"):
        onnx_impl.model("conv3d", input=x)


def test_one_session_serves_every_batch_size_and_an_empty_batch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 6, 7))
    w = rng.standard_normal((4, 2, 3, 3))
    onnx_impl.conv2d(x[:1], w, padding=1)  # warm: the session for this signature
    before = runtime._session.cache_info()
    for n in (3, 2, 0):
        out = onnx_impl.conv2d(x[:n], w, padding=1)
        assert out.shape == (n, 4, 6, 7) and out.dtype == np.float64
        np.testing.assert_allclose(out, reference.conv2d(x[:n], w, padding=1), rtol=1e-10,
                                   atol=1e-10)
    after = runtime._session.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (3, 0)


def _largest_intermediate(model, feeds):
    """Elements of the largest value any node computes, per sample (batch 2): the model
    run by onnxruntime with every node output made a graph output."""
    import onnxruntime

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type for v in [*inferred.graph.value_info, *inferred.graph.output]}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    for node in model.graph.node:
        for name in node.output:
            probe.graph.output.append(onnx.helper.make_value_info(name, types[name]))
    session = onnxruntime.InferenceSession(probe.SerializeToString())
    return max(np.asarray(v).size for v in session.run(None, feeds)) / 2


CALLS = {  # C = O = 8 (conv2_5d: B = 3 bins), 3x3 kernels, 16x16 maps, batch 2
    "conv2d": lambda r: dict(input=r((2, 8, 16, 16)), weight=r((8, 8, 3, 3)), padding=1),
    "tanprod_conv2d": lambda r: dict(input=r((2, 8, 16, 16)), weight=r((8, 8, 3, 3)), padding=1),
    "conv2_5d": lambda r: dict(input=r((2, 8, 16, 16)), depth=r((2, 1, 16, 16)) + 3,
                               weight=r((3, 8, 8, 3, 3)), padding=1),
    "deform_conv2d": lambda r: dict(input=r((2, 8, 16, 16)), offset=r((2, 18, 16, 16)),
                                    weight=r((8, 8, 3, 3)), padding=1, mask=r((2, 9, 16, 16))),
    "max_pool2d": lambda r: dict(input=r((2, 8, 16, 16)), kernel_size=3, stride=1, padding=1,
                                 return_indices=True),
    "avg_pool2d": lambda r: dict(input=r((2, 8, 16, 16)), kernel_size=3, stride=1, padding=1),
    "depthaware_conv2d": lambda r: dict(input=r((2, 8, 16, 16)), depth=r((2, 1, 16, 16)),
                                        weight=r((8, 8, 3, 3)), padding=1),
    "depthaware_avg_pool2d": lambda r: dict(input=r((2, 8, 16, 16)), depth=r((2, 1, 16, 16)),
                                            kernel_size=3, stride=1, padding=1),
}
#: The largest intermediate as a multiple of one sample's largest input or output
#: (conv2_5d: one product per bin; the rest: a padded copy). What happens inside a node
#: (Conv's, DeformConv's buffers; the xcorr branches of an If) is not seen here.
BOUNDS = {"conv2_5d": 3.5}


@pytest.mark.parametrize("op", list(CALLS))
def test_no_graph_materialises_a_large_multiple_of_its_input(op):
    rng = np.random.default_rng(1)
    call = CALLS[op](lambda shape: rng.standard_normal(shape))
    if op == "conv2d":
        call = {k: np.asarray(v, np.float64) for k, v in call.items() if k != "padding"} | {
            "padding": 1}  # float64: the composite graph (float32 is one Conv node)
    model = onnx_impl.model(op, **call)
    feeds = {i.name: call[i.name] for i in model.graph.input}
    output = getattr(onnx_impl, op)(**call)
    output = output[0] if isinstance(output, tuple) else output
    per_sample = max(*(v[0].size for v in feeds.values() if v.shape[0] == 2), output[0].size)
    assert _largest_intermediate(model, feeds) <= BOUNDS.get(op, 1.5) * per_sample


def test_deform_reads_nothing_off_the_image():
    """NaN/inf at input[..., 0, 0] and on the border; samples off the image, on rows and
    columns -1 and H/W, at integer points, and a NaN point: NaN pattern and values are the
    reference's (onnxruntime's DeformConv alone reads element (0, 0) for off-image corners
    and gives a finite output for a NaN point)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 4, 5))
    x[:, 0, 0, 0], x[0, 1, 0, 3], x[1, 1, 3, 0] = np.nan, np.inf, -np.inf
    oh, ow = 3, 4  # 2x2 kernel, no padding
    rows = np.resize([-1.0, -0.5, 0.0, 3.0, 4.0, 2.5, -7.0, 1.0], (2, 4, oh, ow))
    cols = np.resize([5.0, 4.0, -1.0, 0.25, 2.0, 9.0, 0.0, -0.5, 3.0], (2, 4, oh, ow))
    offset = np.zeros((2, 8, oh, ow))
    for k in range(4):
        i, j = divmod(k, 2)
        offset[:, 2 * k] = rows[:, k] - (np.arange(oh)[:, None] + i)
        offset[:, 2 * k + 1] = cols[:, k] - (np.arange(ow)[None, :] + j)
    offset[1, 5, 2, 2] = np.nan
    w = rng.standard_normal((3, 2, 2, 2))
    for dtype in DTYPES:
        args = [a.astype(dtype) for a in (x, offset, w)]
        out = onnx_impl.deform_conv2d(*args)
        expected = reference.deform_conv2d(*args)
        assert np.isnan(expected).any() and np.isfinite(expected).any()
        assert np.array_equal(np.isnan(out), np.isnan(expected))
        finite = np.isfinite(expected)
        np.testing.assert_allclose(out[finite], expected[finite], rtol=1e-5, atol=1e-5)


def test_bad_arguments_are_clear_errors_before_any_work():
    x = np.ones((1, 2, 4, 4), np.float32)
    with pytest.raises(TypeError, match="conv2d: input must be a float32 or float64"):
        onnx_impl.conv2d(x.astype(np.int64), np.ones((1, 2, 1, 1), np.int64))
    with pytest.raises(TypeError, match="share one dtype.*weight float64"):
        onnx_impl.conv2d(x, np.ones((1, 2, 1, 1)))
    with pytest.raises(ValueError, match="stride must be positive"):
        onnx_impl.tanprod_conv2d(x, np.ones((1, 2, 1, 1), np.float32), stride=0)
    with pytest.raises(ValueError, match="runtime must be one of 'onnxruntime', 'reference'"):
        onnx_impl.avg_pool2d(x, 2, runtime="tensorrt")
    with pytest.raises(TypeError, match="xcorr2d: search must be a numpy.ndarray of float32 or "
                                        "float64, got object"):
        onnx_impl.xcorr2d(object(), x)
    with pytest.raises(TypeError, match="conv2d: weight must be a numpy.ndarray .* got list"):
        onnx_impl.conv2d(x, [[[[1.0]], [[1.0]]]])  # nothing is converted


def test_backend_modules_do_not_import_torch_or_the_harness():
    import subprocess

    code = ("import sys, numpy as np, onnx_impl; onnx_impl.conv2d(np.ones((1, 1, 3, 3)), "
            "np.ones((1, 1, 2, 2))); print(' '.join(sorted(sys.modules)))")
    modules = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout.split())
    assert not modules & {"torch", "torch_impl", "jax", "crossconv", "onnxscript"}
