"""Bad arguments: ValueError/TypeError naming the argument and the value, before any work.

Each case is run through the forward and the VJP. The "before any work" part: inputs are
zero-stride views of huge arrays (1 x 3 x 100000 x 100000 float64, 240 GB if real; the
float32 one would be copied to float64), so any work before the check would take minutes
or run out of memory.
"""

import numpy as np
import pytest

import reference
from reference import common
from reference.conv2_5d import conv2_5d_signature
from reference.conv2d import conv2d_signature, xcorr_signature
from reference.deform import deform_conv2d_signature
from reference.pool import avg_pool2d_signature, max_pool2d_signature
from reference.tanprod import tanprod_conv2d_signature

HUGE = np.broadcast_to(np.float64(1.0), (1, 3, 100_000, 100_000))
HUGE32 = np.broadcast_to(np.float32(1.0), (1, 3, 100_000, 100_000))


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
    # nothing is copied before the checks (a float32 input is converted only after them)
    ("conv2d", (HUGE32, W.astype(np.float32)), {"stride": 0}, ValueError, "stride must be positive, got stride=0"),
    ("max_pool2d", (HUGE32, 2), {"ceil_mode": 0}, TypeError, "ceil_mode must be a bool"),
    # bools are not ints
    ("conv2d", (HUGE, W), {"stride": True}, TypeError, "stride must be an int or a sequence of one or two ints, got stride=True"),
    ("conv2d", (HUGE, W), {"padding": (1, False)}, TypeError, "padding must be an int"),
    ("conv2d", (x(1, 3, 5, 5), W), {"groups": True}, TypeError, "groups must be an int, got groups=True"),
    ("avg_pool2d", (HUGE, 2), {"divisor_override": True}, TypeError, "divisor_override must be an int"),
    # integers beyond 32-bit indices, and windows whose padded extent is
    ("conv2d", (HUGE, W), {"padding": 2**63 - 1}, ValueError, "padding must be at most 2**31 - 1, got padding=9223372036854775807"),
    ("conv2d", (HUGE, W), {"stride": (1, 2**64)}, ValueError, "stride must be at most 2**31 - 1"),
    ("conv2d", (x(1, 3, 5, 5), W), {"groups": 2**31}, ValueError, "groups must be at most 2**31 - 1"),
    ("tanprod_conv2d", (HUGE, W), {"dilation": np.uint64(2**64 - 1)}, ValueError, "dilation must be at most"),
    ("conv2d", (x(1, 3, 5, 5), W), {"padding": 2**30}, ValueError, "the padded input would be 2147483653x2147483653"),
    ("conv2d", (x(1, 3, 5, 5), W), {"padding": "same", "dilation": 2**30}, ValueError, "the padded input would be"),
    ("max_pool2d", (HUGE, 2**31), {}, ValueError, "kernel_size must be at most 2**31 - 1"),
    ("avg_pool2d", (HUGE, 2), {"divisor_override": -2**31}, ValueError, "divisor_override must be at most 2**31 - 1"),
    ("conv2_5d", (x(1, 3, 5, 5), x(1, 1, 5, 5), x(3, 4, 3, 3, 3)), {"focal": 10**400}, ValueError, "focal must be finite and > 0"),
    # every axis but the batch is non-empty
    ("conv2d", (x(1, 0, 5, 5), x(4, 0, 3, 3)), {}, ValueError, "input [N, C, H, W] has an empty axis: shape (1, 0, 5, 5)"),
    ("conv2d", (x(1, 3, 5, 5), x(0, 3, 3, 3)), {}, ValueError, "weight [O, C/groups, kh, kw] has an empty axis"),
    ("conv2d", (x(1, 3, 5, 5), W, x(0)), {}, ValueError, "bias [O] has an empty axis"),
    ("xcorr2d", (x(1, 0, 8, 8), x(1, 0, 3, 3)), {}, ValueError, "search [N, C, H, W] has an empty axis"),
    ("xcorr2d_depthwise", (x(1, 3, 8, 8), x(1, 3, 0, 3)), {}, ValueError, "template [N, C, h, w] has an empty axis"),
    ("tanprod_conv2d", (x(1, 0, 5, 5), x(4, 0, 3, 3)), {}, ValueError, "input [N, C, H, W] has an empty axis"),
    ("conv2_5d", (x(1, 3, 5, 5), x(1, 1, 5, 5), x(0, 4, 3, 3, 3)), {}, ValueError, "weight [B, O, C, kh, kw] has an empty axis"),
    ("deform_conv2d", (x(1, 0, 5, 5), x(1, 18, 3, 3), x(4, 0, 3, 3)), {}, ValueError, "input [N, C, H, W] has an empty axis"),
    ("deform_conv2d", (x(1, 3, 5, 5), x(1, 0, 3, 3), W), {}, ValueError, "offset [N, 2*offset_groups*kh*kw, oh, ow] has an empty axis"),
    ("max_pool2d", (x(1, 0, 4, 4), 2), {}, ValueError, "input [N, C, H, W] has an empty axis"),
    ("avg_pool2d", (x(1, 1, 0, 4), 1), {}, ValueError, "input [N, C, H, W] has an empty axis"),
]

