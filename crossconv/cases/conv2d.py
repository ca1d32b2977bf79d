"""Cases of ``conv2d``, ``xcorr2d`` and ``xcorr2d_depthwise`` (docs/conv2d.md)."""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import strategies as st

from . import Boundary, Case, Golden, common

NAN, INF = np.nan, np.inf

#: The options that keep each argument at its default (crossconv.strategy_options).
PINS = {
    "conv2d": {"bias": common.PIN_BIAS, "stride": common.PIN_STRIDE,
               "padding": {"max_padding": 0, "string_padding": False},
               "dilation": common.PIN_DILATION, "groups": {"max_groups": 1}},
}


# ----------------------------------------------------------------------------- conv2d


@st.composite
def conv2d_cases(draw, dtypes=common.DTYPES, max_batch=7, max_groups=3, max_group_channels=8,
                 max_kernel=7, max_stride=3, max_dilation=2, max_padding=2, max_extra=4,
                 max_out_size=159, string_padding=True, square=False, square_kernel=False,
                 bias=None, nonfinite=True, image_like=False, large=common.LARGE):
    """Calls of ``conv2d``: groups, every padding form (int, pair, "valid", "same"), bias or
    not; NaN/Inf input cells in half the draws unless ``nonfinite=False``.

    ``image_like``: pixel-valued input (integers 0..255) over at least 3 channels and a
    3x3 kernel (reductions of 27 and more terms), for half precision.
    """
    dtype = draw(st.sampled_from(dtypes))
    stress = common.tier(draw, large, ("batch" if max_batch > common.SMALL_BATCH else "",
                                       "size" if max_out_size > 32 else "",
                                       "kernel" if max_kernel > common.SMALL_KERNEL else "",
                                       "channels" if max_group_channels > 3 else ""))
    n = common.draw_batch(draw, stress, max_batch)
    groups = draw(st.integers(1, max_groups))
    low = min(3, max_group_channels) if image_like else 1
    if stress == "channels":
        group_in = draw(st.integers(4, max_group_channels))
    else:
        group_in = draw(st.integers(low, min(3, max_group_channels)))
    group_out = draw(st.integers(1, 2))
    kernel = common.draw_kernel(draw, stress, max_kernel, square_kernel, low=3 if image_like else 1)
    stride, dilation, pad = common.draw_window(draw, kernel, max_stride, max_dilation, max_padding, square)
    padding = common.maybe_pair(draw, pad, square)
    if string_padding and draw(st.integers(0, 3)) == 0:
        padding = draw(st.sampled_from(["valid", "same"]))
        if padding == "same":
            stride = (1, 1)
    before = pad
    if padding == "valid":
        before = (0, 0)
    elif padding == "same":
        before = tuple((s - 1) // 2 for s in common.tap_extents(kernel, dilation))
    h, w = common.draw_sizes(draw, kernel, dilation, before, stride, max_extra,
                             common.draw_long_axis(draw, stress, max_out_size))
    seed = draw(common.SEED)
    rng = np.random.default_rng(seed)
    out_channels = groups * group_out
    shape = (n, groups * group_in, h, w)
    tensors = common.cast(
        dtype,
        input=common.pixels(rng, shape) if image_like else rng.standard_normal(shape),
        weight=common.weights(rng, (out_channels, group_in, *kernel), image_like,
                              group_in * kernel[0] * kernel[1]),
        bias=rng.standard_normal(out_channels) if common.draw_optional(draw, bias) else None,
    )
    params = dict(stride=common.maybe_pair(draw, stride, square), padding=padding,
                  dilation=common.maybe_pair(draw, dilation, square), groups=groups)
    if nonfinite and common.some_draws(draw):
        common.sprinkle_nonfinite(rng, tensors["input"])
    return Case("conv2d", tensors, params, seed)


# ----------------------------------------------------------------------------- xcorr


def _xcorr_cases(draw, op, dtypes, max_batch, max_channels, max_template, max_extra,
                 max_out_size, nonfinite, image_like, large):
    dtype = draw(st.sampled_from(dtypes))
    stress = common.tier(draw, large, ("batch" if max_batch > common.SMALL_BATCH else "",
                                       "size" if max_out_size > 32 else "",
                                       "template" if max_template > 16 else ""))
    n = common.draw_batch(draw, stress, max_batch)
    c = draw(st.integers(min(3, max_channels) if image_like else 1, max_channels))
    small = min(4, max_template)
    if stress == "template":  # past the sizes where implementations switch to FFT
        big = draw(st.integers(17, max_template))
        other = draw(st.integers(1, max_template))
        th, tw = (big, other) if draw(st.booleans()) else (other, big)
    else:
        low = min(3, small) if image_like else 1
        th, tw = common.draw_pair(draw, low, small)
    extra = [draw(st.integers(0, max_extra)) for _ in range(2)]
    long_axis = common.draw_long_axis(draw, stress, max_out_size)
    if long_axis:
        extra[long_axis[0]] = long_axis[1] - 1
    sh, sw = th + extra[0], tw + extra[1]
    seed = draw(common.SEED)
    rng = np.random.default_rng(seed)
    search = common.pixels(rng, (n, c, sh, sw)) if image_like else rng.standard_normal((n, c, sh, sw))
    reduction = (c if op == "xcorr2d" else 1) * th * tw
    tensors = common.cast(dtype, search=search,
                          template=common.weights(rng, (n, c, th, tw), image_like, reduction))
    if nonfinite and common.some_draws(draw):
        common.sprinkle_nonfinite(rng, tensors["search"])
    return Case(op, tensors, {}, seed)


@st.composite
def xcorr2d_cases(draw, dtypes=common.DTYPES, max_batch=7, max_channels=3, max_template=40,
                  max_extra=6, max_out_size=159, nonfinite=True, image_like=False, large=common.LARGE):
    """Calls of ``xcorr2d``: template no larger than the search region (up to 4x4 in a
    small draw, one side past 16 in a large "template" draw); NaN/Inf search cells."""
    return _xcorr_cases(draw, "xcorr2d", dtypes, max_batch, max_channels, max_template, max_extra,
                        max_out_size, nonfinite, image_like, large)


@st.composite
def xcorr2d_depthwise_cases(draw, dtypes=common.DTYPES, max_batch=7, max_channels=3, max_template=40,
                            max_extra=6, max_out_size=159, nonfinite=True, image_like=False,
                            large=common.LARGE):
    """Calls of ``xcorr2d_depthwise``; as :func:`xcorr2d_cases`."""
    return _xcorr_cases(draw, "xcorr2d_depthwise", dtypes, max_batch, max_channels,
                        max_template, max_extra, max_out_size, nonfinite, image_like, large)


# ----------------------------------------------------------------------------- boundary


def _conv2d(name, seed, input_shape, weight_shape, bias=True, needs=None, **params):
    rng = np.random.default_rng(seed)
    tensors = {
        "input": rng.standard_normal(input_shape),
        "weight": rng.standard_normal(weight_shape),
        "bias": rng.standard_normal(weight_shape[0]) if bias else None,
    }
    params = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, **params}
    return Boundary(name, Case("conv2d", tensors, params, seed), needs or {})


