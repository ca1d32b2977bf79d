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
keyword options narrow what is drawn (a backend without dilation passes ``max_dilation=1``).

They are also built not to be trivially zero: padding is at most ``(k-1)*dilation`` and
the input is large enough that the first window reads an input cell (so a 1x1 kernel is
drawn without padding), pooling inputs are at least ``dilation`` long (no window of pure
padding), deform's first sample lands inside the image, conv2_5d's first window centre
has a positive depth.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .cases import Case

DTYPES = ("float32", "float64")
SEED = st.integers(0, 2**32 - 1)


def _maybe_pair(draw, pair):
    """``pair`` as an int when both entries agree (half the time), to exercise both forms."""
    return pair[0] if pair[0] == pair[1] and draw(st.booleans()) else tuple(pair)


def _pair(draw, low, high):
    return draw(st.integers(low, high)), draw(st.integers(low, high))


def _size(draw, kernel, dilation, pad, max_extra, first_read=None):
    """An input length with ``out >= 1`` whose first window reads at least one input cell.

    ``first_read``: the first window's tap that must land inside (default: its first tap
    at or after row 0, ``ceil(pad/d)*d - pad`` past the padding).
    """
    span = dilation * (kernel - 1) + 1
    if first_read is None:
        first_read = -(-pad // dilation) * dilation - pad
    low = max(1, span - 2 * pad, first_read + 1)
    return draw(st.integers(low, low + max_extra))


def _window(draw, max_kernel, max_stride, max_dilation, max_padding, odd_kernel=False):
    kernel = _pair(draw, 1, max_kernel)
    if odd_kernel:
        kernel = tuple(k if k % 2 else k - 1 or 1 for k in kernel)
    stride = _pair(draw, 1, max_stride)
    dilation = _pair(draw, 1, max_dilation)
    # At most (k-1)*d, so some tap of the first window can reach the input.
    padding = tuple(draw(st.integers(0, min(max_padding, (k - 1) * d)))
                    for k, d in zip(kernel, dilation))
    return kernel, stride, dilation, padding


def _span(kernel, dilation):
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))


def _cast(dtype, **arrays):
    return {k: (None if v is None else np.asarray(v, dtype=dtype)) for k, v in arrays.items()}


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


@st.composite
def conv2d_cases(draw, dtypes=DTYPES, max_batch=2, max_groups=3, max_group_channels=3,
                 max_kernel=3, max_stride=3, max_dilation=2, max_padding=2, max_extra=4,
                 string_padding=True, nonfinite=False):
    """Calls of ``conv2d``: groups, every padding form (int, pair, "valid", "same"), bias or
    not; NaN/Inf input cells when ``nonfinite``."""
    dtype = draw(st.sampled_from(dtypes))
    n = draw(st.integers(1, max_batch))
    groups = draw(st.integers(1, max_groups))
    group_in, group_out = draw(st.integers(1, max_group_channels)), draw(st.integers(1, 2))
    kernel, stride, dilation, pad = _window(draw, max_kernel, max_stride, max_dilation, max_padding)
    padding = _maybe_pair(draw, pad)
    if string_padding and draw(st.integers(0, 3)) == 0:
        padding = draw(st.sampled_from(["valid", "same"]))
        if padding == "same":
            stride = (1, 1)
    before = pad
    if padding == "valid":
        before = (0, 0)
    elif padding == "same":
        before = tuple((s - 1) // 2 for s in _span(kernel, dilation))
    h, w = (_size(draw, k, d, p, max_extra) for k, d, p in zip(kernel, dilation, before))
    seed = draw(SEED)
    rng = np.random.default_rng(seed)
    out_channels = groups * group_out
    tensors = _cast(
        dtype,
        input=rng.standard_normal((n, groups * group_in, h, w)),
        weight=rng.standard_normal((out_channels, group_in, *kernel)),
        bias=rng.standard_normal(out_channels) if draw(st.booleans()) else None,
    )
    params = dict(stride=_maybe_pair(draw, stride), padding=padding,
                  dilation=_maybe_pair(draw, dilation), groups=groups)
    if nonfinite and _some_draws(draw):
        _sprinkle_nonfinite(rng, tensors["input"])
    return Case("conv2d", tensors, params, seed)


def _xcorr_cases(draw, op, dtypes, max_batch, max_channels, max_template, max_extra, nonfinite):
    dtype = draw(st.sampled_from(dtypes))
    n, c = draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels))
    th, tw = _pair(draw, 1, max_template)
    sh, sw = th + draw(st.integers(0, max_extra)), tw + draw(st.integers(0, max_extra))
    seed = draw(SEED)
    rng = np.random.default_rng(seed)
    tensors = _cast(dtype, search=rng.standard_normal((n, c, sh, sw)),
                    template=rng.standard_normal((n, c, th, tw)))
    if nonfinite and _some_draws(draw):
        _sprinkle_nonfinite(rng, tensors["search"])
    return Case(op, tensors, {}, seed)