#: Tensor arguments that are not NumPy float arrays: a TypeError naming the argument.
NOT_ARRAYS = [
    ("conv2d", (None, W), {}, "input must be a numpy.ndarray of float32 or float64, got None"),
    ("conv2d", (x(1, 3, 5, 5), None), {}, "weight must be a numpy.ndarray of float32 or float64, got None"),
    ("conv2d", ([[1.0, 2.0], [3.0]], W), {}, "input must be a numpy.ndarray of float32 or float64, got list"),
    ("conv2d", (x(1, 3, 5, 5).tolist(), W), {}, "input must be a numpy.ndarray of float32 or float64, got list"),
    ("conv2d", (x(1, 3, 5, 5), W, "bias"), {}, "bias must be a numpy.ndarray of float32 or float64, got str"),
    ("tanprod_conv2d", ({"input": 1}, W), {}, "input must be a numpy.ndarray of float32 or float64, got dict"),
    ("xcorr2d", (x(1, 3, 8, 8), 1.0), {}, "template must be a numpy.ndarray of float32 or float64, got float"),
    ("conv2_5d", (x(1, 3, 5, 5), None, x(3, 4, 3, 3, 3)), {}, "depth must be a numpy.ndarray"),
    ("deform_conv2d", (x(1, 3, 5, 5), OFF, W), {"mask": [1.0]}, "mask must be a numpy.ndarray of float32 or float64, got list"),
    ("max_pool2d", (None, 2), {}, "input must be a numpy.ndarray of float32 or float64, got None"),
    ("avg_pool2d", (np.float64(1.0), 2), {}, "input must be a numpy.ndarray of float32 or float64, got float64"),
    ("max_pool2d", (np.ones((1, 1, 4, 4), dtype=object), 2), {}, "input must be a float32 or float64 tensor, got dtype object"),
]

