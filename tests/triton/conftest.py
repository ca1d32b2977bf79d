"""The Triton interpreter suite: ``make test`` runs it in its own pytest process with
``TRITON_INTERPRET=1`` (read when the kernel modules are imported). Without a GPU the
kernels package would pick the interpreter by itself; this refuses to run compiled
kernels by accident."""

import pytest
import torch

from torch_impl.kernels.common import INTERPRETING


def pytest_configure(config):
    # NumPy, running the kernels, warns where a GPU computes inf - inf or 0 * inf silently.
    config.addinivalue_line("filterwarnings", "ignore:invalid value encountered:RuntimeWarning")


def pytest_collection_modifyitems(config, items):
    if not INTERPRETING and not torch.cuda.is_available():
        raise pytest.UsageError("the Triton kernels are compiled but there is no GPU")
