"""One torch thread per test process: ``make test`` runs pytest with ``-n 2`` on two
cores, and two processes of two threads each would stall on each other's barriers."""

import torch

torch.set_num_threads(1)
