"""torch_impl's window geometry functions read exactly what the reference's Geometry reads."""

import numpy as np
import pytest
import torch

from reference.common import conv_geometry, pool_geometry
from torch_impl import geometry as tg


@pytest.mark.parametrize("g", [
    conv_geometry("op", (2, 3, 7, 6), (3, 2), (2, 1), (1, 2), (2, 1)),
    conv_geometry("op", (1, 1, 5, 8), (2, 4), 1, "same", (1, 2), allow_string_padding=True),
    pool_geometry("op", (1, 1, 7, 7), 3, 2, 1, 1, True),  # ceil-mode overhang in pad_after
])
def test_pad_tap_unpad_and_positions_match_the_reference(g):
    x = torch.rand(2, 3, *g.in_size, dtype=torch.float64)
    xpad = tg.pad(x, g)
    np.testing.assert_array_equal(xpad.numpy(), g.pad(x.numpy()))
    assert tuple(xpad.shape[2:]) == tg.padded_size(g)
    assert torch.equal(tg.unpad(xpad, g), x)
    for i, j in g.taps():
        np.testing.assert_array_equal(tg.tap(xpad, g, i, j).numpy(), g.tap(xpad.numpy(), i, j))
    for axis in (0, 1):
        taps = torch.arange(g.kernel[axis])
        np.testing.assert_array_equal(tg.positions(g, axis, taps).numpy(),
                                      np.stack([g.positions(axis, t) for t in taps.tolist()]))