def conv2d_boundary() -> list[Boundary]:
    nonfinite = _conv2d("NaN, +inf and -inf input cells", 106, (1, 2, 4, 4), (2, 2, 3, 3),
                        padding=1, needs={"nonfinite": True})
    nonfinite.case.tensors["input"][0, 0, 0, 0] = NAN
    nonfinite.case.tensors["input"][0, 1, 3, 2] = INF
    nonfinite.case.tensors["input"][0, 0, 3, 3] = -INF
    return [
        _conv2d("padding wider than the kernel: a border of pure bias", 100, (1, 2, 3, 3),
                (2, 2, 1, 1), padding=2),
        _conv2d("padding='same', even kernel: the extra row/column goes bottom/right", 101,
                (1, 1, 4, 5), (2, 1, 2, 2), padding="same"),
        _conv2d("padding='valid'", 102, (2, 1, 4, 3), (1, 1, 2, 2), bias=False, padding="valid"),
        _conv2d("stride and dilation skip cells; the last window floors", 103, (1, 1, 7, 8),
                (1, 1, 2, 3), stride=(3, 2), padding=(1, 0), dilation=2),
        _conv2d("depthwise groups", 104, (1, 3, 4, 4), (6, 1, 3, 3), groups=3, padding=1),
        _conv2d("the kernel covers the whole input: one output", 105, (2, 2, 3, 3), (1, 2, 3, 3)),
        nonfinite,
        _conv2d("a batch of 3 (an odd last chunk for a batch loop in steps of 2)", 107,
                (3, 2, 4, 3), (2, 2, 2, 2), padding=1),
        _conv2d("an output row of 33: one past a 32-wide tile", 108, (1, 2, 2, 35), (2, 2, 2, 3)),
        _conv2d("a 5x5 kernel", 109, (1, 1, 6, 7), (2, 1, 5, 5), padding=(2, 1)),
    ]


