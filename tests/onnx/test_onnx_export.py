"""onnx_impl.export: torch_impl ops and modules exported at batch 2 run in onnxruntime at
batch 3 and match torch_impl; the batch stays dynamic or the export says why not."""

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnx_impl  # noqa: E402
import torch_impl  # noqa: E402

EXPORT_BATCH, RUN_BATCH = 2, 3


class Call(torch.nn.Module):
    """``fn(*inputs, **weights, **static)``: the batched tensors are the model's inputs,
    the others its parameters."""

    def __init__(self, fn, weights, **static):
        super().__init__()
        self.fn, self.static = fn, static
        self.weights = torch.nn.ParameterDict(
            {k: torch.nn.Parameter(v) for k, v in weights.items()})

    def forward(self, *inputs):
        return self.fn(*inputs, **dict(self.weights), **self.static)


def _random(*shape, low=-1.0, high=1.0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(sum(shape) * 7 + len(shape))
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * (high - low)
            + low).to(dtype)


def _inputs(shapes, batch, dtype=torch.float32):
    return tuple(_random(batch, *shape, dtype=dtype) for shape in shapes)


def _check(model, shapes, dtype=torch.float32, tolerance=1e-4, **export_options):
    """Export at EXPORT_BATCH, run at RUN_BATCH in onnxruntime, compare with torch_impl."""
    model = model.eval()
    program = onnx_impl.export(model, _inputs(shapes, EXPORT_BATCH, dtype), **export_options)
    session = onnxruntime.InferenceSession(program.model_proto.SerializeToString())
    inputs = _inputs(shapes, RUN_BATCH, dtype)
    feeds = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)}
    actual = session.run(None, feeds)
    with torch.no_grad():
        expected = model(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        e = e.numpy()
        assert a.shape == e.shape and a.shape[0] == RUN_BATCH and a.dtype == e.dtype
        if e.dtype.kind == "f":
            np.testing.assert_allclose(a, e, rtol=tolerance, atol=tolerance)
        else:
            np.testing.assert_array_equal(a, e)
    return program


OPS = {
    "conv2d": (torch_impl.conv2d, [(4, 7, 6)],
               {"weight": _random(6, 2, 3, 3), "bias": _random(6)},
               {"padding": "same", "groups": 2}),
    "xcorr2d": (torch_impl.xcorr2d, [(3, 9, 8), (3, 4, 3)], {}, {}),
    "xcorr2d_depthwise": (torch_impl.xcorr2d_depthwise, [(3, 9, 8), (3, 4, 3)], {}, {}),
    "tanprod_conv2d": (torch_impl.tanprod_conv2d, [(2, 6, 5)],
                       {"weight": _random(3, 2, 2, 2, low=-0.3, high=0.3), "bias": _random(3)},
                       {"stride": 1, "padding": 1}),
    "conv2_5d": (torch_impl.conv2_5d, [(2, 6, 7), (1, 6, 7)],
                 {"weight": _random(3, 4, 2, 3, 3), "bias": _random(4)},
                 {"padding": 1, "focal": 0.5, "pixel_size": 1.0}),
    "deform_conv2d": (torch_impl.deform_conv2d, [(4, 6, 5), (36, 6, 5), (18, 6, 5)],
                      {"weight": _random(6, 2, 3, 3), "bias": _random(6)},
                      {"padding": 1}),
    "max_pool2d": (torch_impl.max_pool2d, [(3, 7, 6)], {},
                   {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
                    "return_indices": True}),
    "avg_pool2d": (torch_impl.avg_pool2d, [(3, 7, 6)], {},
                   {"kernel_size": 2, "ceil_mode": True, "count_include_pad": False,
                    "divisor_override": 3}),
}


def _deform_mask_last(fn):
    """deform_conv2d(input, offset, mask=...) with the mask as the third input."""
    def call(input, offset, mask, **kwargs):
        return fn(input, offset, mask=mask, **kwargs)

    return call


# The ops torch_impl runs as custom ops on the CPU (the others call torch's own ops).
CUSTOM_OPS = {"tanprod_conv2d", "conv2_5d", "deform_conv2d"}


@pytest.mark.parametrize("op", list(OPS))
def test_each_torch_impl_op_exports_with_a_dynamic_batch(op):
    fn, shapes, weights, static = OPS[op]
    if op == "deform_conv2d":
        fn = _deform_mask_last(fn)
    program = _check(Call(fn, weights, **static), shapes)
    # The public function's autograd.Function leaves the custom op itself in the traced
    # graph (not a decomposition), and the table translates every node into ai.onnx.
    targets = {node.target for node in program.exported_program.graph.nodes}
    if op in CUSTOM_OPS:
        assert getattr(torch.ops.crossconv, op).default in targets
    assert {node.domain for node in program.model_proto.graph.node} <= {""}


def test_deform_conv2d_exports_in_float64_and_keeps_nan_offsets_nan():
    fn, shapes, weights, static = OPS["deform_conv2d"]
    weights = {k: v.double() for k, v in weights.items()}
    model = Call(_deform_mask_last(fn), weights, **static).eval()
    program = onnx_impl.export(model, _inputs(shapes, EXPORT_BATCH, torch.float64))
    session = onnxruntime.InferenceSession(program.model_proto.SerializeToString())
    x, offset, mask = _inputs(shapes, RUN_BATCH, torch.float64)
    offset[1, 4, 2, 3] = float("nan")
    feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), (x, offset, mask))}
    (actual,) = session.run(None, feeds)
    with torch.no_grad():
        expected = model(x, offset, mask).numpy()
    assert actual.dtype == np.float64 and np.isnan(expected).any()
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-10)  # NaN where NaN


