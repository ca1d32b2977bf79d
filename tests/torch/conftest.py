"""One torch thread per test process (``make test`` runs pytest with ``-n 2`` on two
cores, and two processes of two threads each would stall on each other's barriers), and
a fixed torch seed before every test, so parameter initialisation is reproducible."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
