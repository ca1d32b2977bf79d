"""Golden cases: fixed inputs with known outputs, from the seeds and SPEC.md.

Each :class:`Golden` computes ``(actual, expected)`` with the reference; the expected
values are written out (from the seed posts, or by hand) or come from an independent
construction named in ``source``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import reference

from . import oracles


@dataclass(frozen=True)
class Golden:
    op: str
    name: str
    source: str
    run: Callable[[], tuple[np.ndarray, np.ndarray]]


# Seed 004: a 3-channel 5x5 input, two 3x3x3 kernels, bias [1, 0], padding 1, stride 2.
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


def _seed_conv():
    actual = reference.conv2d(SEED_CONV_INPUT, SEED_CONV_WEIGHT, SEED_CONV_BIAS, stride=2, padding=1)
    return actual, SEED_CONV_OUTPUT


def seed_deform_arguments():
    """Seed 001: shift channels left / right / up with a 1x1 deformable kernel, Go = 3."""
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


def _seed_deform():
    return reference.deform_conv2d(*seed_deform_arguments()), SEED_DEFORM_OUTPUT


POOL_INPUT = np.arange(1, 17, dtype=np.float64).reshape(1, 1, 4, 4)


def _seed_max_pool():
    return reference.max_pool2d(POOL_INPUT, 2, stride=2), np.array([[[[6.0, 8.0], [14.0, 16.0]]]])


def _seed_avg_pool():
    return reference.avg_pool2d(POOL_INPUT, 2, stride=2), np.array([[[[3.5, 5.5], [11.5, 13.5]]]])


def _xcorr_box_sums():
    """A 2x2 template of ones sums each 2x2 block of arange(16): worked by hand."""
    search = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    expected = np.array([[[[10, 14, 18], [26, 30, 34], [42, 46, 50]]]], dtype=np.float64)
    return reference.xcorr2d(search, np.ones((1, 1, 2, 2))), expected


def _customconv_map():
    rng = np.random.default_rng(7)
    return rng.uniform(-0.6, 0.6, (6, 5)), rng.uniform(-0.6, 0.6, (3, 3))


def _customconv_tan():
    """N = C = O = 1, no bias, stride 1, padding 0 is the seed's ``nn.CustomConv(3)``."""
    x, w = _customconv_map()
    actual = reference.tanprod_conv2d(x[None, None], w[None, None])[0, 0]
    return actual, oracles.seed_customconv_2d(x, w, kernel="tan")


def _customconv_linear():
    """The seed's linear kernel variant equals SpatialConvolutionMM (conv2d), zero bias."""
    x, w = _customconv_map()
    actual = reference.conv2d(x[None, None], w[None, None], np.zeros(1))[0, 0]
    return actual, oracles.seed_customconv_2d(x, w, kernel="linear")


def _conv2_5d_half_open_bins():
    """Worked by hand: centre depth 2, focal 1, pixel_size 0.5 -> s = 1, bins
    [0.5, 1.5), [1.5, 2.5), [2.5, 3.5). Taps at depths 1, 2, 1.5 fall in bins 0, 1, 1
    (1.5 is on the edge: half-open puts it in bin 1; closed intervals would count it in
    bin 0 as well, giving 1414)."""
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    depth = np.array([1.0, 2.0, 1.5]).reshape(1, 1, 1, 3)
    weight = np.array([[(l + 1) * 100 + j for j in range(3)] for l in range(3)],
                      dtype=np.float64).reshape(3, 1, 1, 1, 3)
    out = reference.conv2_5d(x, depth, weight, focal=1.0, pixel_size=0.5)
    return out, np.array([[[[100 * 1 + 201 * 2 + 202 * 3]]]], dtype=np.float64)


def _conv2_5d_constant_depth():
    """Constant positive depth opens only the middle bin: conv2d with weight[(B-1)//2]."""
    rng = np.random.default_rng(3)
    x, weight = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((3, 4, 3, 3, 3))
    depth = np.full((2, 1, 6, 5), 1.7)
    out = reference.conv2_5d(x, depth, weight, padding=1, focal=2.0)
    return out, reference.conv2d(x, weight[1], padding=1)


GOLDENS: tuple[Golden, ...] = (
    Golden("conv2d", "seed 004 conv", "seed 004; torch.nn.Conv2d", _seed_conv),
    Golden("xcorr2d", "box sums", "by hand", _xcorr_box_sums),
    Golden("tanprod_conv2d", "CustomConv(3)", "seed 003 nn.CustomConv structure", _customconv_tan),
    Golden("tanprod_conv2d", "CustomConv linear", "seed 003: linear variant == conv2d",
           _customconv_linear),
    Golden("conv2_5d", "half-open bins", "by hand (SPEC.md bins)", _conv2_5d_half_open_bins),
    Golden("conv2_5d", "constant depth", "SPEC.md: == conv2d(middle bin)", _conv2_5d_constant_depth),
    Golden("deform_conv2d", "seed 001 shifts", "seed 001 printed output", _seed_deform),
    Golden("max_pool2d", "seed 004 max", "SPEC.md / seed 004", _seed_max_pool),
    Golden("avg_pool2d", "seed 004 avg", "SPEC.md / seed 004", _seed_avg_pool),
)
