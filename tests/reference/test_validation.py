"""Bad arguments: ValueError/TypeError naming the argument and the value, before any work.

Each case is run through the forward and the VJP. The "before any work" part: inputs are
zero-stride views of huge arrays (1 x 3 x 100000 x 100000 float64, 240 GB if real), so
any work before the check would take minutes or run out of memory.
"""

import numpy as np
import pytest

import reference

HUGE = np.broadcast_to(np.float64(1.0), (1, 3, 100_000, 100_000))


def x(*shape):
    return np.ones(shape)


W = x(4, 3, 3, 3)
OFF = x(1, 18, 3, 3)
BAD = [
    # (op, args, kwargs, exception, fragment of the message)
    ("conv2d", (x(3, 5, 5), W), {}, ValueError, "input must be 4-D"),
    ("conv2d", (x(1, 3, 5, 5), x(4, 3, 3)), {}, ValueError, "weight must be 4-D"),
    ("conv2d", (x(1, 4, 5, 5), W), {}, ValueError, "input has 4 channels"),
    ("conv2d", (x(1, 6, 5, 5), x(3, 3, 3, 3)), {"groups": 2}, ValueError, "groups=2 must divide"),
    ("conv2d", (x(1, 3, 5, 5), W), {"groups": 0}, ValueError, "groups must be positive"),
    ("conv2d", (x(1, 3, 5, 5), W), {"groups": 1.5}, TypeError, "groups must be an int"),
    ("conv2d", (x(1, 3, 5, 5), W, x(3)), {}, ValueError, "bias must have shape (4,)"),
    ("conv2d", (HUGE, W), {"stride": 0}, ValueError, "stride must be positive, got stride=0"),
    ("conv2d", (HUGE, W), {"stride": (1, -1)}, ValueError, "stride=(1, -1)"),
    ("conv2d", (HUGE, W), {"dilation": 0}, ValueError, "dilation must be positive"),
    ("conv2d", (HUGE, W), {"padding": -1}, ValueError, "padding must be >= 0, got padding=-1"),
    ("conv2d", (HUGE, W), {"padding": "full"}, ValueError, "'full'"),
    ("conv2d", (HUGE, W), {"padding": "same", "stride": 2}, ValueError, "padding='same' needs stride 1"),
    ("conv2d", (HUGE, W), {"stride": 1.0}, TypeError, "stride must be an int or a sequence of one or two ints"),
    ("conv2d", (HUGE, W), {"padding": (1, 2, 3)}, TypeError, "padding"),
    ("conv2d", (x(1, 3, 2, 2), W), {}, ValueError, "output size would be 0x0"),
    ("conv2d", (np.ones((1, 3, 5, 5), dtype=np.int64), W), {}, TypeError, "input must be a float32 or float64"),
    ("conv2d", (x(1, 3, 5, 5), W.astype(np.float16)), {}, TypeError, "weight must be a float32"),
    ("conv2d", (x(1, 3, 5, 5), W, np.ones(4, dtype=bool)), {}, TypeError, "bias must be a float32"),
    ("xcorr2d", (x(2, 3, 8, 8), x(1, 3, 3, 3)), {}, ValueError, "agree on batch and channels"),
    ("xcorr2d", (x(1, 3, 4, 4), x(1, 3, 5, 3)), {}, ValueError, "template's spatial size"),
    ("xcorr2d_depthwise", (x(1, 3, 8), x(1, 3, 3, 3)), {}, ValueError, "search must be 4-D"),
    ("tanprod_conv2d", (x(1, 2, 5, 5), W), {}, ValueError, "input has 2 channels"),
    ("tanprod_conv2d", (HUGE, W), {"dilation": (1, 0)}, ValueError, "dilation must be positive"),
    ("conv2_5d", (x(1, 3, 5, 5), x(1, 1, 5, 5), x(3, 4, 3, 2, 2)), {}, ValueError, "kh and kw must be odd"),
    ("conv2_5d", (x(1, 3, 5, 5), x(1, 1, 5, 4), x(3, 4, 3, 3, 3)), {}, ValueError, "depth must have shape (1, 1, 5, 5)"),
    ("conv2_5d", (x(1, 3, 5, 5), x(1, 1, 5, 5), W), {}, ValueError, "weight must be 5-D"),
    ("conv2_5d", (x(1, 3, 5, 5), x(1, 1, 5, 5), x(3, 4, 3, 3, 3)), {"focal": 0.0}, ValueError, "focal must be finite and > 0"),
    ("conv2_5d", (x(1, 3, 5, 5), x(1, 1, 5, 5), x(3, 4, 3, 3, 3)), {"pixel_size": float("nan")}, ValueError, "pixel_size"),
    ("conv2_5d", (x(1, 3, 5, 5), x(1, 1, 5, 5), x(3, 4, 3, 3, 3)), {"focal": "1"}, TypeError, "focal must be a real number"),
    ("deform_conv2d", (x(1, 3, 5, 5), x(1, 18, 2, 3), W), {}, ValueError, "offset must have shape (1, 18, 3, 3)"),
    ("deform_conv2d", (x(1, 3, 5, 5), x(1, 17, 3, 3), W), {}, ValueError, "positive multiple of 18"),
    ("deform_conv2d", (x(1, 3, 5, 5), x(1, 36, 3, 3), W), {}, ValueError, "2 offset groups, which must divide"),
    ("deform_conv2d", (x(1, 4, 5, 5), x(1, 18, 3, 3), x(4, 3, 3, 3)), {}, ValueError, "weight.shape[1] does not divide"),
    ("deform_conv2d", (x(1, 3, 5, 5), x(1, 18, 3, 3), W), {"mask": x(1, 18, 3, 3)}, ValueError, "mask must have shape (1, 9, 3, 3)"),
    ("deform_conv2d", (x(1, 3, 5, 5), x(1, 18, 3, 3), W), {"mask": x(9, 3, 3)}, ValueError, "mask must be 4-D"),
    ("deform_conv2d", (HUGE, OFF, W), {"stride": 0}, ValueError, "stride must be positive"),
    ("deform_conv2d", (x(1, 3, 2, 2), x(1, 18, 1, 1), W), {}, ValueError, "output size would be 0x0"),
    ("max_pool2d", (HUGE, 3), {"padding": 2}, ValueError, "padding must be at most half of kernel_size"),
    ("max_pool2d", (HUGE, 0), {}, ValueError, "kernel_size must be positive"),
    ("max_pool2d", (HUGE, 2), {"stride": 0}, ValueError, "stride must be positive"),
    ("max_pool2d", (x(1, 1, 2, 2), 2), {"stride": 2, "padding": 1, "dilation": 3}, ValueError, "covers only padding"),
    ("max_pool2d", (x(1, 1, 2, 2), 3), {}, ValueError, "output size would be 0x0"),
    ("max_pool2d", (x(1, 2, 2), 2), {}, ValueError, "input must be 4-D"),
    ("max_pool2d", (x(1, 1, 4, 4), 2), {"ceil_mode": 1}, TypeError, "ceil_mode must be a bool"),
    ("avg_pool2d", (HUGE, 2), {"padding": (0, 2)}, ValueError, "padding must be at most half"),
    ("avg_pool2d", (x(1, 1, 4, 4), 2), {"divisor_override": 0}, ValueError, "divisor_override must not be zero"),
    ("avg_pool2d", (x(1, 1, 4, 4), 2), {"divisor_override": 2.0}, TypeError, "divisor_override must be an int"),
    ("avg_pool2d", (x(1, 1, 4, 4), 2), {"count_include_pad": None}, TypeError, "count_include_pad must be a bool"),
]


@pytest.mark.parametrize("vjp", [False, True], ids=["forward", "vjp"])
@pytest.mark.parametrize("op, args, kwargs, error, fragment", BAD,
                         ids=[f"{b[0]}-{b[4][:40]}" for b in BAD])
def test_bad_arguments_raise_a_clear_error(op, args, kwargs, error, fragment, vjp):
    if vjp:
        fn = getattr(reference, op + "_vjp")
        args = (np.ones(1),) + args  # the argument check comes before grad_output's
    else:
        fn = getattr(reference, op)
    with pytest.raises(error) as info:
        fn(*args, **kwargs)
    assert fragment in str(info.value)
    assert str(info.value).startswith(op + ":")


def test_grad_output_of_the_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"grad_output must have shape \(1, 4, 3, 3\)"):
        reference.conv2d_vjp(np.ones((1, 4, 3, 2)), x(1, 3, 5, 5), W)