def _run(program, *inputs):
    session = onnxruntime.InferenceSession(program.model_proto.SerializeToString())
    return session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)})


@pytest.mark.parametrize("op", ["xcorr2d", "xcorr2d_depthwise"])
def test_per_sample_correlations_export_with_nan_where_the_definition_puts_it(op):
    """torch_impl folds the batch into conv2d's groups; ONNX's Conv takes its group count
    as a constant, so the export uses onnx_impl's correlation graph (an If between the FFT
    and, for non-finite inputs, a Loop over the taps): both branches run here."""
    fn = getattr(torch_impl, op)
    shapes = OPS[op][1]
    program = onnx_impl.export(Call(fn, {}).eval(), _inputs(shapes, EXPORT_BATCH, torch.float64))
    onnx.checker.check_model(program.model_proto, full_check=True)
    search, template = _inputs(shapes, RUN_BATCH, torch.float64)
    (finite,) = _run(program, search, template)
    np.testing.assert_allclose(finite, fn(search, template).numpy(), rtol=1e-10, atol=1e-10)
    search[1, 0, 4, 5] = float("nan")
    (actual,) = _run(program, search, template)
    expected = fn(search, template).numpy()
    assert np.isnan(expected).any() and not np.isnan(expected[0]).any()
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-10)  # NaN where NaN


class PerSampleFilters(torch.nn.Module):
    """Two filters per sample, with padding and a bias: a group count read from the batch
    size that is not one of torch_impl's correlations."""

    def forward(self, x, filters):
        n, c, h, w = x.shape
        bias = torch.arange(2, dtype=x.dtype).repeat(n)
        out = torch.nn.functional.conv2d(x.reshape(1, n * c, h, w), filters.flatten(0, 1),
                                         bias, padding=1, groups=n)
        return out.reshape(n, 2, h, w)


def test_a_group_count_read_from_the_batch_exports_as_per_sample_correlations():
    _check(PerSampleFilters(), [(3, 5, 6), (2, 3, 3, 3)], tolerance=1e-5)


def test_a_float64_model_with_torch_convolutions_runs_in_onnxruntime():
    """onnxruntime has no float64 Conv: torch's conv2d exports as onnx_impl's composite."""
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1),
                                torch.nn.Conv2d(4, 2, 2, dilation=2, groups=2)).double()
    program = _check(model, [(3, 9, 8)], torch.float64, tolerance=1e-10)
    assert "Conv" not in {node.op_type for node in program.model_proto.graph.node}


@pytest.mark.parametrize("module, shapes", [
    (lambda: torch_impl.nn.DeformConv2d(4, 6, 3, padding=1, groups=2), [(4, 6, 5), (18, 6, 5)]),
    (lambda: torch_impl.nn.Conv2_5d(3, 4, 3, padding=1, focal=0.5), [(3, 6, 7), (1, 6, 7)]),
    (lambda: torch_impl.nn.TanProdConv2d(2, 3, 2, padding=1), [(2, 5, 6)]),
])
def test_each_torch_impl_module_exports_with_a_dynamic_batch(module, shapes):
    torch.manual_seed(0)
    layer = module()
    if isinstance(layer, torch_impl.nn.TanProdConv2d):
        with torch.no_grad():
            layer.weight.mul_(0.3)  # factors away from tan's poles
    _check(layer, shapes)


