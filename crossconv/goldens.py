"""Golden cases: fixed calls with known outputs, from the blog posts and docs/, as data.

Each :class:`Golden` is a :class:`~crossconv.cases.Case` plus its expected output, written
out (from the blog posts, or by hand) or built by an independent construction named in
``source``. The reference's golden tests run them through the reference
(:meth:`Golden.run`); ``crossconv crosscheck`` and ``crossconv verify`` run them through
every implementation of their op, like any other case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import reference

from . import oracles
from .cases import Case, as_outputs


@dataclass(frozen=True)
class Golden:
    name: str
    source: str
    case: Case
    expected: np.ndarray

    @property
    def op(self) -> str:
        return self.case.op

    def run(self) -> tuple[np.ndarray, np.ndarray]:
        """``(actual, expected)``: the reference's output on the case, and the known one."""
        return as_outputs(self.case.call(getattr(reference, self.op)))[0], self.expected


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


POOL_INPUT = np.arange(1, 17, dtype=np.float64).reshape(1, 1, 4, 4)


def _customconv_map():
    rng = np.random.default_rng(7)
    return rng.uniform(-0.6, 0.6, (6, 5)), rng.uniform(-0.6, 0.6, (3, 3))


def _customconv(kernel: str) -> Golden:
    """N = C = O = 1, no bias, stride 1, padding 0 is the Torch7 question's ``nn.CustomConv(3)``; its
    linear kernel variant is SpatialConvolutionMM (conv2d) with zero bias."""
    x, w = _customconv_map()
    expected = oracles.seed_customconv_2d(x, w, kernel=kernel)[None, None]
    if kernel == "tan":
        case = Case("tanprod_conv2d", {"input": x[None, None], "weight": w[None, None], "bias": None},
                    seed=3)
        return Golden("CustomConv(3)", "the Torch7 question's nn.CustomConv structure", case, expected)
    case = Case("conv2d", {"input": x[None, None], "weight": w[None, None], "bias": np.zeros(1)},
                seed=3)
    return Golden("CustomConv linear", "the Torch7 question: linear variant == conv2d", case, expected)


def _conv2_5d_half_open_bins() -> Golden:
    """Worked by hand: centre depth 2, focal 1, pixel_size 0.5 -> s = 1, bins
    [0.5, 1.5), [1.5, 2.5), [2.5, 3.5). Taps at depths 1, 2, 1.5 fall in bins 0, 1, 1
    (1.5 is on the edge: half-open puts it in bin 1; closed intervals would count it in
    bin 0 as well, giving 1414)."""
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    depth = np.array([1.0, 2.0, 1.5]).reshape(1, 1, 1, 3)
    weight = np.array([[(l + 1) * 100 + j for j in range(3)] for l in range(3)],
                      dtype=np.float64).reshape(3, 1, 1, 1, 3)
    case = Case("conv2_5d", {"input": x, "depth": depth, "weight": weight, "bias": None},
                {"focal": 1.0, "pixel_size": 0.5}, seed=25)
    expected = np.array([[[[100 * 1 + 201 * 2 + 202 * 3]]]], dtype=np.float64)
    return Golden("half-open bins", "by hand (docs/conv2_5d.md bins)", case, expected)


def _conv2_5d_constant_depth() -> Golden:
    """Constant positive depth opens only the middle bin: conv2d with weight[(B-1)//2]."""
    rng = np.random.default_rng(3)
    x, weight = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((3, 4, 3, 3, 3))
    depth = np.full((2, 1, 6, 5), 1.7)
    case = Case("conv2_5d", {"input": x, "depth": depth, "weight": weight, "bias": None},
                {"padding": 1, "focal": 2.0}, seed=26)
    return Golden("constant depth", "docs/conv2_5d.md: == conv2d(middle bin)", case,
                  reference.conv2d(x, weight[1], padding=1))


def _seed_deform() -> Golden:
    x, offset, weight = seed_deform_arguments()
    case = Case("deform_conv2d",
                {"input": x, "offset": offset, "weight": weight, "bias": None, "mask": None}, seed=1)
    return Golden("deform article shifts", "the deformable-convolution article's printed output",
                  case, SEED_DEFORM_OUTPUT)


GOLDENS: tuple[Golden, ...] = (
    Golden("Conv2D post conv", "the hand-written Conv2D post; torch.nn.Conv2d",
           Case("conv2d", {"input": SEED_CONV_INPUT, "weight": SEED_CONV_WEIGHT, "bias": SEED_CONV_BIAS},
                {"stride": 2, "padding": 1}, seed=4),
           SEED_CONV_OUTPUT),
    Golden("box sums", "by hand: a 2x2 template of ones sums each 2x2 block of arange(16)",
           Case("xcorr2d", {"search": np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4),
                            "template": np.ones((1, 1, 2, 2))}, seed=2),
           np.array([[[[10, 14, 18], [26, 30, 34], [42, 46, 50]]]], dtype=np.float64)),
    _customconv("tan"),
    _customconv("linear"),
    _conv2_5d_half_open_bins(),
    _conv2_5d_constant_depth(),
    _seed_deform(),
    Golden("Pool2D post max", "docs/pool.md / the hand-written Pool2D post",
           Case("max_pool2d", {"input": POOL_INPUT}, {"kernel_size": 2, "stride": 2}, seed=5),
           np.array([[[[6.0, 8.0], [14.0, 16.0]]]])),
    Golden("Pool2D post avg", "docs/pool.md / the hand-written Pool2D post",
           Case("avg_pool2d", {"input": POOL_INPUT}, {"kernel_size": 2, "stride": 2}, seed=6),
           np.array([[[[3.5, 5.5], [11.5, 13.5]]]])),
)
