# ruff: noqa: E501  (one bad call per line reads best, as in tests/reference/test_validation.py)
"""Arguments: torch's forms are accepted, bad calls are clear errors before any work,
tensors are never cast silently, NaN offsets give NaN (never a crash), and ``impl``
resolves as docs/index.md says."""

import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings

import reference
import torch_impl
from crossconv import checks, strategies
from crossconv.registry import Implementation
from torch_impl import common

F64 = torch.float64
#: A 1 x 3 x 100000 x 100000 view of one number (240 GB if real): any work done before
#: the argument check would run out of memory.
HUGE = torch.ones(1, dtype=F64).expand(1, 3, 100_000, 100_000)


def t(*shape, dtype=F64):
    return torch.ones(shape, dtype=dtype)


W = t(4, 3, 3, 3)
OFF = t(1, 18, 3, 3)
W25 = t(3, 4, 3, 3, 3)
BAD = [
    # (op, args, kwargs, exception, fragment of the message)
    ("conv2d", (t(3, 5, 5), W), {}, ValueError, "input must be 4-D"),
    ("conv2d", (HUGE, W), {"groups": 2}, ValueError, "input has 3 channels"),
    ("conv2d", (HUGE, W), {"stride": 0}, ValueError, "stride must be positive, got stride=0"),
    ("conv2d", (HUGE, W), {"padding": "same", "stride": 2}, ValueError, "padding='same' needs stride 1"),
    ("conv2d", (HUGE, W), {"padding": (1, 2, 3)}, TypeError, "padding"),
    ("xcorr2d", (t(2, 3, 8, 8), t(1, 3, 3, 3)), {}, ValueError, "agree on batch and channels"),
    ("xcorr2d_depthwise", (t(1, 3, 4, 4), t(1, 3, 5, 3)), {}, ValueError, "template's spatial size"),
    ("tanprod_conv2d", (HUGE, W), {"dilation": (1, 0)}, ValueError, "dilation must be positive"),
    ("tanprod_conv2d", (t(1, 2, 5, 5), W), {}, ValueError, "input has 2 channels"),
    ("conv2_5d", (HUGE, t(1, 1, 5, 5), W25), {}, ValueError, "depth must have shape (1, 1, 100000, 100000)"),
    ("conv2_5d", (t(1, 3, 5, 5), t(1, 1, 5, 5), t(3, 4, 3, 2, 2)), {}, ValueError, "kh and kw must be odd"),
    ("conv2_5d", (t(1, 3, 5, 5), t(1, 1, 5, 5), W25), {"focal": 0.0}, ValueError, "focal must be finite and > 0"),
    ("deform_conv2d", (HUGE, OFF, W), {"stride": 0}, ValueError, "stride must be positive"),
    ("deform_conv2d", (t(1, 3, 5, 5), t(1, 17, 3, 3), W), {}, ValueError, "positive multiple of 18"),
    ("deform_conv2d", (t(1, 3, 2, 2), t(1, 18, 1, 1), W), {}, ValueError, "output size would be 0x0"),
    ("deform_conv2d", (t(1, 3, 5, 5), OFF, W), {"mask": t(1, 18, 3, 3)}, ValueError, "mask must have shape (1, 9, 3, 3)"),
    ("max_pool2d", (t(1, 1, 2, 2), 2), {"stride": 2, "padding": 1, "dilation": 3}, ValueError, "covers only padding"),
    ("max_pool2d", (HUGE, 3), {"padding": 2}, ValueError, "padding must be at most half of kernel_size"),
    ("avg_pool2d", (t(1, 1, 4, 4), 2), {"divisor_override": 0}, ValueError, "divisor_override must not be zero"),
    # torch-side checks: type, dtype, device, impl
    ("conv2d", (np.ones((1, 3, 5, 5)), W), {}, TypeError, "input must be a torch.Tensor, got ndarray"),
    ("conv2d", (t(1, 3, 5, 5, dtype=torch.int64), W), {}, TypeError, "input must be a float16 or bfloat16 or float32 or float64 tensor, got dtype int64"),
    ("conv2d", (t(1, 3, 5, 5), W.float()), {}, TypeError, "share one dtype, got input float64, weight float32"),
    ("xcorr2d", (t(1, 3, 8, 8), t(1, 3, 3, 3, dtype=torch.bool)), {}, TypeError, "template must be a float16"),
    ("tanprod_conv2d", (t(1, 3, 5, 5), W, t(4, dtype=torch.int32)), {}, TypeError, "bias must be a float16"),
    ("conv2_5d", (t(1, 3, 5, 5), t(1, 1, 5, 5).float(), W25), {}, TypeError, "input float64, depth float32"),
    ("conv2_5d", (t(1, 3, 5, 5), t(1, 1, 5, 5, dtype=torch.int64), W25), {}, TypeError, "depth must be a float16"),
    ("deform_conv2d", (t(1, 3, 5, 5), OFF.to("meta"), W), {}, ValueError, "one device, got input on cpu, offset on meta"),
    ("deform_conv2d", (t(1, 3, 5, 5), OFF, W), {"mask": t(1, 9, 3, 3, dtype=torch.float16)}, TypeError, "mask float16"),
    ("max_pool2d", (t(1, 1, 4, 4, dtype=torch.uint8), 2), {}, TypeError, "input must be a float16"),
    ("avg_pool2d", (t(1, 1, 4, 4), 2), {"impl": "cuda"}, ValueError, "impl must be one of 'auto', 'native', 'triton', got 'cuda'"),
    ("tanprod_conv2d", (t(1, 3, 5, 5), W), {"impl": None}, ValueError, "impl must be one of"),
]