@st.composite
def xcorr2d_cases(draw, dtypes=DTYPES, max_batch=2, max_channels=3, max_template=4, max_extra=6,
                  nonfinite=False):
    """Calls of ``xcorr2d``: template no larger than the search region; NaN/Inf search
    cells when ``nonfinite``."""
    return _xcorr_cases(draw, "xcorr2d", dtypes, max_batch, max_channels, max_template, max_extra,
                        nonfinite)


@st.composite
def xcorr2d_depthwise_cases(draw, dtypes=DTYPES, max_batch=2, max_channels=3, max_template=4,
                            max_extra=6, nonfinite=False):
    """Calls of ``xcorr2d_depthwise``; NaN/Inf search cells when ``nonfinite``."""
    return _xcorr_cases(draw, "xcorr2d_depthwise", dtypes, max_batch, max_channels,
                        max_template, max_extra, nonfinite)


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
def tanprod_conv2d_cases(draw, dtypes=DTYPES, max_batch=2, max_channels=2, max_out_channels=2,
                         max_kernel=3, max_stride=2, max_dilation=2, max_padding=1, max_extra=3,
                         zero_factors=0, nonfinite=False):
    """Calls of ``tanprod_conv2d`` with ``|x + w| <= 1.2`` (tan is well conditioned there).

    ``zero_factors``: this many times, an input cell is set to ``-w`` of a tap that reads
    it (when the drawn cell is not padding), making that factor exactly 0 (where the
    gradient must still be exact). ``nonfinite``: NaN/Inf input cells.
    """
    dtype = draw(st.sampled_from(dtypes))
    n, c = draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels))
    o = draw(st.integers(1, max_out_channels))
    kernel, stride, dilation, pad = _window(draw, max_kernel, max_stride, max_dilation, max_padding)
    span = _span(kernel, dilation)
    h, w = (_size(draw, k, d, p, max_extra) for k, d, p in zip(kernel, dilation, pad))
    seed = draw(SEED)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.6, 0.6, (n, c, h, w)).astype(dtype)
    weight = rng.uniform(-0.6, 0.6, (o, c, *kernel)).astype(dtype)
    out_size = tuple((ln + 2 * p - s) // st_ + 1 for ln, p, s, st_ in zip((h, w), pad, span, stride))
    _plant_zero_factors(rng, x, weight, stride, pad, dilation, out_size, zero_factors)
    bias = rng.standard_normal(o) if draw(st.booleans()) else None
    tensors = _cast(dtype, input=x, weight=weight, bias=bias)
    params = dict(stride=_maybe_pair(draw, stride), padding=_maybe_pair(draw, pad),
                  dilation=_maybe_pair(draw, dilation))
    if nonfinite and _some_draws(draw):
        _sprinkle_nonfinite(rng, tensors["input"])
    return Case("tanprod_conv2d", tensors, params, seed)


@st.composite
def conv2_5d_cases(draw, dtypes=DTYPES, max_batch=2, max_channels=2, max_out_channels=2,
                   max_bins=3, max_kernel=3, max_stride=2, max_dilation=2, max_extra=3,
                   nonfinite=False):
    """Calls of ``conv2_5d``.

    Depth is drawn on a grid of quarters (including 0 and negatives) with power-of-two
    ``focal`` and ``pixel_size``, so taps fall exactly on bin edges often, or uniformly in
    ``[0.5, 3]``; padding is at most ``(k//2) * dilation`` so some window centres are
    inside the image. ``nonfinite``: NaN/Inf depth and input cells (the first window's
    centre stays finite).
    """
    dtype = draw(st.sampled_from(dtypes))
    n, c = draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels))
    o, bins = draw(st.integers(1, max_out_channels)), draw(st.integers(1, max_bins))
    kernel, stride, dilation, _ = _window(draw, max_kernel, max_stride, max_dilation, 0,
                                          odd_kernel=True)
    pad = tuple(draw(st.integers(0, (k // 2) * d)) for k, d in zip(kernel, dilation))
    h, w = (_size(draw, k, d, p, max_extra, first_read=(k // 2) * d - p)
            for k, d, p in zip(kernel, dilation, pad))
    focal = draw(st.sampled_from([0.5, 1.0, 2.0, 4.0]))
    pixel_size = draw(st.sampled_from([0.5, 1.0, 2.0]))
    seed = draw(SEED)
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        depth = rng.integers(-1, 16, (n, 1, h, w)) * 0.25
    else:
        depth = rng.uniform(0.5, 3.0, (n, 1, h, w))
    # The first window's centre has a positive depth: its middle bin is open.
    depth[:, :, (kernel[0] // 2) * dilation[0] - pad[0], (kernel[1] // 2) * dilation[1] - pad[1]] = 1.5
    tensors = _cast(
        dtype,
        input=rng.standard_normal((n, c, h, w)),
        depth=depth,
        weight=rng.standard_normal((bins, o, c, *kernel)),
        bias=rng.standard_normal(o) if draw(st.booleans()) else None,
    )
    params = dict(stride=_maybe_pair(draw, stride), padding=_maybe_pair(draw, pad),
                  dilation=_maybe_pair(draw, dilation), focal=focal, pixel_size=pixel_size)
    if nonfinite and _some_draws(draw):
        _sprinkle_nonfinite(rng, tensors["input"])
        centre = (kernel[0] // 2) * dilation[0] - pad[0], (kernel[1] // 2) * dilation[1] - pad[1]
        _sprinkle_nonfinite(rng, tensors["depth"])[:, :, centre[0], centre[1]] = 1.5
    return Case("conv2_5d", tensors, params, seed)


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
def deform_conv2d_cases(draw, dtypes=DTYPES, max_batch=2, max_groups=2, max_group_channels=2,
                        max_kernel=3, max_stride=2, max_dilation=2, max_padding=2, max_extra=3,
                        smooth=False, with_mask=None, nonfinite=False, nonfinite_offsets=False):
    """Calls of ``deform_conv2d``: weight groups and offset groups drawn independently.

    By default offsets mix continuous values, integers and values that land exactly on
    rows/columns -1, 0, H-1, H (torchvision's boundary cases). ``smooth=True`` keeps every
    sample point >= 0.1 from an integer coordinate (for finite differences). ``with_mask``:
    None draws v1 or v2, True/False forces one. The first tap of the first output always
    samples inside the image, so the output is never trivially zero. ``nonfinite``:
    NaN/Inf input cells; ``nonfinite_offsets``: NaN/Inf offset coordinates (torchvision
    crashes on a NaN one, so neither is drawn unless asked for).
    """
    dtype = draw(st.sampled_from(dtypes))
    n = draw(st.integers(1, max_batch))
    groups = draw(st.integers(1, max_groups))
    group_in, group_out = draw(st.integers(1, max_group_channels)), draw(st.integers(1, 2))
    c = groups * group_in
    offset_groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
    kernel, stride, dilation, pad = _window(draw, max_kernel, max_stride, max_dilation, max_padding)
    span = _span(kernel, dilation)
    h, w = (_size(draw, k, d, p, max_extra) for k, d, p in zip(kernel, dilation, pad))
    out = tuple((ln + 2 * p - s) // st_ + 1 for ln, p, s, st_ in zip((h, w), pad, span, stride))
    mask_given = draw(st.booleans()) if with_mask is None else with_mask
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
    tensors = _cast(
        dtype,
        input=rng.standard_normal((n, c, h, w)),
        offset=offset,
        weight=rng.standard_normal((groups * group_out, group_in, *kernel)),
        bias=rng.standard_normal(groups * group_out) if draw(st.booleans()) else None,
        mask=rng.uniform(0.0, 1.0, (n, offset_groups * taps, *out)) if mask_given else None,
    )
    params = dict(stride=_maybe_pair(draw, stride), padding=_maybe_pair(draw, pad),
                  dilation=_maybe_pair(draw, dilation))
    if nonfinite and _some_draws(draw):
        _sprinkle_nonfinite(rng, tensors["input"])
    if nonfinite_offsets and _some_draws(draw):
        first = tensors["offset"][:, :2, 0, 0].copy()
        _sprinkle_nonfinite(rng, tensors["offset"], fraction=0.1)[:, :2, 0, 0] = first
    return Case("deform_conv2d", tensors, params, seed)


def _pool_values(rng, shape, distinct, nonfinite, ties):
    """Pooling inputs: with ties (small integers) half the time if ``ties``."""
    if distinct:  # separated by 0.1: no ties for finite differences to cross
        return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 1.0)
    values = rng.standard_normal(shape)
    if ties and rng.integers(2):  # never all zero
        values = rng.choice([-2.0, -1.0, 1.0, 2.0], shape)
    if nonfinite:
        _sprinkle_nonfinite(rng, values, fraction=0.1)
    return values


def _pool_window(draw, max_kernel, max_stride, max_dilation, max_extra):
    kernel = _pair(draw, 1, max_kernel)
    stride = None if draw(st.booleans()) else _pair(draw, 1, max_stride)
    dilation = _pair(draw, 1, max_dilation)
    pad = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    # An input at least `dilation` long keeps every window, ceil-mode ones included, off
    # pure padding (a window starting in the left padding reads a cell before `dilation`).
    size = tuple(_size(draw, k, d, p, max_extra, first_read=d - 1)
                 for k, d, p in zip(kernel, dilation, pad))
    return kernel, stride, dilation, pad, size


@st.composite
def max_pool2d_cases(draw, dtypes=DTYPES, max_batch=2, max_channels=2, max_kernel=3,
                     max_stride=3, max_dilation=2, max_extra=4, distinct=False, nonfinite=False):
    """Calls of ``max_pool2d``: ceil_mode, dilation, indices, ties; NaN/Inf when
    ``nonfinite``; all-distinct values when ``distinct``."""
    dtype = draw(st.sampled_from(dtypes))
    n, c = draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels))
    kernel, stride, dilation, pad, (h, w) = _pool_window(
        draw, max_kernel, max_stride, max_dilation, max_extra
    )
    seed = draw(SEED)
    rng = np.random.default_rng(seed)
    tensors = _cast(dtype, input=_pool_values(rng, (n, c, h, w), distinct, nonfinite, ties=True))
    params = dict(kernel_size=_maybe_pair(draw, kernel),
                  stride=None if stride is None else _maybe_pair(draw, stride),
                  padding=_maybe_pair(draw, pad), dilation=_maybe_pair(draw, dilation),
                  ceil_mode=draw(st.booleans()), return_indices=draw(st.booleans()))
    return Case("max_pool2d", tensors, params, seed)


@st.composite
def avg_pool2d_cases(draw, dtypes=DTYPES, max_batch=2, max_channels=2, max_kernel=3,
                     max_stride=3, max_extra=4, nonfinite=False):
    """Calls of ``avg_pool2d``: ceil_mode, count_include_pad, divisor_override."""
    dtype = draw(st.sampled_from(dtypes))
    n, c = draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels))
    kernel, stride, _, pad, (h, w) = _pool_window(draw, max_kernel, max_stride, 1, max_extra)
    seed = draw(SEED)
    rng = np.random.default_rng(seed)
    tensors = _cast(dtype, input=_pool_values(rng, (n, c, h, w), False, nonfinite, ties=False))
    params = dict(kernel_size=_maybe_pair(draw, kernel),
                  stride=None if stride is None else _maybe_pair(draw, stride),
                  padding=_maybe_pair(draw, pad), ceil_mode=draw(st.booleans()),
                  count_include_pad=draw(st.booleans()),
                  divisor_override=draw(st.sampled_from([None, None, 1, 2, 5, -3])))
    return Case("avg_pool2d", tensors, params, seed)
