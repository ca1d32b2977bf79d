"""Scalar helpers shared by the loop oracles: float64 arrays, int pairs, padded reads."""

import numpy as np


def f64(a):
    """The array ``a`` as a float64 NumPy array (a copy only if needed)."""
    return np.asarray(a, dtype=np.float64)


def pair(v):
    """An int or a sequence of one or two ints as a tuple of two Python ints."""
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[-1])
    return int(v), int(v)


def padded_get(x, n, c, y, xx):
    """``x[n, c, y, xx]`` as a float, or 0.0 when (y, xx) lies outside the H x W plane.

    (y, xx) are coordinates of the *unpadded* input, so this reads the zero-padded
    input ``xpad`` at padded coordinates (y + pad_top, xx + pad_left).
    """
    H = x.shape[2]
    W = x.shape[3]
    if 0 <= y < H and 0 <= xx < W:
        return float(x[n, c, y, xx])
    return 0.0


def inside(x, y, xx):
    """True when (y, xx) is a cell of the H x W plane of the 4-D array ``x``."""
    return 0 <= y < x.shape[2] and 0 <= xx < x.shape[3]


def conv_out_size(size, pad_lo, pad_hi, k, stride, dilation):
    """``floor((size + pad_lo + pad_hi - dilation*(k-1) - 1) / stride) + 1``."""
    return (size + pad_lo + pad_hi - dilation * (k - 1) - 1) // stride + 1