class Mixed(torch.nn.Module):
    """torch_impl layers among torch's: Conv2d, BatchNorm2d, pooling (divisor_override)."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1),
                                        torch.nn.BatchNorm2d(8), torch.nn.ReLU())
        self.deformable = torch_impl.nn.DeformableConv2d(8, 8, 3, padding=1, with_mask=True)
        self.pool = torch.nn.MaxPool2d(2, ceil_mode=True)
        self.depth_pool = torch.nn.AvgPool2d(2, ceil_mode=True, divisor_override=4)
        self.rgbd = torch_impl.nn.Conv2_5d(8, 4, 3, padding=1, focal=2.0)
        self.tanprod = torch_impl.nn.TanProdConv2d(4, 2, 1)

    def forward(self, image, depth):
        x = self.pool(self.deformable(self.stem(image)))
        x = self.rgbd(x, self.depth_pool(depth) + 1.0)
        return self.tanprod(0.1 * torch.tanh(x))


def test_a_model_mixing_them_with_torch_layers_exports_and_matches():
    torch.manual_seed(1)
    model = Mixed()
    with torch.no_grad():  # offsets that move the samples; running statistics not 0 and 1
        model.deformable.offset_conv.weight.normal_(0, 0.3)
        model.stem[1].running_mean.uniform_(-0.5, 0.5)
        model.stem[1].running_var.uniform_(0.5, 2.0)
    program = _check(model, [(3, 9, 8), (1, 9, 8)])
    ops = {node.op_type for node in program.model_proto.graph.node}
    assert {"Conv", "DeformConv"} <= ops and "AveragePool" not in ops and "MaxPool" not in ops


# A custom op whose fake implementation reads the batch size as an int: tracing then fixes it.
@torch.library.custom_op("crossconv_tests::twice", mutates_args=())
def _twice(x: torch.Tensor) -> torch.Tensor:
    return 2 * x


@_twice.register_fake
def _(x):
    if int(x.shape[0]) < 1:
        raise ValueError("empty batch")
    return torch.empty_like(x)


def test_export_refuses_a_batch_that_tracing_fixed():
    def translation(x):
        from onnxscript import opset22 as op

        return op.Add(x, x)

    class Twice(torch.nn.Module):
        def forward(self, x):
            return _twice(x)

    table = {torch.ops.crossconv_tests.twice.default: translation}
    with pytest.raises(ValueError, match="batch size was fixed while tracing"):
        onnx_impl.export(Twice().eval(), (torch.ones(2, 3),), custom_translation_table=table)
    program = onnx_impl.export(Twice().eval(), (torch.ones(2, 3),), dynamic_batch=False,
                               custom_translation_table=table)
    assert list(program.model.graph.inputs[0].shape) == [2, 3]


class Scaled(torch.nn.Module):
    def forward(self, x, scale):
        return torch_impl.tanprod_conv2d(x, 0.1 * torch.ones(2, 3, 1, 1)) * scale


def test_keyword_inputs_are_not_batched():
    scale = torch.tensor(2.0)
    program = onnx_impl.export(Scaled().eval(), (torch.rand(2, 3, 4, 4),), {"scale": scale})
    x, scale_input = program.model.graph.inputs
    assert str(x.shape[0]) == "batch" and list(scale_input.shape) == []
    session = onnxruntime.InferenceSession(program.model_proto.SerializeToString())
    x3 = torch.rand(3, 3, 4, 4)
    (actual,) = session.run(None, {x.name: x3.numpy(), scale_input.name: scale.numpy()})
    np.testing.assert_allclose(actual, Scaled()(x3, scale).numpy(), rtol=1e-5, atol=1e-6)


def test_torch_conv2d_with_other_dynamic_sizes_keeps_torch_translation():
    """Only the batch is dynamic in onnx_impl's graphs: a float32 convolution whose other
    sizes are dynamic too is one Conv, as torch exports it."""
    conv = torch.nn.Conv2d(3, 2, 3, padding=1).eval()
    size = torch.export.Dim("size")
    program = onnx_impl.export(conv, (torch.rand(2, 3, 6, 6),), dynamic_batch=False,
                               dynamic_shapes=({2: size, 3: size},))
    assert [n.op_type for n in program.model_proto.graph.node] == ["Conv"]
    x = torch.rand(2, 3, 9, 9)
    (actual,) = _run(program, x)
    with torch.no_grad():
        np.testing.assert_allclose(actual, conv(x).numpy(), rtol=1e-5, atol=1e-5)


def test_export_refuses_torch_impl_checks_that_would_fix_the_batch(monkeypatch):
    """Were torch_impl's checks to read the batch size as an int (its public function
    and the custom op's fake both check), the export would raise, not fix the batch."""
    import torch_impl.custom_op
    import torch_impl.deform

    def int_shape(t):
        return None if t is None else tuple(int(s) for s in t.shape)

    monkeypatch.setattr(torch_impl.deform, "shape", int_shape)
    monkeypatch.setattr(torch_impl.custom_op, "shape", int_shape)
    layer = torch_impl.nn.DeformConv2d(2, 2, 3, padding=1).eval()
    with pytest.raises(ValueError, match="batch size was fixed while tracing"):
        onnx_impl.export(layer, _inputs([(2, 4, 4), (18, 4, 4)], EXPORT_BATCH))


def test_export_checks_its_arguments():
    with pytest.raises(TypeError, match="args must be a tuple"):
        onnx_impl.export(torch.nn.Identity(), torch.ones(2, 3))
    with pytest.raises(ValueError, match="opset_version must be >= 22"):
        onnx_impl.export(torch.nn.Identity(), (torch.ones(2, 3),), opset_version=18)
    with pytest.raises(ValueError, match="dynamic_batch=False"):
        onnx_impl.export(torch.nn.Identity(), (torch.ones(2, 3),), dynamic_shapes=({},))