@pytest.mark.parametrize("op, args, kwargs, error, fragment", BAD,
                         ids=[f"{b[0]}-{b[4][:40]}" for b in BAD])
def test_bad_arguments_raise_a_clear_error(op, args, kwargs, error, fragment):
    with pytest.raises(error) as info:
        getattr(torch_impl, op)(*args, **kwargs)
    assert fragment in str(info.value)
    assert str(info.value).startswith(op + ":")


def _same(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_one_element_sequences_serve_both_axes():
    x, w = torch.rand(2, 3, 7, 6, dtype=F64), torch.rand(4, 3, 3, 3, dtype=F64) - 0.5
    for op, args in [("conv2d", (x, w)), ("tanprod_conv2d", (x * 0.5, w)),
                     ("conv2_5d", (x, torch.rand(2, 1, 7, 6, dtype=F64) + 0.5,
                                   torch.rand(2, 4, 3, 3, 3, dtype=F64)))]:
        fn = getattr(torch_impl, op)
        _same(fn(*args, stride=[2], padding=(1,), dilation=(2,)),
              fn(*args, stride=2, padding=1, dilation=2))
    off = torch.rand(2, 18, 2, 2, dtype=F64)
    _same(torch_impl.deform_conv2d(x, off, w, stride=(3,), padding=[1], dilation=(2,)),
          torch_impl.deform_conv2d(x, off, w, stride=3, padding=1, dilation=2))


def test_pooling_stride_none_or_empty_means_the_kernel_size():
    x = torch.rand(2, 3, 9, 8, dtype=F64)
    for op in (torch_impl.max_pool2d, torch_impl.avg_pool2d):
        expected = op(x, (3, 2), stride=(3, 2))
        _same(op(x, (3, 2)), expected)
        _same(op(x, (3, 2), stride=None), expected)
        _same(op(x, (3, 2), stride=()), expected)
    # torch's OpInfo samples: padding=(1,) and stride=() for avg_pool2d
    _same(torch_impl.avg_pool2d(x, 3, stride=(), padding=(1,)),
          torch.from_numpy(reference.avg_pool2d(x.numpy(), 3, stride=(), padding=(1,))))


def test_depth_may_require_grad_and_gets_no_gradient():
    x = torch.rand(1, 2, 5, 5, dtype=F64, requires_grad=True)
    depth = (torch.rand(1, 1, 5, 5, dtype=F64) + 0.5).requires_grad_()
    out = torch_impl.conv2_5d(x, depth, torch.rand(3, 2, 2, 3, 3, dtype=F64), padding=1)
    out.sum().backward()
    assert x.grad.abs().max() > 0
    assert depth.grad is None


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the reference
@settings(max_examples=40)
@given(strategies.deform_conv2d_cases(nonfinite=True, nonfinite_offsets=True))
def test_nan_and_inf_offsets_and_inputs_follow_the_reference(case):
    impl = Implementation("deform_conv2d", "torch")
    checks.check_forward(impl, case)
    checks.check_vjp(impl, case)


def test_a_nan_offset_coordinate_gives_nan_where_spec_says():
    """torchvision segfaults on (0, NaN); here the outputs reading that sample are NaN,
    the others are finite, and the gradients are NaN exactly where docs/deform.md puts them."""
    x = torch.rand(1, 2, 5, 5, dtype=F64, requires_grad=True)
    w = torch.rand(3, 2, 1, 1, dtype=F64, requires_grad=True)
    offset = torch.zeros(1, 2, 5, 5, dtype=F64)
    offset[0, 1, 2, 3] = float("nan")  # dx of the only tap at output (2, 3)
    offset.requires_grad_()
    mask = torch.rand(1, 1, 5, 5, dtype=F64, requires_grad=True)
    out = torch_impl.deform_conv2d(x, offset, w, mask=mask)
    nan = torch.zeros(1, 3, 5, 5, dtype=torch.bool)
    nan[0, :, 2, 3] = True
    assert torch.equal(out.isnan(), nan)
    out.nansum().backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad[0, :, 2, 3].eq(0).all()  # a NaN point adds nothing to the input gradient
    assert torch.equal(offset.grad.isnan()[0, :, 2, 3], torch.tensor([True, True]))
    assert offset.grad.isnan().sum() == 2
    assert mask.grad.isnan().sum() == 1 and mask.grad[0, 0, 2, 3].isnan()
    assert w.grad.isnan().all()  # it sums over every position


def _forget_kernels(monkeypatch, file, module):
    monkeypatch.setitem(sys.modules, f"torch_impl.kernels.{file}", module)
    common._kernel_module.cache_clear()


@pytest.mark.parametrize("op, file, args", [
    ("tanprod_conv2d", "tanprod", (t(1, 3, 5, 5), W)),
    ("conv2_5d", "conv2_5d", (t(1, 3, 5, 5), t(1, 1, 5, 5), W25)),
    ("deform_conv2d", "deform", (t(1, 3, 5, 5), OFF, W)),
    ("max_pool2d", "pool", (t(1, 1, 4, 4), 2)),
    ("avg_pool2d", "pool", (t(1, 1, 4, 4), 2)),
])
def test_impl_triton_without_its_kernels_names_the_module(monkeypatch, op, file, args):
    _forget_kernels(monkeypatch, file, None)  # importing it raises ImportError
    try:
        with pytest.raises(ImportError, match=f"impl='triton' needs the module "
                                              f"torch_impl.kernels.{file}"):
            getattr(torch_impl, op)(*args, impl="triton")
        # "auto" on the CPU never needs them; neither does "native"
        for impl in ("auto", "native"):
            assert getattr(torch_impl, op)(*args, impl=impl).shape[0] == 1
    finally:
        common._kernel_module.cache_clear()


def test_auto_is_native_on_the_cpu():
    assert common.resolve_impl("op", "deform", "auto", torch.device("cpu")) == "native"
    assert common.resolve_impl("op", "deform", "auto", torch.device("meta")) == "native"
