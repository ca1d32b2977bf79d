"""onnx_impl's depthaware_conv2d and depthaware_avg_pool2d against the reference: every
boundary case, float32 and float64; valid models with one session for every batch size;
the same graphs in onnx.reference; the export of torch_impl's ops. (Drawn cases and the
goldens in onnxruntime and onnx.reference: the generated tests, tests/test_parity.py
and tests/tool.)"""

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx_impl  # noqa: E402
import reference  # noqa: E402
from crossconv.cases import depthaware as cases  # noqa: E402
from crossconv.compare import Tolerance, assert_close  # noqa: E402
from crossconv.crosscheck import cast  # noqa: E402
from onnx_impl import runtime  # noqa: E402

DTYPES = ("float32", "float64")
OPS = ("depthaware_conv2d", "depthaware_avg_pool2d")
#: Sums of at most C*kh*kw = 18 products (the boundary cases' sizes).
TOLERANCE = {"float32": Tolerance(1e-5, 1e-5), "float64": Tolerance(1e-10, 1e-10)}
BOUNDARY = cases.depthaware_conv2d_boundary() + cases.depthaware_avg_pool2d_boundary()
GOLDENS = cases.depthaware_conv2d_goldens() + cases.depthaware_avg_pool2d_goldens()


def _check(case, runtime="onnxruntime", expected=None):
    """onnx_impl's output on ``case`` has the input dtype and matches the reference (NaN
    where it is NaN, the same infinities)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # non-finite cases warn by design
        actual = case.call(getattr(onnx_impl, case.op), runtime=runtime)
        if expected is None:
            expected = case.call(getattr(reference, case.op))
    assert actual.dtype == case.dtype, case.describe()
    assert_close(actual, expected, TOLERANCE[case.dtype.name], f"{runtime} {case.describe()}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("boundary", BOUNDARY, ids=lambda b: b.name)
def test_boundary_cases(boundary, dtype):
    _check(cast(boundary.case, dtype))


def _calls(rng, n=2):
    """A few calls of each op (even kernels, centres outside, alpha 0, both divisors)."""
    x, depth = rng.standard_normal((n, 3, 6, 5)), rng.uniform(0.5, 4.0, (n, 1, 6, 5))
    w, b = rng.standard_normal((2, 3, 3, 2)), rng.standard_normal(2)
    return [
        ("depthaware_conv2d", dict(input=x, depth=depth, weight=w, bias=b, stride=(1, 2),
                                   padding=2, dilation=(2, 1), alpha=0.5)),
        ("depthaware_conv2d", dict(input=x, depth=depth, weight=w, padding=1, alpha=0.0)),
        ("depthaware_avg_pool2d", dict(input=x, depth=depth, kernel_size=3, stride=1,
                                       padding=1, alpha=2.0)),
        ("depthaware_avg_pool2d", dict(input=x, depth=depth, kernel_size=(2, 3), padding=1,
                                       count_include_pad=False)),
        ("depthaware_avg_pool2d", dict(input=x, depth=depth, kernel_size=2, alpha=0.0)),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_model_passes_the_full_checker_with_a_dynamic_batch(dtype):
    for op, call in _calls(np.random.default_rng(0)):
        call = {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in call.items()}
        model = onnx_impl.model(op, **call)
        onnx.checker.check_model(model, full_check=True)
        for value in list(model.graph.input) + list(model.graph.output):
            dims = value.type.tensor_type.shape.dim
            if value.name not in ("weight", "bias"):
                assert dims[0].dim_param == "N", (op, value.name)
            assert all(d.HasField("dim_value") for d in dims[1:]), (op, value.name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_session_serves_every_batch_size_and_an_empty_batch(dtype):
    for op, call in _calls(np.random.default_rng(1), n=3):
        call = {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in call.items()}
        batched = ("input", "depth")
        getattr(onnx_impl, op)(**{k: v[:1] if k in batched else v for k, v in call.items()})
        before = runtime._session.cache_info()
        for n in (3, 2, 0):
            part = {k: v[:n] if k in batched else v for k, v in call.items()}
            out = getattr(onnx_impl, op)(**part)
            expected = getattr(reference, op)(**part)
            assert out.shape == expected.shape and out.shape[0] == n and out.dtype == dtype
            assert_close(out, expected, TOLERANCE[dtype], f"{op} at batch {n}")
        after = runtime._session.cache_info()
        assert (after.hits - before.hits, after.misses - before.misses) == (3, 0), op


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_single_row_or_column(dtype):
    """H = 1 (and W = 1): every centre row is the one image row or lies outside it."""
    rng = np.random.default_rng(2)
    for size in ((1, 5), (4, 1)):
        x = rng.standard_normal((2, 2, *size)).astype(dtype)
        depth = rng.uniform(0.5, 4.0, (2, 1, *size)).astype(dtype)
        w = rng.standard_normal((3, 2, 2, 3)).astype(dtype)
        conv = dict(input=x, depth=depth, weight=w, padding=(1, 2))
        pool = dict(input=x, depth=depth, kernel_size=2, stride=1, padding=1)
        for op, call in (("depthaware_conv2d", conv), ("depthaware_avg_pool2d", pool)):
            out = getattr(onnx_impl, op)(**call)
            assert_close(out, getattr(reference, op)(**call), TOLERANCE[dtype], f"{op} {size}")


@pytest.mark.parametrize("alpha", [1e300, 1e-300])
def test_float32_takes_any_finite_alpha(alpha):
    """alpha beyond float32's range: F is 1 at ties (not 0 * inf = NaN) and 0 elsewhere;
    a tiny alpha keeps F at 1 (F is computed in float64)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 2, 5, 6)).astype(np.float32)
    depth = (rng.integers(0, 4, (2, 1, 5, 6)) * 0.5).astype(np.float32)  # many ties
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    for op, call in (("depthaware_conv2d", dict(weight=w, padding=2)),
                     ("depthaware_avg_pool2d", dict(kernel_size=3, stride=1, padding=1))):
        call = dict(input=x, depth=depth, alpha=alpha, **call)
        out = getattr(onnx_impl, op)(**call)
        assert_close(out, getattr(reference, op)(**call), TOLERANCE["float32"], op)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_onnx_reference_evaluator_runs_the_same_graphs(dtype):
    """Every boundary and golden case in onnx.reference too (none hits its limits listed
    in docs/onnx.md: its dilated Conv, which only alpha = 0 in float32 uses, reads the NaN
    or inf *input* cells it skips, and no case here has one)."""
    for boundary in BOUNDARY:
        _check(cast(boundary.case, dtype), runtime="reference")
    for golden in GOLDENS:
        _check(cast(golden.case, dtype), runtime="reference", expected=golden.expected)


