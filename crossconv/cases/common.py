"""Hypothesis strategies that draw only valid calls of each operation.

Public: reuse them to test your own kernel against the reference::

    from hypothesis import given
    from crossconv.strategies import deform_conv2d_cases

    @given(deform_conv2d_cases(dtypes=("float32",), max_dilation=1))
    def test_mine(case):
        expected = case.call(reference.deform_conv2d)
        actual = case.call(my_deform_conv2d, convert=torch.from_numpy)

Every strategy returns :class:`crossconv.cases.Case` objects. Shapes and arguments are drawn
by Hypothesis (so they shrink); array values come from a drawn seed. Configurations are
built valid by construction: the spatial size is drawn from the range that gives an
output of at least 1x1, channel counts are products of the group counts, and so on. The
keyword options narrow what is drawn (a backend without dilation passes ``max_dilation=1``);
:data:`crossconv.strategy_options.OPTIONS` describes every one of them, and
``crossconv verify --op NAME --limit help`` lists them.

They are also built not to be trivially zero: padding is at most ``(k-1)*dilation`` and
the input is large enough that the first window reads an input cell (so a 1x1 kernel is
drawn without padding), pooling inputs are at least ``dilation`` long (no window of pure
padding), deform's first sample lands inside the image, conv2_5d's first window centre
has a positive depth.

Two tiers. Most draws (``1 - large`` of them) are small: batch 1-2, kernels up to 3,
outputs of a few cells, where every argument combination is cheap. The rest (``large``,
default 0.1) stress one dimension where real kernels break, within the ``max_*`` options:
a batch of 3 or more (odd ones included: chunked batch loops), one output side crossing
32, 64 or 128 by a remainder (tile remainders), kernels of 4 to 7, or an op's own one
(many channels and offset groups, templates past 16, many depth bins). Hypothesis shrinks
a large draw toward the small tier, so a counterexample stays large only if it must.
``large=0`` turns the tier off (slow interpreters).

Non-finite values (NaN, +inf, -inf in about half the draws) are on by default, as the contract (docs/)
defines every op on them; ``nonfinite=False`` (and for deform ``nonfinite_offsets=False``)
opts out.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .cases import Case

DTYPES = ("float32", "float64")
SEED = st.integers(0, 2**32 - 1)

#: Fraction of draws in the large tier, by default.
LARGE = 0.1
#: The small tier's bounds (the ``max_*`` options bound both tiers).
SMALL_BATCH, SMALL_KERNEL = 2, 3
#: Output sides of the large tier's "size" stress: 32*m + r, r in 1..31.
TILE_MULTIPLES = (1, 2, 4)


# ----------------------------------------------------------------------------- shared helpers


def _tier(draw, large: float, stresses: tuple[str, ...]) -> str | None:
    """None for a small draw, else the one dimension a large draw stresses.

    The small tier is the shrink target: an integer below the threshold means small."""
    stresses = tuple(s for s in stresses if s)
    if large <= 0 or not stresses:
        return None
    if large < 1 and draw(st.integers(0, 99)) < 100 - round(100 * large):
        return None
    return draw(st.sampled_from(stresses))


def _batch(draw, stress, max_batch) -> int:
    if stress == "batch":
        return draw(st.integers(SMALL_BATCH + 1, max_batch))
    return draw(st.integers(1, min(SMALL_BATCH, max_batch)))


def _long_side(draw, max_out_size) -> int:
    """An output side past a tile width: 32*m + r (33..63, 65..95, 129..159)."""
    multiples = [m for m in TILE_MULTIPLES if 32 * m + 1 <= max_out_size]
    m = draw(st.sampled_from(multiples))
    return 32 * m + draw(st.integers(1, min(31, max_out_size - 32 * m)))


def _long_axis(draw, stress, max_out_size) -> int | None:
    """Which axis (0 rows, 1 columns) a "size" draw makes long, with its output length."""
    if stress != "size":
        return None
    return draw(st.integers(0, 1)), _long_side(draw, max_out_size)


def _maybe_pair(draw, pair, square=False):
    """``pair`` as an int when both entries agree (half the time; always with ``square``),
    to exercise both forms."""
    if square:
        return pair[0]
    return pair[0] if pair[0] == pair[1] and draw(st.booleans()) else tuple(pair)


def _pair(draw, low, high, square=False):
    first = draw(st.integers(low, high))
    return (first, first) if square else (first, draw(st.integers(low, high)))


def _kernel(draw, stress, max_kernel, square=False, odd=False, low=1):
    """The kernel: up to 3 in a small draw; a "kernel" draw has one side of 4 to 7."""
    small = min(SMALL_KERNEL, max_kernel)
    low = min(low, small)
    if stress == "kernel":
        sides = range(SMALL_KERNEL + (2 if odd else 1), max_kernel + 1, 2 if odd else 1)
        big = draw(st.sampled_from(sides))
        other = big if square else draw(st.integers(low, max_kernel))
        kernel = (big, other) if draw(st.booleans()) else (other, big)
    else:
        kernel = _pair(draw, low, small, square)
    if odd:
        kernel = tuple(k if k % 2 else k - 1 for k in kernel)
    return kernel


def _size(draw, kernel, dilation, pad, max_extra, first_read=None, stride=1, out=None):
    """An input length with ``out >= 1`` whose first window reads at least one input cell.

    ``first_read``: the first window's tap that must land inside (default: its first tap
    at or after row 0, ``ceil(pad/d)*d - pad`` past the padding). ``out``: the length that
    gives exactly that many outputs (a large draw's long side) instead of a drawn one.
    """
    span = dilation * (kernel - 1) + 1
    if first_read is None:
        first_read = -(-pad // dilation) * dilation - pad
    low = max(1, span - 2 * pad, first_read + 1)
    if out is not None:
        return max(low, (out - 1) * stride + span - 2 * pad)
    return draw(st.integers(low, low + max_extra))


def _sizes(draw, kernel, dilation, pad, stride, max_extra, long_axis, first_read=None):
    """Both input sides; the long axis of a "size" draw gets its output length."""
    if first_read is None:
        first_read = (None, None)
    return tuple(
        _size(draw, k, d, p, max_extra, first_read[axis], s,
              long_axis[1] if long_axis and long_axis[0] == axis else None)
        for axis, (k, d, p, s) in enumerate(zip(kernel, dilation, pad, stride))
    )


def _window(draw, kernel, max_stride, max_dilation, max_padding, square=False):
    stride = _pair(draw, 1, max_stride, square)
    dilation = _pair(draw, 1, max_dilation, square)
    # At most (k-1)*d, so some tap of the first window can reach the input.
    limits = [min(max_padding, (k - 1) * d) for k, d in zip(kernel, dilation)]
    if square:
        padding = (draw(st.integers(0, min(limits))),) * 2
    else:
        padding = tuple(draw(st.integers(0, limit)) for limit in limits)
    return stride, dilation, padding


def _span(kernel, dilation):
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))


def _out(size, pad, span, stride):
    return tuple((n + 2 * p - s) // st_ + 1 for n, p, s, st_ in zip(size, pad, span, stride))


def _cast(dtype, **arrays):
    return {k: (None if v is None else np.asarray(v, dtype=dtype)) for k, v in arrays.items()}


def _optional(draw, given):
    """Whether an optional tensor is passed: ``given`` None draws both, else as given."""
    return draw(st.booleans()) if given is None else bool(given)


def _some_draws(draw) -> bool:
    """Half the draws: with a non-finite option on, the other half stay finite, so weight
    gradients (sums over every position, NaN as soon as one input is) are still checked
    against numbers in every run."""
    return draw(st.booleans())


def _sprinkle_nonfinite(rng, values, fraction=0.04):
    """Set about ``fraction`` of ``values`` (in place) to NaN, -inf and +inf (2:1:1 for the
    default; pooling uses 5:3:2 of 10%). Runs after every other use of ``rng``, so the
    finite values are those drawn without the option."""
    special = rng.uniform(size=values.shape)
    values[special < fraction / 2] = np.nan
    values[(special >= fraction / 2) & (special < fraction * 0.8)] = -np.inf
    values[(special >= fraction * 0.8) & (special < fraction)] = np.inf
    return values


def _pixels(rng, shape):
    """Image-like values: integers 0..255, as pixels (and activations of a first layer)
    are: a large common offset over which half-precision sums lose their low digits."""
    return rng.integers(0, 256, shape).astype(np.float64)


def _weights(rng, shape, image_like, reduction):
    """Standard normal; scaled by 1/sqrt(reduction) for image-like data, so a sum over
    the window stays near the pixels' scale (no float16 overflow, as in a trained layer)."""
    weights = rng.standard_normal(shape)
    return weights / np.sqrt(reduction) if image_like else weights


# ----------------------------------------------------------------------------- conv2d


@st.composite
def conv2d_cases(draw, dtypes=DTYPES, max_batch=7, max_groups=3, max_group_channels=8,
                 max_kernel=7, max_stride=3, max_dilation=2, max_padding=2, max_extra=4,
                 max_out_size=159, string_padding=True, square=False, square_kernel=False,
                 bias=None, nonfinite=True, image_like=False, large=LARGE):
    """Calls of ``conv2d``: groups, every padding form (int, pair, "valid", "same"), bias or
    not; NaN/Inf input cells in half the draws unless ``nonfinite=False``.

    ``image_like``: pixel-valued input (integers 0..255) over at least 3 channels and a
    3x3 kernel (reductions of 27 and more terms), for half precision.
    """
    dtype = draw(st.sampled_from(dtypes))
    stress = _tier(draw, large, ("batch" if max_batch > SMALL_BATCH else "",
                                 "size" if max_out_size > 32 else "",
                                 "kernel" if max_kernel > SMALL_KERNEL else "",
                                 "channels" if max_group_channels > 3 else ""))
    n = _batch(draw, stress, max_batch)
    groups = draw(st.integers(1, max_groups))
    low = min(3, max_group_channels) if image_like else 1
    if stress == "channels":
        group_in = draw(st.integers(4, max_group_channels))
    else:
        group_in = draw(st.integers(low, min(3, max_group_channels)))
    group_out = draw(st.integers(1, 2))
    kernel = _kernel(draw, stress, max_kernel, square_kernel, low=3 if image_like else 1)
    stride, dilation, pad = _window(draw, kernel, max_stride, max_dilation, max_padding, square)
    padding = _maybe_pair(draw, pad, square)
    if string_padding and draw(st.integers(0, 3)) == 0:
        padding = draw(st.sampled_from(["valid", "same"]))
        if padding == "same":
            stride = (1, 1)
    before = pad
    if padding == "valid":
        before = (0, 0)
    elif padding == "same":
        before = tuple((s - 1) // 2 for s in _span(kernel, dilation))
    h, w = _sizes(draw, kernel, dilation, before, stride, max_extra,
                  _long_axis(draw, stress, max_out_size))
    seed = draw(SEED)
    rng = np.random.default_rng(seed)
    out_channels = groups * group_out
    shape = (n, groups * group_in, h, w)
    tensors = _cast(
        dtype,
        input=_pixels(rng, shape) if image_like else rng.standard_normal(shape),
        weight=_weights(rng, (out_channels, group_in, *kernel), image_like,
                        group_in * kernel[0] * kernel[1]),
        bias=rng.standard_normal(out_channels) if _optional(draw, bias) else None,
    )
    params = dict(stride=_maybe_pair(draw, stride, square), padding=padding,
                  dilation=_maybe_pair(draw, dilation, square), groups=groups)
    if nonfinite and _some_draws(draw):
        _sprinkle_nonfinite(rng, tensors["input"])
    return Case("conv2d", tensors, params, seed)


# ----------------------------------------------------------------------------- xcorr


def _xcorr_cases(draw, op, dtypes, max_batch, max_channels, max_template, max_extra,
                 max_out_size, nonfinite, image_like, large):
    dtype = draw(st.sampled_from(dtypes))
    stress = _tier(draw, large, ("batch" if max_batch > SMALL_BATCH else "",
                                 "size" if max_out_size > 32 else "",
                                 "template" if max_template > 16 else ""))
    n = _batch(draw, stress, max_batch)
    c = draw(st.integers(min(3, max_channels) if image_like else 1, max_channels))
    small = min(4, max_template)
    if stress == "template":  # past the sizes where implementations switch to FFT
        big = draw(st.integers(17, max_template))
        other = draw(st.integers(1, max_template))
        th, tw = (big, other) if draw(st.booleans()) else (other, big)
    else:
        low = min(3, small) if image_like else 1
        th, tw = _pair(draw, low, small)
    extra = [draw(st.integers(0, max_extra)) for _ in range(2)]
    long_axis = _long_axis(draw, stress, max_out_size)
    if long_axis:
        extra[long_axis[0]] = long_axis[1] - 1
    sh, sw = th + extra[0], tw + extra[1]
    seed = draw(SEED)
    rng = np.random.default_rng(seed)
    search = _pixels(rng, (n, c, sh, sw)) if image_like else rng.standard_normal((n, c, sh, sw))
    reduction = (c if op == "xcorr2d" else 1) * th * tw
    tensors = _cast(dtype, search=search,
                    template=_weights(rng, (n, c, th, tw), image_like, reduction))
    if nonfinite and _some_draws(draw):
        _sprinkle_nonfinite(rng, tensors["search"])
    return Case(op, tensors, {}, seed)


@st.composite
def xcorr2d_cases(draw, dtypes=DTYPES, max_batch=7, max_channels=3, max_template=40,
                  max_extra=6, max_out_size=159, nonfinite=True, image_like=False, large=LARGE):
    """Calls of ``xcorr2d``: template no larger than the search region (up to 4x4 in a
    small draw, one side past 16 in a large "template" draw); NaN/Inf search cells."""
    return _xcorr_cases(draw, "xcorr2d", dtypes, max_batch, max_channels, max_template, max_extra,
                        max_out_size, nonfinite, image_like, large)


@st.composite
def xcorr2d_depthwise_cases(draw, dtypes=DTYPES, max_batch=7, max_channels=3, max_template=40,
                            max_extra=6, max_out_size=159, nonfinite=True, image_like=False,
                            large=LARGE):
    """Calls of ``xcorr2d_depthwise``; as :func:`xcorr2d_cases`."""
    return _xcorr_cases(draw, "xcorr2d_depthwise", dtypes, max_batch, max_channels,
                        max_template, max_extra, max_out_size, nonfinite, image_like, large)


# ----------------------------------------------------------------------------- tanprod


def _plant_zero_factors(rng, x, w, stride, padding, dilation, out_size, count):
    """Set ``count`` input cells to ``-w`` of a tap that reads them, so ``tan(x + w) == 0``."""
    n, c, h, wd = x.shape
    for _ in range(count):
        o, ci = rng.integers(w.shape[0]), rng.integers(c)
        i, j = rng.integers(w.shape[2]), rng.integers(w.shape[3])
        y, xo = rng.integers(out_size[0]), rng.integers(out_size[1])
        row = y * stride[0] - padding[0] + i * dilation[0]
        col = xo * stride[1] - padding[1] + j * dilation[1]
        if 0 <= row < h and 0 <= col < wd:
            x[rng.integers(n), ci, row, col] = -w[o, ci, i, j]


@st.composite
def tanprod_conv2d_cases(draw, dtypes=DTYPES, max_batch=7, max_channels=2, max_out_channels=2,
                         max_kernel=7, max_stride=2, max_dilation=2, max_padding=1, max_extra=3,
                         max_out_size=159, square=False, square_kernel=False, bias=None,
                         zero_factors=0, nonfinite=True, image_like=False, large=LARGE):
    """Calls of ``tanprod_conv2d`` with ``|x + w| <= 1.2`` (tan is well conditioned there).

    ``zero_factors``: this many times, an input cell is set to ``-w`` of a tap that reads
    it (when the drawn cell is not padding), making that factor exactly 0 (where the
    gradient must still be exact). ``nonfinite``: NaN/Inf input cells. ``image_like`` has
    no meaning for a product of tangents and is ignored.
    """
    dtype = draw(st.sampled_from(dtypes))
    stress = _tier(draw, large, ("batch" if max_batch > SMALL_BATCH else "",
                                 "size" if max_out_size > 32 else "",
                                 "kernel" if max_kernel > SMALL_KERNEL else ""))
    n = _batch(draw, stress, max_batch)
    c = draw(st.integers(1, 1 if stress == "kernel" else max_channels))  # long products: 1 channel
    o = draw(st.integers(1, max_out_channels))
    kernel = _kernel(draw, stress, max_kernel, square_kernel)
    stride, dilation, pad = _window(draw, kernel, max_stride, max_dilation, max_padding, square)
    h, w = _sizes(draw, kernel, dilation, pad, stride, max_extra,
                  _long_axis(draw, stress, max_out_size))
    seed = draw(SEED)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.6, 0.6, (n, c, h, w)).astype(dtype)
    weight = rng.uniform(-0.6, 0.6, (o, c, *kernel)).astype(dtype)
    out_size = _out((h, w), pad, _span(kernel, dilation), stride)
    _plant_zero_factors(rng, x, weight, stride, pad, dilation, out_size, zero_factors)
    b = rng.standard_normal(o) if _optional(draw, bias) else None
    tensors = _cast(dtype, input=x, weight=weight, bias=b)
    params = dict(stride=_maybe_pair(draw, stride, square), padding=_maybe_pair(draw, pad, square),
                  dilation=_maybe_pair(draw, dilation, square))
    if nonfinite and _some_draws(draw):
        _sprinkle_nonfinite(rng, tensors["input"])
    return Case("tanprod_conv2d", tensors, params, seed)


# ----------------------------------------------------------------------------- conv2_5d

FOCALS = (0.5, 1.0, 2.0, 4.0)
PIXEL_SIZES = (0.5, 1.0, 2.0)


@st.composite
def conv2_5d_cases(draw, dtypes=DTYPES, max_batch=7, max_channels=2, max_out_channels=2,
                   max_bins=7, bins_equal_kernel=False, max_kernel=7, max_stride=2,
                   max_dilation=2, max_padding=3, max_extra=3, max_out_size=159, square=False,
                   square_kernel=False, bias=None, focal=None, pixel_size=None, nonfinite=True,
                   image_like=False, large=LARGE):
    """Calls of ``conv2_5d``.

    Depth is drawn on a grid of quarters (including 0 and negatives) with power-of-two
    ``focal`` and ``pixel_size``, so taps fall exactly on bin edges often, or uniformly in
    ``[0.5, 3]``; padding is at most ``(k//2) * dilation`` so some window centres are
    inside the image. ``bins_equal_kernel``: B = kh, as the paper and the 2.5D tutorial
    use. ``focal`` / ``pixel_size``: None draws them from a few powers of two, a number
    fixes them. ``nonfinite``: NaN/Inf depth and input cells (the first window's centre
    stays finite).
    """
    dtype = draw(st.sampled_from(dtypes))
    kernel_limit = min(max_kernel, max_bins) if bins_equal_kernel else max_kernel
    stress = _tier(draw, large, ("batch" if max_batch > SMALL_BATCH else "",
                                 "size" if max_out_size > 32 else "",
                                 "kernel" if kernel_limit >= SMALL_KERNEL + 2 else "",
                                 "bins" if max_bins > 3 and not bins_equal_kernel else ""))
    n = _batch(draw, stress, max_batch)
    c = draw(st.integers(min(3, max_channels) if image_like else 1, max_channels))
    o = draw(st.integers(1, max_out_channels))
    kernel = _kernel(draw, stress, kernel_limit, square_kernel, odd=True,
                     low=3 if image_like else 1)
    if bins_equal_kernel:
        bins = kernel[0]
    elif stress == "bins":
        bins = draw(st.integers(4, max_bins))
    else:
        bins = draw(st.integers(1, min(3, max_bins)))
    stride, dilation, _ = _window(draw, kernel, max_stride, max_dilation, 0, square)
    limits = [min(max_padding, (k // 2) * d) for k, d in zip(kernel, dilation)]
    if square:
        pad = (draw(st.integers(0, min(limits))),) * 2
    else:
        pad = tuple(draw(st.integers(0, limit)) for limit in limits)
    centre = tuple((k // 2) * d - p for k, d, p in zip(kernel, dilation, pad))
    h, w = _sizes(draw, kernel, dilation, pad, stride, max_extra,
                  _long_axis(draw, stress, max_out_size), first_read=centre)
    focal = draw(st.sampled_from(FOCALS)) if focal is None else float(focal)
    pixel_size = draw(st.sampled_from(PIXEL_SIZES)) if pixel_size is None else float(pixel_size)
    seed = draw(SEED)
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        depth = rng.integers(-1, 16, (n, 1, h, w)) * 0.25
    else:
        depth = rng.uniform(0.5, 3.0, (n, 1, h, w))
    # The first window's centre has a positive depth: its middle bin is open.
    depth[:, :, centre[0], centre[1]] = 1.5
    shape = (n, c, h, w)
    tensors = _cast(
        dtype,
        input=_pixels(rng, shape) if image_like else rng.standard_normal(shape),
        depth=depth,
        weight=_weights(rng, (bins, o, c, *kernel), image_like, c * kernel[0] * kernel[1]),
        bias=rng.standard_normal(o) if _optional(draw, bias) else None,
    )
    params = dict(stride=_maybe_pair(draw, stride, square), padding=_maybe_pair(draw, pad, square),
                  dilation=_maybe_pair(draw, dilation, square), focal=focal, pixel_size=pixel_size)
    if nonfinite and _some_draws(draw):
        _sprinkle_nonfinite(rng, tensors["input"])
        _sprinkle_nonfinite(rng, tensors["depth"])[:, :, centre[0], centre[1]] = 1.5
    return Case("conv2_5d", tensors, params, seed)


# ----------------------------------------------------------------------------- deform


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
def deform_conv2d_cases(draw, dtypes=DTYPES, max_batch=7, max_groups=2, max_group_channels=8,
                        max_offset_groups=16, max_kernel=7, max_stride=2, max_dilation=2,
                        max_padding=2, max_extra=3, max_out_size=159, square=False,
                        square_kernel=False, bias=None, smooth=False, with_mask=None,
                        nonfinite=True, nonfinite_offsets=True, image_like=False, large=LARGE):
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
    stress = _tier(draw, large, ("batch" if max_batch > SMALL_BATCH else "",
                                 "size" if max_out_size > 32 else "",
                                 "kernel" if max_kernel > SMALL_KERNEL else "",
                                 "groups" if max_group_channels > 2 and max_offset_groups > 2 else ""))
    n = _batch(draw, stress, max_batch)
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
    kernel = _kernel(draw, stress, max_kernel, square_kernel, low=3 if image_like else 1)
    stride, dilation, pad = _window(draw, kernel, max_stride, max_dilation, max_padding, square)
    span = _span(kernel, dilation)
    h, w = _sizes(draw, kernel, dilation, pad, stride, max_extra,
                  _long_axis(draw, stress, max_out_size))
    out = _out((h, w), pad, span, stride)
    mask_given = _optional(draw, with_mask)
    seed = draw(SEED)
    rng = np.random.default_rng(seed)
    taps = kernel[0] * kernel[1]
    tap_rows = np.repeat(np.arange(kernel[0]), kernel[1])[:, None, None]
    tap_cols = np.tile(np.arange(kernel[1]), kernel[0])[:, None, None]
    base_y = np.arange(out[0])[None, :, None] * stride[0] - pad[0] + tap_rows * dilation[0]
    base_x = np.arange(out[1])[None, None, :] * stride[1] - pad[1] + tap_cols * dilation[1]
    shape = (n, offset_groups, taps, *out)
    dy = _deform_offsets(rng, shape, base_y, h, smooth)
    dx = _deform_offsets(rng, shape, base_x, w, smooth)
    # Land the first tap of output (0, 0) inside the image: the output is not all zero.
    inside = 0.5 if smooth else 0.0  # x.5 is both inside and away from the kinks
    dy[:, :, 0, 0, 0] = rng.integers(0, h) + inside - base_y[0, 0, 0]
    dx[:, :, 0, 0, 0] = rng.integers(0, w) + inside - base_x[0, 0, 0]
    offset = np.stack([dy, dx], axis=3).reshape(n, 2 * offset_groups * taps, *out)
    in_shape = (n, c, h, w)
    tensors = _cast(
        dtype,
        input=_pixels(rng, in_shape) if image_like else rng.standard_normal(in_shape),
        offset=offset,
        weight=_weights(rng, (groups * group_out, group_in, *kernel), image_like, group_in * taps),
        bias=rng.standard_normal(groups * group_out) if _optional(draw, bias) else None,
        mask=rng.uniform(0.0, 1.0, (n, offset_groups * taps, *out)) if mask_given else None,
    )
    params = dict(stride=_maybe_pair(draw, stride, square), padding=_maybe_pair(draw, pad, square),
                  dilation=_maybe_pair(draw, dilation, square))
    if nonfinite and _some_draws(draw):
        _sprinkle_nonfinite(rng, tensors["input"])
    if nonfinite_offsets and _some_draws(draw):
        first = tensors["offset"][:, :2, 0, 0].copy()
        _sprinkle_nonfinite(rng, tensors["offset"], fraction=0.1)[:, :2, 0, 0] = first
    return Case("deform_conv2d", tensors, params, seed)


# ----------------------------------------------------------------------------- pooling


def _pool_values(rng, shape, distinct, nonfinite, ties, image_like):
    """Pooling inputs: with ties (small integers) half the time if ``ties``."""
    if distinct:  # separated by 0.1: no ties for finite differences to cross
        return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 1.0)
    values = _pixels(rng, shape) if image_like else rng.standard_normal(shape)
    if ties and rng.integers(2):  # never all zero
        values = rng.choice([-2.0, -1.0, 1.0, 2.0], shape)
    if nonfinite:
        _sprinkle_nonfinite(rng, values, fraction=0.1)
    return values


def _pool_window(draw, stress, max_kernel, max_stride, max_dilation, max_padding, max_extra,
                 max_out_size, stride_none, square):
    kernel = _kernel(draw, stress, max_kernel, square)
    none = draw(st.booleans()) if stride_none is None else bool(stride_none)
    stride = None if none else _pair(draw, 1, max_stride, square)
    dilation = _pair(draw, 1, max_dilation, square)
    limits = [min(max_padding, k // 2) for k in kernel]
    if square:
        pad = (draw(st.integers(0, min(limits))),) * 2
    else:
        pad = tuple(draw(st.integers(0, limit)) for limit in limits)
    # An input at least `dilation` long keeps every window, ceil-mode ones included, off
    # pure padding (a window starting in the left padding reads a cell before `dilation`).
    size = _sizes(draw, kernel, dilation, pad, kernel if stride is None else stride, max_extra,
                  _long_axis(draw, stress, max_out_size), first_read=tuple(d - 1 for d in dilation))
    return kernel, stride, dilation, pad, size


def _choose(draw, value):
    """A boolean argument: None draws both, True/False fixes it."""
    return draw(st.booleans()) if value is None else bool(value)


def _pool_stresses(max_batch, max_out_size, max_kernel):
    return ("batch" if max_batch > SMALL_BATCH else "", "size" if max_out_size > 32 else "",
            "kernel" if max_kernel > SMALL_KERNEL else "")


@st.composite
def max_pool2d_cases(draw, dtypes=DTYPES, max_batch=7, max_channels=2, max_kernel=7,
                     max_stride=3, max_dilation=2, max_padding=3, max_extra=4, max_out_size=159,
                     square=False, stride_none=None, ceil_mode=None, return_indices=None,
                     distinct=False, nonfinite=True, image_like=False, large=LARGE):
    """Calls of ``max_pool2d``: ceil_mode, dilation, indices, ties; NaN/Inf unless
    ``nonfinite=False``; all-distinct values when ``distinct``. ``stride_none``,
    ``ceil_mode``, ``return_indices``: None draws both, True/False fixes them."""
    dtype = draw(st.sampled_from(dtypes))
    stress = _tier(draw, large, _pool_stresses(max_batch, max_out_size, max_kernel))
    n, c = _batch(draw, stress, max_batch), draw(st.integers(1, max_channels))
    kernel, stride, dilation, pad, (h, w) = _pool_window(
        draw, stress, max_kernel, max_stride, max_dilation, max_padding, max_extra, max_out_size,
        stride_none, square,
    )
    seed = draw(SEED)
    rng = np.random.default_rng(seed)
    tensors = _cast(dtype, input=_pool_values(rng, (n, c, h, w), distinct, nonfinite, ties=True,
                                              image_like=image_like))
    params = dict(kernel_size=_maybe_pair(draw, kernel, square),
                  stride=None if stride is None else _maybe_pair(draw, stride, square),
                  padding=_maybe_pair(draw, pad, square),
                  dilation=_maybe_pair(draw, dilation, square),
                  ceil_mode=_choose(draw, ceil_mode), return_indices=_choose(draw, return_indices))
    return Case("max_pool2d", tensors, params, seed)


DIVISOR_OVERRIDES = (None, None, 1, 2, 5, -3)


@st.composite
def avg_pool2d_cases(draw, dtypes=DTYPES, max_batch=7, max_channels=2, max_kernel=7,
                     max_stride=3, max_padding=3, max_extra=4, max_out_size=159, square=False,
                     stride_none=None, ceil_mode=None, count_include_pad=None,
                     divisor_override=True, nonfinite=True, image_like=False, large=LARGE):
    """Calls of ``avg_pool2d``: ceil_mode, count_include_pad, divisor_override
    (``divisor_override=False`` never passes one)."""
    dtype = draw(st.sampled_from(dtypes))
    stress = _tier(draw, large, _pool_stresses(max_batch, max_out_size, max_kernel))
    n, c = _batch(draw, stress, max_batch), draw(st.integers(1, max_channels))
    kernel, stride, _, pad, (h, w) = _pool_window(
        draw, stress, max_kernel, max_stride, 1, max_padding, max_extra, max_out_size,
        stride_none, square,
    )
    seed = draw(SEED)
    rng = np.random.default_rng(seed)
    tensors = _cast(dtype, input=_pool_values(rng, (n, c, h, w), False, nonfinite, ties=False,
                                              image_like=image_like))
    params = dict(kernel_size=_maybe_pair(draw, kernel, square),
                  stride=None if stride is None else _maybe_pair(draw, stride, square),
                  padding=_maybe_pair(draw, pad, square), ceil_mode=_choose(draw, ceil_mode),
                  count_include_pad=_choose(draw, count_include_pad),
                  divisor_override=(draw(st.sampled_from(DIVISOR_OVERRIDES)) if divisor_override
                                    else None))
    return Case("avg_pool2d", tensors, params, seed)
