"""Cases of ``deform_conv2d`` (docs/deform.md)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from reference.common import conv_geometry

from . import Boundary, Case, Golden, common

NAN, INF = np.nan, np.inf

#: The options that keep each argument at its default (crossconv.strategy_options).
PINS = {
    "deform_conv2d": {"bias": common.PIN_BIAS, "mask": {"with_mask": False}, "stride": common.PIN_STRIDE,
                      "padding": common.PIN_PADDING, "dilation": common.PIN_DILATION},
}

def _undeformed(geometry):
    """Each tap's undeformed sample row ``[K, oh, 1]`` and column ``[K, 1, ow]``, taps in
    row-major order."""
    (kh, kw) = geometry.kernel
    rows = np.stack([geometry.positions(0, i) for i in range(kh) for _ in range(kw)])
    cols = np.stack([geometry.positions(1, j) for _ in range(kh) for j in range(kw)])
    return rows[:, :, None], cols[:, None, :]


def _deform_offsets(rng, shape, bases, limits, smooth):
    """Offsets ``[N, Go, K, oh, ow]`` for one axis; ``bases`` is each tap's undeformed
    coordinate ``[K, oh, ow]`` (broadcast), ``limits`` the axis length.

    ``smooth``: continuous offsets whose coordinates stay >= 0.1 away from integers (no
    kinks for finite differences). Otherwise a mix of continuous offsets, integer offsets
    and offsets that land exactly on -1, 0, size-1 and size.
    """
    fraction = rng.uniform(0.1, 0.9, shape)
    continuous = rng.integers(-2, 3, shape) + fraction
    if smooth:
        return continuous
    integer = rng.integers(-2, 3, shape).astype(np.float64)
    targets = np.array([-1, 0, limits - 1, limits])[rng.integers(0, 4, shape)]
    landing = targets - bases
    mode = rng.integers(0, 3, shape)
    return np.choose(mode, [continuous, integer, landing])


@st.composite
def deform_conv2d_cases(draw, dtypes=common.DTYPES, max_batch=7, max_groups=2, max_group_channels=8,
                        max_offset_groups=16, max_kernel=7, max_stride=2, max_dilation=2,
                        max_padding=2, max_extra=3, max_out_size=159, square=False,
                        square_kernel=False, bias=None, smooth=False, with_mask=None,
                        nonfinite=True, nonfinite_offsets=True, image_like=False, large=common.LARGE):
    """Calls of ``deform_conv2d``: weight groups and offset groups drawn independently.

    By default offsets mix continuous values, integers and values that land exactly on
    rows/columns -1, 0, H-1, H (torchvision's boundary cases). ``smooth=True`` keeps every
    sample point >= 0.1 from an integer coordinate (for finite differences). ``with_mask``:
    None draws v1 or v2, True/False forces one. The first tap of the first output always
    samples inside the image, so the output is never trivially zero. ``nonfinite``:
    NaN/Inf input cells; ``nonfinite_offsets``: NaN/Inf offset coordinates (torchvision
    crashes on a NaN one: it needs ``nonfinite_offsets=False``). A large "groups" draw
    has 3 to 8 channels per weight group and many offset groups.
    """
    dtype = draw(st.sampled_from(dtypes))
    stress = common.tier(draw, large, ("batch" if max_batch > common.SMALL_BATCH else "",
                                       "size" if max_out_size > 32 else "",
                                       "kernel" if max_kernel > common.SMALL_KERNEL else "",
                                       "groups" if max_group_channels > 2 and max_offset_groups > 2 else ""))
    n = common.draw_batch(draw, stress, max_batch)
    groups = draw(st.integers(1, max_groups))
    if stress == "groups":
        group_in = draw(st.integers(3, max_group_channels))
    else:
        group_in = draw(st.integers(min(3, max_group_channels) if image_like else 1,
                                    min(2 if not image_like else 3, max_group_channels)))
    group_out = draw(st.integers(1, 2))
    c = groups * group_in
    divisors = [g for g in range(1, min(c, max_offset_groups) + 1) if c % g == 0]
    if stress == "groups":
        divisors = [g for g in divisors if g > 2] or divisors
    offset_groups = draw(st.sampled_from(divisors))
    kernel = common.draw_kernel(draw, stress, max_kernel, square_kernel, low=3 if image_like else 1)
    stride, dilation, pad = common.draw_window(draw, kernel, max_stride, max_dilation, max_padding, square)
    h, w = common.draw_sizes(draw, kernel, dilation, pad, stride, max_extra,
                             common.draw_long_axis(draw, stress, max_out_size))
    geometry = conv_geometry("deform_conv2d", (n, 1, h, w), kernel, stride, pad, dilation)
    out = geometry.out_size
    mask_given = common.draw_optional(draw, with_mask)
    seed = draw(common.SEED)
    rng = np.random.default_rng(seed)
    taps = kernel[0] * kernel[1]
    base_y, base_x = _undeformed(geometry)
    shape = (n, offset_groups, taps, *out)
    dy = _deform_offsets(rng, shape, base_y, h, smooth)
    dx = _deform_offsets(rng, shape, base_x, w, smooth)
    # Land the first tap of output (0, 0) inside the image: the output is not all zero.
    inside = 0.5 if smooth else 0.0  # x.5 is both inside and away from the kinks
    dy[:, :, 0, 0, 0] = rng.integers(0, h) + inside - base_y[0, 0, 0]
    dx[:, :, 0, 0, 0] = rng.integers(0, w) + inside - base_x[0, 0, 0]
    offset = np.stack([dy, dx], axis=3).reshape(n, 2 * offset_groups * taps, *out)
    in_shape = (n, c, h, w)
    tensors = common.cast(
        dtype,
        input=common.pixels(rng, in_shape) if image_like else rng.standard_normal(in_shape),
        offset=offset,
        weight=common.weights(rng, (groups * group_out, group_in, *kernel), image_like, group_in * taps),
        bias=rng.standard_normal(groups * group_out) if common.draw_optional(draw, bias) else None,
        mask=rng.uniform(0.0, 1.0, (n, offset_groups * taps, *out)) if mask_given else None,
    )
    params = common.window_params(draw, stride, pad, dilation, square)
    if nonfinite and common.some_draws(draw):
        common.sprinkle_nonfinite(rng, tensors["input"])
    if nonfinite_offsets and common.some_draws(draw):
        first = tensors["offset"][:, :2, 0, 0].copy()
        common.sprinkle_nonfinite(rng, tensors["offset"], fraction=0.1)[:, :2, 0, 0] = first
    return Case("deform_conv2d", tensors, params, seed)


# ----------------------------------------------------------------------------- boundary

ROW_TARGETS = lambda h: [-1, 0, h - 1, h, 1.5, -0.5, h - 0.5, 1]  # noqa: E731
COL_TARGETS = lambda w: [w, 0.25, -1, w - 1, 2, 0, -0.75]  # noqa: E731


def _deform(name, seed, input_shape, weight_shape, offset_groups=1, rows=None, cols=None,
            mask=False, bias=False, needs=None, **params):
    """Offsets chosen so that tap k of output (y, x) samples row ``rows[...]`` and column
    ``cols[...]`` exactly (each list cycled over taps and positions; lengths 8 and 7 mix
    every row with every column)."""
    rng = np.random.default_rng(seed)
    n, c, h, w = input_shape
    params = {"stride": 1, "padding": 0, "dilation": 1, **params}
    geometry = conv_geometry("deform_conv2d", input_shape, weight_shape[2:], params["stride"],
                             params["padding"], params["dilation"])
    (kh, kw), (oh, ow) = geometry.kernel, geometry.out_size
    shape = (n, offset_groups, kh * kw, oh, ow)
    base_y, base_x = _undeformed(geometry)
    target_y = np.resize(np.asarray(ROW_TARGETS(h) if rows is None else rows, float), shape)
    target_x = np.resize(np.asarray(COL_TARGETS(w) if cols is None else cols, float), shape)
    dy = target_y - base_y
    dx = target_x - base_x
    tensors = {
        "input": rng.standard_normal(input_shape),
        "offset": np.stack([dy, dx], axis=3).reshape(n, 2 * offset_groups * kh * kw, oh, ow),
        "weight": rng.standard_normal(weight_shape),
        "bias": rng.standard_normal(weight_shape[0]) if bias else None,
        "mask": rng.choice([0.0, 0.5, 1.0, 0.25], (n, offset_groups * kh * kw, oh, ow)) if mask else None,
    }
    return Boundary(name, Case("deform_conv2d", tensors, params, seed), needs or {})


def deform_conv2d_boundary() -> list[Boundary]:
    nan_offset = _deform("a NaN in one offset coordinate (torchvision crashes here)", 157,
                         (1, 2, 4, 5), (2, 2, 2, 2), needs={"nonfinite_offsets": True})
    offset = nan_offset.case.tensors["offset"]
    offset[0, 0, 0, 0], offset[0, 3, 1, 2] = NAN, NAN  # a dy of one sample, a dx of another
    inf_offset = _deform("infinite offsets sample 0", 158, (1, 2, 4, 5), (2, 2, 2, 2),
                         needs={"nonfinite_offsets": True})
    offset = inf_offset.case.tensors["offset"]
    offset[0, 0, 0, 1], offset[0, 5, 2, 3], offset[0, 6, 1, 0] = INF, -INF, INF
    nan_input = _deform("NaN and inf input cells, read with bilinear weight 0 too", 159,
                        (1, 2, 4, 5), (2, 2, 2, 2), rows=[0, 1, 2, 3, -1, 4],
                        cols=[0, 1, 2, 3, 4, -1, 5], needs={"nonfinite": True})
    nan_input.case.tensors["input"][0, 0, 1, 1] = NAN
    nan_input.case.tensors["input"][0, 1, 0, 4] = INF
    return [
        _deform("samples on rows -1, 0, H-1, H and columns -1, 0, W-1, W (v1)", 150,
                (1, 2, 4, 5), (2, 2, 2, 2), bias=True),
        _deform("the same edges with a mask (v2), mask values 0 to 1", 151, (2, 2, 4, 5),
                (3, 2, 2, 2), mask=True),
        _deform("integer sample points: one-sided (right-hand) gradients", 152, (1, 1, 4, 4),
                (1, 1, 3, 3), rows=[-2, 0, 1, 3, 2, 4, -1, 1, 2], cols=[1, 0, 2, 3, 4, -1, 1, 2]),
        _zero_offsets(),
        _deform("weight groups (2) and offset groups (4) independent", 154, (1, 4, 4, 5),
                (2, 2, 2, 2), offset_groups=4, mask=True),
        _deform("stride, padding and dilation with edge samples", 155, (1, 2, 5, 6), (2, 2, 2, 3),
                stride=2, padding=1, dilation=(2, 1)),
        nan_offset,
        inf_offset,
        nan_input,
        _deform("a batch of 3, with a mask", 160, (3, 2, 4, 5), (2, 2, 2, 2), mask=True),
        _deform("an output row of 33: one past a 32-wide tile", 161, (1, 2, 2, 35), (2, 2, 2, 3)),
        _deform("8 offset groups over 8 channels, 2 weight groups", 162, (1, 8, 4, 4),
                (4, 4, 2, 2), offset_groups=8, mask=True),
    ]


def _zero_offsets() -> Boundary:
    rng = np.random.default_rng(153)
    tensors = {"input": rng.standard_normal((1, 2, 4, 5)), "offset": np.zeros((1, 18, 4, 5)),
               "weight": rng.standard_normal((2, 2, 3, 3)), "bias": rng.standard_normal(2),
               "mask": None}
    case = Case("deform_conv2d", tensors, {"stride": 1, "padding": 1, "dilation": 1}, 153)
    return Boundary("zero offsets: conv2d, integer samples everywhere", case)


def deform_conv2d_needs(case: Case) -> dict:
    """The strategy options a deform_conv2d configuration needs beyond the shared ones."""
    t = case.tensors
    taps = t["weight"].shape[2] * t["weight"].shape[3]
    return {"max_groups": t["input"].shape[1] // t["weight"].shape[1],
            "max_group_channels": t["weight"].shape[1],
            "max_offset_groups": t["offset"].shape[1] // (2 * taps),
            "with_mask": t["mask"] is not None}


# ----------------------------------------------------------------------------- golden


def seed_deform_arguments():
    """The deformable-convolution article: shift channels left / right / up with a 1x1
    deformable kernel, Go = 3."""
    x = np.arange(27, dtype=np.float64).reshape(1, 3, 3, 3)
    shifts = np.array([0, -1, 0, 1, -1, 0], dtype=np.float64)  # (dy, dx) per offset group
    offset = np.broadcast_to(shifts[None, :, None, None], (1, 6, 3, 3)).copy()
    weight = np.array(
        [[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float64
    ).reshape(5, 3, 1, 1)
    return x, offset, weight


SEED_DEFORM_OUTPUT = np.array(
    [[[0, 0, 1], [0, 3, 4], [0, 6, 7]],
     [[10, 11, 0], [13, 14, 0], [16, 17, 0]],
     [[10, 11, 1], [13, 17, 4], [16, 23, 7]],
     [[0, 0, 0], [18, 19, 20], [21, 22, 23]],
     [[10, 11, 0], [13, 14, 0], [16, 17, 0]]],
    dtype=np.float64,
)[None]



def deform_conv2d_goldens() -> list[Golden]:
    x, offset, weight = seed_deform_arguments()
    case = Case("deform_conv2d",
                {"input": x, "offset": offset, "weight": weight, "bias": None, "mask": None}, seed=1)
    return [Golden("deform article shifts", "the deformable-convolution article's printed output",
                   case, SEED_DEFORM_OUTPUT)]


# ----------------------------------------------------------------------------- reductions


def deform_conv2d_reduction(case: Case, check: str, out_shape) -> int:
    weight = case.tensors["weight"]
    forward = weight.shape[1] * common.kernel_taps(weight) * 4 + 1  # four corners a tap
    if check in ("d/dweight", "d/dbias"):
        return common.over_positions(out_shape)
    if check == "d/dinput":
        return weight.shape[0] * common.kernel_taps(weight)
    return forward


# ----------------------------------------------------------------------------- sample


def deform_conv2d_sample(dtype="float64", seed=0, smooth=False) -> Case:
    """Two offset groups, a mask; without ``smooth`` integer offsets and samples exactly
    on the border rows and columns, with it every sample point off the integer grid."""
    rng = np.random.default_rng(seed)
    n, c, h, w, go = 2, 4, 6, 5, 2
    offset = (rng.integers(-1, 2, (n, 2 * go * 9, h, w))
              + rng.uniform(0.1, 0.9, (n, 2 * go * 9, h, w)))
    if not smooth:
        offset[:, ::5] = np.round(offset[:, ::5])
        offset[:, 1, 0, :] = -1.0  # tap (0, 0), dx: x = -2 + ... lands on -1, -1, ...
    tensors = common.cast(dtype, input=rng.standard_normal((n, c, h, w)), offset=offset,
                          weight=rng.standard_normal((4, 2, 3, 3)), bias=rng.standard_normal(4),
                          mask=rng.uniform(0.0, 1.0, (n, go * 9, h, w)))
    return Case("deform_conv2d", tensors, dict(stride=1, padding=1, dilation=1), seed)