# ----------------------------------------------------------------------------- xcorr


def _xcorr(op, name, seed, search_shape, template_shape, needs=None):
    rng = np.random.default_rng(seed)
    tensors = {"search": rng.standard_normal(search_shape),
               "template": rng.standard_normal(template_shape)}
    return Boundary(name, Case(op, tensors, {}, seed), needs or {})


@functools.lru_cache(maxsize=1)
def _tracking_arrays(seed):
    """The tracking shape's arrays, made once (read-only: every use copies them)."""
    rng = np.random.default_rng(seed)
    search, template = rng.standard_normal((1, 256, 255, 255)), rng.standard_normal((1, 256, 127, 127))
    search.flags.writeable = template.flags.writeable = False
    return search, template


def _tracking(op, seed) -> Boundary:
    search, template = _tracking_arrays(seed)
    case = Case(op, {"search": search, "template": template}, {}, seed)
    return Boundary("the tracking shape: search 255x255, template 127x127, 256 channels", case)


def _xcorr_boundary(op, seed):
    nonfinite = _xcorr(op, "NaN and inf search cells (an FFT must not smear them)", seed + 2,
                       (1, 2, 6, 6), (1, 2, 2, 3), needs={"nonfinite": True})
    nonfinite.case.tensors["search"][0, 0, 1, 1] = NAN
    nonfinite.case.tensors["search"][0, 1, 4, 5] = INF
    return [
        _xcorr(op, "template as large as the search region: one output", seed, (2, 2, 3, 4),
               (2, 2, 3, 4)),
        _xcorr(op, "1x1 template", seed + 1, (2, 3, 4, 3), (2, 3, 1, 1)),
        nonfinite,
        _xcorr(op, "a batch of 3", seed + 3, (3, 2, 4, 5), (3, 2, 2, 2)),
        _xcorr(op, "a 17x17 template (past where implementations switch to FFT)", seed + 4,
               (1, 2, 19, 18), (1, 2, 17, 17)),
        _xcorr(op, "an output row of 33: one past a 32-wide tile", seed + 5, (1, 1, 3, 35),
               (1, 1, 2, 3)),
        _tracking(op, 119),
    ]


def xcorr2d_boundary() -> list[Boundary]:
    return _xcorr_boundary("xcorr2d", 110)


def xcorr2d_depthwise_boundary() -> list[Boundary]:
    return _xcorr_boundary("xcorr2d_depthwise", 120)


def conv2d_needs(case: Case) -> dict:
    """The strategy options a conv2d configuration needs beyond the shared ones."""
    return {"max_groups": case.params.get("groups", 1),
            "max_group_channels": case.tensors["weight"].shape[1]}


def xcorr2d_needs(case: Case) -> dict:
    return {"max_template": max(case.tensors["template"].shape[-2:])}


xcorr2d_depthwise_needs = xcorr2d_needs


# ----------------------------------------------------------------------------- golden

