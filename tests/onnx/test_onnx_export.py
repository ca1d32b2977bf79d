"""onnx_impl.export: torch_impl ops and modules exported at batch 2 run in onnxruntime at
batch 3 and match torch_impl; the batch stays dynamic or the export says why not."""

import numpy as np
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


@pytest.mark.parametrize("op", list(OPS))
def test_each_torch_impl_op_exports_with_a_dynamic_batch(op):
    fn, shapes, weights, static = OPS[op]
    if op == "deform_conv2d":
        fn = _deform_mask_last(fn)
    _check(Call(fn, weights, **static), shapes)


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


def test_export_checks_its_arguments():
    with pytest.raises(TypeError, match="args must be a tuple"):
        onnx_impl.export(torch.nn.Identity(), torch.ones(2, 3))
    with pytest.raises(ValueError, match="opset_version must be >= 22"):
        onnx_impl.export(torch.nn.Identity(), (torch.ones(2, 3),), opset_version=18)