def test_bad_arguments_are_clear_errors_before_any_work():
    x, depth = np.ones((1, 2, 4, 4), np.float32), np.ones((1, 1, 4, 4), np.float32)
    w = np.ones((1, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="alpha must be finite and >= 0"):
        onnx_impl.depthaware_conv2d(x, depth, w, alpha=-1.0)
    with pytest.raises(TypeError, match="share one dtype.*depth float64"):
        onnx_impl.depthaware_avg_pool2d(x, depth.astype(np.float64), 2)
    with pytest.raises(ValueError, match="depth"):
        onnx_impl.depthaware_avg_pool2d(x, depth[:, :, :3], 2)
    with pytest.raises(ValueError, match="padding"):
        onnx_impl.depthaware_avg_pool2d(x, depth, 2, padding=2)
    with pytest.raises(ValueError, match="unknown op"):
        onnx_impl.model("depthaware_max_pool2d", input=x, depth=depth)


def test_export_of_torch_impl_ops():
    """torch_impl's depth-aware ops exported at batch 2 run at batch 3 as these graphs."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    import onnxruntime

    import torch_impl

    if not (hasattr(torch_impl, "depthaware_conv2d")
            and hasattr(torch_impl, "depthaware_avg_pool2d")):
        pytest.skip("torch_impl has no depthaware_conv2d / depthaware_avg_pool2d yet: the "
                    "export translations wait for them")

    rng = np.random.default_rng(3)

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.from_numpy(rng.standard_normal((3, 2, 2, 3))))
            self.bias = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(3)))

        def forward(self, x, depth):
            y = torch_impl.depthaware_conv2d(x, depth, self.weight, self.bias, stride=(1, 2),
                                             padding=(2, 1), dilation=(2, 1), alpha=0.7)
            return y, torch_impl.depthaware_avg_pool2d(x, depth, 3, stride=1, padding=1,
                                                       alpha=1.3, count_include_pad=False)

    def inputs(n):
        return (torch.from_numpy(rng.standard_normal((n, 2, 7, 6))),
                torch.from_numpy(rng.uniform(0.5, 4.0, (n, 1, 7, 6))))

    block = Block()
    program = onnx_impl.export(block, inputs(2))
    ops = {node.op_type for node in program.model_proto.graph.node}
    assert {"Gather", "Exp", "MatMul"} <= ops
    session = onnxruntime.InferenceSession(program.model_proto.SerializeToString())
    x, depth = inputs(3)
    conv, pool = session.run(None, {i.name: v.numpy() for i, v in
                                    zip(session.get_inputs(), (x, depth))})
    w, b = block.weight.detach().numpy(), block.bias.detach().numpy()
    expected_conv = reference.depthaware_conv2d(x.numpy(), depth.numpy(), w, b, stride=(1, 2),
                                                padding=(2, 1), dilation=(2, 1), alpha=0.7)
    expected_pool = reference.depthaware_avg_pool2d(x.numpy(), depth.numpy(), 3, stride=1,
                                                    padding=1, alpha=1.3,
                                                    count_include_pad=False)
    assert_close(conv, expected_conv, TOLERANCE["float64"], "exported depthaware_conv2d")
    assert_close(pool, expected_pool, TOLERANCE["float64"], "exported depthaware_avg_pool2d")
