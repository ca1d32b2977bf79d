"""Two-process DistributedDataParallel (gloo, CPU) gives a Conv2_5d and a DeformConv2d
layer the same gradients as one process on the whole batch."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _worker_module():
    spec = importlib.util.spec_from_file_location("ddp_worker", HERE / "ddp_worker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_process_ddp_matches_one_process(tmp_path):
    worker = _worker_module()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    store = tmp_path / "store"
    outputs = [tmp_path / f"grads{rank}.pt" for rank in range(2)]
    ranks = [subprocess.Popen([sys.executable, str(HERE / "ddp_worker.py"), str(rank), "2",
                               str(store), str(out)], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for rank, out in enumerate(outputs)]
    for rank in ranks:
        log, _ = rank.communicate(timeout=120)
        assert rank.returncode == 0, log.decode()

    net = worker.model()
    worker.loss(net, worker.batch()).backward()
    expected = {name: p.grad for name, p in net.named_parameters()}
    assert {"depth_conv.weight", "depth_conv.bias", "deform.weight", "deform.bias"} <= set(expected)
    for out in outputs:
        grads = torch.load(out)
        assert grads.keys() == expected.keys()
        for name, grad in grads.items():
            assert expected[name].abs().max() > 0, name
            torch.testing.assert_close(grad, expected[name], rtol=1e-12, atol=1e-14)
