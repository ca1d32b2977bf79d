"""The golden cases of docs/ and the blog posts, and the anchors they came from."""

import importlib.util

import numpy as np
import pytest

from crossconv import goldens
from crossconv.cases import conv2d as conv2d_cases
from crossconv.cases import deform as deform_cases
from crossconv.compare import assert_close
from crossconv.registry import ORACLE

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is None, reason="torch/torchvision not installed"
)


@pytest.mark.parametrize("golden", goldens.GOLDENS, ids=[f"{g.op}-{g.name}" for g in goldens.GOLDENS])
def test_golden(golden):
    actual, expected = golden.run()
    assert_close(actual, expected, ORACLE, f"{golden.name} ({golden.source})")


@needs_torch
def test_seed_conv_output_is_what_torch_conv2d_module_gives():
    import torch

    conv = torch.nn.Conv2d(3, 2, 3, padding=1, stride=2).double()
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(conv2d_cases.SEED_CONV_WEIGHT))
        conv.bias.copy_(torch.from_numpy(conv2d_cases.SEED_CONV_BIAS))
        out = conv(torch.from_numpy(conv2d_cases.SEED_CONV_INPUT)).numpy()
    np.testing.assert_array_equal(out, conv2d_cases.SEED_CONV_OUTPUT)


@needs_torch
def test_seed_deform_output_is_what_torchvision_gives():
    import torch
    from torchvision.ops import deform_conv2d

    x, offset, weight = (torch.from_numpy(a) for a in deform_cases.seed_deform_arguments())
    np.testing.assert_array_equal(deform_conv2d(x, offset, weight).numpy(),
                                  deform_cases.SEED_DEFORM_OUTPUT)