#: Legal calls whose output or padded input cannot fit in any machine's memory: a
#: MemoryError naming the arguments, before anything is allocated.
TOO_BIG = [
    ("conv2d", (x(2, 4, 7, 7), x(6, 4, 3, 3)), {"padding": 10**9}, "padding=1000000000"),
    ("tanprod_conv2d", (x(2, 4, 7, 7), x(6, 4, 3, 3)), {"padding": (10**9, 1)}, "padding=(1000000000, 1)"),
    ("conv2_5d", (x(1, 3, 5, 5), x(1, 1, 5, 5), x(3, 4, 3, 3, 3)), {"padding": 10**9}, "padding=1000000000"),
    ("deform_conv2d", (x(1, 3, 5, 5), np.broadcast_to(0.0, (1, 18, 2 * 10**7 + 3, 2 * 10**7 + 3)), W),
     {"padding": 10**7}, "padding=10000000"),
    ("max_pool2d", (x(1, 1, 4, 4), 2 * 10**9), {"stride": 1, "padding": 10**9}, "kernel_size=2000000000"),
    ("avg_pool2d", (x(1, 1, 4, 4), 2 * 10**9), {"stride": 1, "padding": 10**9}, "padding=1000000000"),
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


def _call(op, args, kwargs, vjp):
    if vjp:
        return getattr(reference, op + "_vjp")(np.ones(1), *args, **kwargs)
    return getattr(reference, op)(*args, **kwargs)


@pytest.mark.parametrize("vjp", [False, True], ids=["forward", "vjp"])
@pytest.mark.parametrize("op, args, kwargs, fragment", NOT_ARRAYS,
                         ids=[f"{b[0]}-{b[3][:40]}" for b in NOT_ARRAYS])
def test_tensor_arguments_must_be_float_arrays(op, args, kwargs, fragment, vjp):
    """What docs/index.md promises: NumPy arrays of float32 or float64, nothing else (no
    lists, scalars or other frameworks' tensors), and None only for bias and mask."""
    with pytest.raises(TypeError) as info:
        _call(op, args, kwargs, vjp)
    assert str(info.value).startswith(f"{op}: ") and fragment in str(info.value)


@pytest.mark.parametrize("vjp", [False, True], ids=["forward", "vjp"])
@pytest.mark.parametrize("op, args, kwargs, fragment", TOO_BIG,
                         ids=[f"{b[0]}-{b[3][:40]}" for b in TOO_BIG])
def test_calls_too_large_for_memory_are_refused_up_front(op, args, kwargs, fragment, vjp):
    with pytest.raises(MemoryError) as info:
        _call(op, args, kwargs, vjp)
    message = str(info.value)
    assert message.startswith(f"{op}: ") and fragment in message and "memory" in message


def test_grad_output_must_be_an_array():
    with pytest.raises(TypeError, match="conv2d: grad_output must be a numpy.ndarray"):
        reference.conv2d_vjp([[0.0]], x(1, 3, 5, 5), W)


def test_an_empty_batch_gives_empty_results_and_zero_parameter_gradients():
    args = (x(0, 3, 5, 5), W, x(4))
    assert reference.conv2d(*args, padding=1).shape == (0, 4, 5, 5)
    grads = reference.conv2d_vjp(np.ones((0, 4, 5, 5)), *args, padding=1)
    assert grads["input"].shape == (0, 3, 5, 5)
    assert not grads["weight"].any() and not grads["bias"].any()
    assert reference.max_pool2d(x(0, 2, 4, 4), 2).shape == (0, 2, 2, 2)


def test_a_huge_pooling_window_visits_only_the_taps_that_read_the_input():
    """kernel (2**20, 1) over 4 rows: a loop over every tap would run for minutes; the
    window's taps that read the input are known in closed form (a handful)."""
    v = np.arange(16.0).reshape(1, 1, 4, 4)
    kwargs = {"kernel_size": (2**20, 1), "stride": 1, "padding": (2**19, 0)}
    geometry = max_pool2d_signature(v.shape, **kwargs)
    assert len(list(geometry.input_taps())) < 10 and geometry.out_size == (5, 4)
    assert (reference.max_pool2d(v, **kwargs) == v.max(axis=2, keepdims=True)).all()
    assert np.allclose(reference.avg_pool2d(v, **kwargs), v.sum(axis=2, keepdims=True) / 2**20)
    grad = reference.max_pool2d_vjp(np.ones((1, 1, 5, 4)), v, **kwargs)["input"]
    assert (grad[0, 0, 3] == 5).all() and grad.sum() == 20


@pytest.mark.parametrize("stride, padding, dilation", [(1, 0, 1), (2, 1, 3), (3, 2, 2), (1, 1, 4)])
@pytest.mark.parametrize("size, kernel", [(1, 2), (2, 3), (5, 4), (7, 3), (3, 9)])
def test_the_closed_form_window_taps_match_a_loop_over_taps(size, kernel, stride, padding, dilation):
    try:
        geometry = common.pool_geometry("op", (1, 1, size, size), kernel, stride, padding,
                                        dilation, True)
    except ValueError:  # padding above half the kernel, or no output
        return
    first, last = geometry.window_input_taps(0)
    reached = set()
    for o in range(geometry.out_size[0]):
        inside = [t for t in range(kernel) if 0 <= geometry.positions(0, t)[o] < size]
        assert inside == list(range(first[o], last[o] + 1))
        reached.update(inside)
    assert sorted({i for i, _ in geometry.input_taps()}) == sorted(reached)


class SymbolicSize:
    """A batch size that is not an int (as a ``torch.SymInt`` under ``torch.export``):
    converting, comparing or branching on it fails the test."""

    def _fail(self, *args):
        raise AssertionError("a symbolic batch size was converted or compared")

    __index__ = __int__ = __float__ = __bool__ = __hash__ = _fail
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _fail
    __add__ = __radd__ = __mul__ = __rmul__ = __floordiv__ = __mod__ = __sub__ = _fail

    def __repr__(self):
        return "s0"


def test_a_symbolic_batch_passes_every_signature_unconverted():
    n = SymbolicSize()
    signatures = {
        "conv2d": conv2d_signature((n, 3, 5, 5), (4, 3, 3, 3), (4,), padding=1),
        "tanprod": tanprod_conv2d_signature((n, 3, 5, 5), (4, 3, 3, 3), stride=2),
        "conv2_5d": conv2_5d_signature((n, 3, 5, 5), (n, 1, 5, 5), (3, 4, 3, 3, 3)),
        "deform": deform_conv2d_signature((n, 3, 5, 5), (n, 18, 3, 3), (4, 3, 3, 3),
                                          mask=(n, 9, 3, 3)),
    }
    for name, sig in signatures.items():
        assert sig.out_shape[0] is n and sig.out_shape[1:] in ((4, 5, 5), (4, 2, 2), (4, 3, 3)), name
    for op in ("xcorr2d", "xcorr2d_depthwise"):
        assert xcorr_signature((n, 3, 8, 8), (n, 3, 3, 3), op)[0] is n
    assert max_pool2d_signature((n, 2, 5, 5), 2, ceil_mode=True).out_size == (3, 3)
    assert avg_pool2d_signature((n, 2, 5, 5), 3, padding=1).out_size == (2, 2)


def test_grad_output_of_the_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"grad_output must have shape \(1, 4, 3, 3\)"):
        reference.conv2d_vjp(np.ones((1, 4, 3, 2)), x(1, 3, 5, 5), W)