# The hand-written Conv2D/Pool2D post: a 3-channel 5x5 input, two 3x3x3 kernels, bias [1, 0],
# padding 1, stride 2.
SEED_CONV_INPUT = np.array(
    [[[0, 1, 1, 0, 2], [2, 2, 2, 2, 1], [1, 0, 0, 2, 0], [0, 1, 1, 0, 0], [1, 2, 0, 0, 2]],
     [[1, 0, 2, 2, 0], [0, 0, 0, 2, 0], [1, 2, 1, 2, 1], [1, 0, 0, 0, 0], [1, 2, 1, 1, 1]],
     [[2, 1, 2, 0, 0], [1, 0, 0, 1, 0], [0, 2, 1, 0, 1], [0, 1, 2, 2, 2], [2, 1, 0, 0, 1]]],
    dtype=np.float64,
).reshape(1, 3, 5, 5)
SEED_CONV_WEIGHT = np.array(
    [[[[-1, 1, 0], [0, 1, 0], [0, 1, 1]], [[-1, -1, 0], [0, 0, 0], [0, -1, 0]],
      [[0, 0, -1], [0, 1, 0], [1, -1, -1]]],
     [[[1, 1, -1], [-1, -1, 1], [0, -1, 1]], [[0, 1, 0], [-1, 0, -1], [-1, 1, 0]],
      [[-1, 0, 0], [-1, 0, 1], [-1, 0, 0]]]],
    dtype=np.float64,
)
SEED_CONV_BIAS = np.array([1.0, 0.0])
# What torch.nn.Conv2d(3, 2, 3, padding=1, stride=2) prints for it (torch 2.14.1).
SEED_CONV_OUTPUT = np.array(
    [[[[6, 7, 5], [3, -1, -1], [2, -1, 4]], [[2, -5, -8], [1, -4, -4], [0, -5, -5]]]],
    dtype=np.float64,
)


def _customconv_linear() -> Golden:
    """The Torch7 question's ``nn.CustomConv`` structure with its linear kernel: N = C = O
    = 1, stride 1, padding 0, equal to SpatialConvolutionMM (conv2d) with zero bias."""
    from ..oracles import seed_customconv_2d
    from .tanprod import customconv_map

    x, w = customconv_map()
    case = Case("conv2d", {"input": x[None, None], "weight": w[None, None], "bias": np.zeros(1)},
                seed=3)
    return Golden("CustomConv linear", "the Torch7 question: linear variant == conv2d", case,
                  seed_customconv_2d(x, w, kernel="linear")[None, None])


def conv2d_goldens() -> list[Golden]:
    return [
        Golden("Conv2D post conv", "the hand-written Conv2D post; torch.nn.Conv2d",
               Case("conv2d", {"input": SEED_CONV_INPUT, "weight": SEED_CONV_WEIGHT,
                               "bias": SEED_CONV_BIAS}, {"stride": 2, "padding": 1}, seed=4),
               SEED_CONV_OUTPUT),
        _customconv_linear(),
    ]


def xcorr2d_goldens() -> list[Golden]:
    return [
        Golden("box sums", "by hand: a 2x2 template of ones sums each 2x2 block of arange(16)",
               Case("xcorr2d", {"search": np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4),
                                "template": np.ones((1, 1, 2, 2))}, seed=2),
               np.array([[[[10, 14, 18], [26, 30, 34], [42, 46, 50]]]], dtype=np.float64)),
    ]


# ----------------------------------------------------------------------------- reductions


conv2d_reduction = common.conv_reduction


def xcorr2d_reduction(case: Case, check: str, out_shape) -> int:
    template = case.tensors["template"]
    channels = template.shape[1] if case.op == "xcorr2d" else 1
    if check == "forward":
        return channels * common.kernel_taps(template)
    if check == "d/dtemplate":
        return int(out_shape[-1] * out_shape[-2])
    return common.kernel_taps(template)


xcorr2d_depthwise_reduction = xcorr2d_reduction


# ----------------------------------------------------------------------------- samples


def conv2d_sample(dtype="float64", seed=0, smooth=False) -> Case:
    """Groups, stride, padding and dilation at once."""
    rng = np.random.default_rng(seed)
    tensors = common.cast(dtype, input=rng.standard_normal((2, 4, 7, 6)),
                          weight=rng.standard_normal((6, 2, 3, 3)), bias=rng.standard_normal(6))
    return Case("conv2d", tensors, dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2), seed)


def xcorr2d_sample(dtype="float64", seed=0, smooth=False, op="xcorr2d") -> Case:
    rng = np.random.default_rng(seed)
    tensors = common.cast(dtype, search=rng.standard_normal((2, 3, 9, 8)),
                          template=rng.standard_normal((2, 3, 4, 3)))
    return Case(op, tensors, {}, seed)


def xcorr2d_depthwise_sample(dtype="float64", seed=0, smooth=False) -> Case:
    return xcorr2d_sample(dtype, seed, smooth, op="xcorr2d_depthwise")
