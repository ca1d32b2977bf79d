"""What the case strategies of every op share: the two tiers, drawing window
arguments valid by construction, values and non-finite cells (:mod:`crossconv.strategies`
describes the strategies and their options)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from reference.common import output_length, tap_extent

DTYPES = ("float32", "float64")
SEED = st.integers(0, 2**32 - 1)

#: Fraction of draws in the large tier, by default.
LARGE = 0.1
#: The small tier's bounds (the ``max_*`` options bound both tiers).
SMALL_BATCH, SMALL_KERNEL = 2, 3
#: Output sides of the large tier's "size" stress: 32*m + r, r in 1..31.
TILE_MULTIPLES = (1, 2, 4)

#: Options that keep an argument at its default (a cases file's ``PINS``: op -> argument
#: -> options; verify reads them to check a function that lacks the argument).
PIN_STRIDE = {"max_stride": 1}
PIN_PADDING = {"max_padding": 0}
PIN_DILATION = {"max_dilation": 1}
PIN_BIAS = {"bias": False}


# ----------------------------------------------------------------------------- shared helpers


def tier(draw, large: float, stresses: tuple[str, ...]) -> str | None:
    """None for a small draw, else the one dimension a large draw stresses.

    The small tier is the shrink target: an integer below the threshold means small."""
    stresses = tuple(s for s in stresses if s)
    if large <= 0 or not stresses:
        return None
    if large < 1 and draw(st.integers(0, 99)) < 100 - round(100 * large):
        return None
    return draw(st.sampled_from(stresses))


def draw_batch(draw, stress, max_batch) -> int:
    if stress == "batch":
        return draw(st.integers(SMALL_BATCH + 1, max_batch))
    return draw(st.integers(1, min(SMALL_BATCH, max_batch)))


def long_side(draw, max_out_size) -> int:
    """An output side past a tile width: 32*m + r (33..63, 65..95, 129..159)."""
    multiples = [m for m in TILE_MULTIPLES if 32 * m + 1 <= max_out_size]
    m = draw(st.sampled_from(multiples))
    return 32 * m + draw(st.integers(1, min(31, max_out_size - 32 * m)))


def draw_long_axis(draw, stress, max_out_size) -> int | None:
    """Which axis (0 rows, 1 columns) a "size" draw makes long, with its output length."""
    if stress != "size":
        return None
    return draw(st.integers(0, 1)), long_side(draw, max_out_size)


def maybe_pair(draw, pair, square=False):
    """``pair`` as an int when both entries agree (half the time; always with ``square``),
    to exercise both forms."""
    if square:
        return pair[0]
    return pair[0] if pair[0] == pair[1] and draw(st.booleans()) else tuple(pair)


def window_params(draw, stride, pad, dilation, square=False) -> dict:
    """``stride``, ``padding`` and ``dilation`` as a call passes them, each an int or a
    pair (:func:`maybe_pair`)."""
    return dict(stride=maybe_pair(draw, stride, square), padding=maybe_pair(draw, pad, square),
                dilation=maybe_pair(draw, dilation, square))


def draw_pair(draw, low, high, square=False):
    first = draw(st.integers(low, high))
    return (first, first) if square else (first, draw(st.integers(low, high)))


def draw_kernel(draw, stress, max_kernel, square=False, odd=False, low=1):
    """The kernel: up to 3 in a small draw; a "kernel" draw has one side of 4 to 7."""
    small = min(SMALL_KERNEL, max_kernel)
    low = min(low, small)
    if stress == "kernel":
        sides = range(SMALL_KERNEL + (2 if odd else 1), max_kernel + 1, 2 if odd else 1)
        big = draw(st.sampled_from(sides))
        other = big if square else draw(st.integers(low, max_kernel))
        kernel = (big, other) if draw(st.booleans()) else (other, big)
    else:
        kernel = draw_pair(draw, low, small, square)
    if odd:
        kernel = tuple(k if k % 2 else k - 1 for k in kernel)
    return kernel


def draw_size(draw, kernel, dilation, pad, max_extra, first_read=None, stride=1, out=None):
    """An input length with ``out >= 1`` whose first window reads at least one input cell.

    ``first_read``: the first window's tap that must land inside (default: its first tap
    at or after row 0, ``ceil(pad/d)*d - pad`` past the padding). ``out``: the length that
    gives exactly that many outputs (a large draw's long side) instead of a drawn one.
    """
    span = tap_extent(kernel, dilation)
    if first_read is None:
        first_read = -(-pad // dilation) * dilation - pad
    low = max(1, span - 2 * pad, first_read + 1)
    if out is not None:
        return max(low, (out - 1) * stride + span - 2 * pad)
    return draw(st.integers(low, low + max_extra))


def draw_sizes(draw, kernel, dilation, pad, stride, max_extra, long_axis, first_read=None):
    """Both input sides; the long axis of a "size" draw gets its output length."""
    if first_read is None:
        first_read = (None, None)
    return tuple(
        draw_size(draw, k, d, p, max_extra, first_read[axis], s,
                  long_axis[1] if long_axis and long_axis[0] == axis else None)
        for axis, (k, d, p, s) in enumerate(zip(kernel, dilation, pad, stride))
    )


def draw_window(draw, kernel, max_stride, max_dilation, max_padding, square=False):
    stride = draw_pair(draw, 1, max_stride, square)
    dilation = draw_pair(draw, 1, max_dilation, square)
    # At most (k-1)*d, so some tap of the first window can reach the input.
    limits = [min(max_padding, (k - 1) * d) for k, d in zip(kernel, dilation)]
    if square:
        padding = (draw(st.integers(0, min(limits))),) * 2
    else:
        padding = tuple(draw(st.integers(0, limit)) for limit in limits)
    return stride, dilation, padding


def tap_extents(kernel, dilation) -> tuple[int, int]:
    return tuple(tap_extent(k, d) for k, d in zip(kernel, dilation))


def output_sizes(size, kernel, stride, pad, dilation) -> tuple[int, int]:
    """The output size of a window with ``pad`` on both sides."""
    return tuple(output_length(n, k, s, 2 * p, d)
                 for n, k, s, p, d in zip(size, kernel, stride, pad, dilation))


def cast(dtype, **arrays):
    return {k: (None if v is None else np.asarray(v, dtype=dtype)) for k, v in arrays.items()}


def draw_optional(draw, given):
    """Whether an optional tensor is passed: ``given`` None draws both, else as given."""
    return draw(st.booleans()) if given is None else bool(given)


def some_draws(draw) -> bool:
    """Half the draws: with a non-finite option on, the other half stay finite, so weight
    gradients (sums over every position, NaN as soon as one input is) are still checked
    against numbers in every run."""
    return draw(st.booleans())


def sprinkle_nonfinite(rng, values, fraction=0.04):
    """Set about ``fraction`` of ``values`` (in place) to NaN, -inf and +inf (2:1:1 for the
    default; pooling uses 5:3:2 of 10%). Runs after every other use of ``rng``, so the
    finite values are those drawn without the option."""
    special = rng.uniform(size=values.shape)
    values[special < fraction / 2] = np.nan
    values[(special >= fraction / 2) & (special < fraction * 0.8)] = -np.inf
    values[(special >= fraction * 0.8) & (special < fraction)] = np.inf
    return values


def pixels(rng, shape):
    """Image-like values: integers 0..255, as pixels (and activations of a first layer)
    are: a large common offset over which half-precision sums lose their low digits."""
    return rng.integers(0, 256, shape).astype(np.float64)


def weights(rng, shape, image_like, reduction):
    """Standard normal; scaled by 1/sqrt(reduction) for image-like data, so a sum over
    the window stays near the pixels' scale (no float16 overflow, as in a trained layer)."""
    values = rng.standard_normal(shape)
    return values / np.sqrt(reduction) if image_like else values


# ----------------------------------------------------------------------------- reductions
# ``<op>_reduction(case, check, out_shape)``: how many terms are summed into one element
# of output ``check`` ("forward" or "d/d<argument>"): the K of verify's half-precision
# tolerance.


def kernel_taps(weight) -> int:
    """``kh * kw`` of a weight ``[..., kh, kw]``."""
    return int(weight.shape[-1] * weight.shape[-2])


def over_positions(out_shape) -> int:
    """A parameter's gradient sums over every sample and output position."""
    return int(out_shape[0] * out_shape[-1] * out_shape[-2])


def conv_reduction(case, check: str, out_shape) -> int:
    """A convolution with ``weight [O, C, kh, kw]`` (and a bias): the forward sums ``C*kh*kw``
    products and the bias, the input gradient ``O*kh*kw``, a parameter's gradient every
    sample and output position."""
    weight = case.tensors["weight"]
    if check == "forward":
        return weight.shape[1] * kernel_taps(weight) + 1
    if check in ("d/dweight", "d/dbias"):
        return over_positions(out_shape)
    return weight.shape[0] * kernel_taps(weight)


def window_size(kernel_size) -> int:
    """``kh * kw`` of a pooling ``kernel_size`` (an int or a pair)."""
    kh, kw = (kernel_size, kernel_size) if np.ndim(kernel_size) == 0 else (tuple(kernel_size) * 2)[:2]
    return int(kh * kw)
