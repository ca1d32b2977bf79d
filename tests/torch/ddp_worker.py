"""One rank of the two-process DDP check (``test_torch_ddp.py``), run as a script:
``python ddp_worker.py RANK WORLD_SIZE STORE_FILE OUT_FILE``.

The model, batch and loss are defined here once, for the ranks and for the test's
single-process run on the whole batch.
"""

import sys

import torch

from torch_impl import nn as tnn

BATCH = 4


class DepthThenDeform(torch.nn.Module):
    """Conv2_5d 3->4 then DeformConv2d 4->3 (offsets and mask given per sample)."""

    def __init__(self):
        super().__init__()
        self.depth_conv = tnn.Conv2_5d(3, 4, 3, padding=1, focal=2.0, dtype=torch.float64)
        self.deform = tnn.DeformConv2d(4, 3, 3, padding=1, dtype=torch.float64)

    def forward(self, x, depth, offset, mask):
        return self.deform(self.depth_conv(x, depth), offset, mask)


def model():
    torch.manual_seed(0)
    return DepthThenDeform()


def batch():
    g = torch.Generator().manual_seed(1)

    def rand(*shape, low=-1.0, high=1.0):
        return torch.rand(*shape, generator=g, dtype=torch.float64) * (high - low) + low

    return (rand(BATCH, 3, 6, 7), rand(BATCH, 1, 6, 7, low=0.5, high=2.0),
            rand(BATCH, 18, 6, 7, low=-1.5, high=1.5), rand(BATCH, 9, 6, 7, low=0.0, high=1.0))


def loss(net, tensors):
    """Mean over the batch: DDP's averaged gradients equal the whole batch's."""
    return net(*tensors).square().mean()


def main(rank, world_size, store, out):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                            world_size=world_size)
    try:
        net = model()
        ddp = DistributedDataParallel(net)
        share = BATCH // world_size
        local = [t[rank * share : (rank + 1) * share] for t in batch()]
        loss(ddp, local).backward()
        torch.save({name: p.grad for name, p in net.named_parameters()}, out)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
