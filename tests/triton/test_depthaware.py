"""Triton depth-aware kernels against the float64 reference (interpreter): the contract
functions of ``torch_impl.kernels.depthaware`` on boundary cases (even kernels, centres
outside the image, ties, NaN and infinite depth, alpha = 0), block edges, the split weight
gradient, low precision, and the public ops with ``impl="triton"``. (Drawn cases and the
empty batch: the generated torch-triton tests of tests/test_parity.py.)"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from kernel_cases import check_case

import reference
import torch_impl
from crossconv.cases import Case
from crossconv.cases.depthaware import depthaware_avg_pool2d_boundary, depthaware_conv2d_boundary
from crossconv.compare import assert_close, assert_nontrivial
from crossconv.registry import OPS
from torch_impl.kernels import depthaware as kernels

ROOT = Path(__file__).resolve().parents[2]
CONV, POOL = "depthaware_conv2d", "depthaware_avg_pool2d"
#: The boundary cases run here (the interpreter is slow; the native tests run them all).
CONV_EDGES = ("even kernel 4x4", "dilation 2", "padding 2: the border", "tied depths",
              "a NaN tap", "an inf tap", "-inf corner", "alpha = 0")
POOL_EDGES = ("border windows share centres, count_include_pad=True", "2x2 windows",
              "a NaN depth", "an inf depth", "alpha = 0")
BOUNDARY = ([b for b in depthaware_conv2d_boundary() if any(e in b.name for e in CONV_EDGES)]
            + [b for b in depthaware_avg_pool2d_boundary()
               if any(e in b.name for e in POOL_EDGES)])


def check(case: Case, low: str | None = None):
    """The kernels' forward and gradients against the reference (kernel_cases.check_case),
    on the case's values rounded to ``low`` when given."""
    with np.errstate(all="ignore"):
        check_case(case, low)


def _random(op, shapes, seed=0, dtype=np.float64, **params):
    rng = np.random.default_rng(seed)
    tensors = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    tensors["depth"] = rng.uniform(0.5, 3.0, shapes["depth"]).astype(dtype)
    if op == CONV:
        tensors.setdefault("bias", None)
    return Case(op, tensors, params, seed)


@pytest.mark.parametrize("boundary", BOUNDARY, ids=[b.name for b in BOUNDARY])
def test_boundary_cases(boundary):
    check(boundary.case)


@pytest.mark.parametrize("what, size", [
    ("positions", kernels.POSITIONS[0][1] + 1), ("out", kernels.OUT_CHANNELS[0][1] + 1),
    ("in", kernels.IN_CHANNELS[0][1] + 1),
])
def test_conv_block_edges(what, size):
    """One above the interpreter's blocks of positions (output positions and input cells),
    out channels and in channels: two blocks, the second nearly empty."""
    width = size if what == "positions" else 4
    c = size if what == "in" else 2
    o = size if what == "out" else 2
    check(_random(CONV, {"input": (1, c, 1, width), "depth": (1, 1, 1, width),
                         "weight": (o, c, 1, 3)}, seed=size, dtype=np.float32,
                  padding=(0, 1), alpha=1.0))


def test_pool_block_edges():
    size = kernels.POSITIONS[0][1] + 1
    check(_random(POOL, {"input": (1, kernels.IN_CHANNELS[0][1] + 1, 1, size),
                         "depth": (1, 1, 1, size)}, dtype=np.float32, kernel_size=(1, 3),
                  stride=1, padding=(0, 1), alpha=1.0, count_include_pad=False))


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_pool_window_far_larger_than_the_image(count_include_pad):
    """65536 x 3 taps over a 4x5 image: the kernels visit the block of rows and columns
    that read the image (a loop over every tap runs for minutes here), the others count
    in the divisor only."""
    check(_random(POOL, {"input": (1, 2, 4, 5), "depth": (1, 1, 4, 5)}, seed=4,
                  kernel_size=(2**16, 3), stride=(1, 2), padding=(2**15, 1), alpha=1.5,
                  count_include_pad=count_include_pad))


def test_weight_gradient_split_over_positions(monkeypatch):
    """The GPU splits the weight gradient's reduction over positions into partial sums;
    the interpreter does not by itself, so force small blocks and three splits (the last
    one short)."""
    monkeypatch.setattr(kernels, "POSITIONS", ((16, 16), (16, 16)))
    monkeypatch.setattr(kernels, "parallel_splits",
                        lambda programs, chunks, min_chunks=1: min(3, chunks))
    check(_random(CONV, {"input": (2, 2, 4, 9), "depth": (2, 1, 4, 9), "weight": (3, 2, 3, 3)},
                  seed=3, padding=1, stride=(1, 2), alpha=2.0))


@pytest.mark.parametrize("low", ["float16", "bfloat16"])
@pytest.mark.parametrize("op", [CONV, POOL])
def test_low_precision(op, low):
    shapes = {"input": (1, 3, 5, 5), "depth": (1, 1, 5, 5)}
    if op == CONV:
        check(_random(op, {**shapes, "weight": (2, 3, 3, 3)}, padding=1, alpha=1.0), low=low)
    else:
        check(_random(op, shapes, kernel_size=3, stride=1, padding=1, alpha=1.0,
                      count_include_pad=True), low=low)


@pytest.mark.parametrize("op", [CONV, POOL])
def test_public_op_with_impl_triton(op):
    """The custom op reaches the kernels: autograd matches the reference VJP, and opcheck
    (schema, fake tensors, autograd registration) passes on the triton path."""
    if op == CONV:
        case = _random(op, {"input": (2, 2, 4, 5), "depth": (2, 1, 4, 5), "weight": (3, 2, 2, 3),
                            "bias": (3,)}, seed=4, padding=1, alpha=1.5)
    else:
        case = _random(op, {"input": (2, 2, 4, 5), "depth": (2, 1, 4, 5)}, seed=4,
                       kernel_size=2, stride=1, padding=1, alpha=1.5, count_include_pad=False)
    tensors = {k: torch.from_numpy(v).requires_grad_() for k, v in case.tensors.items()
               if v is not None}
    out = getattr(torch_impl, op)(**tensors, **case.params, impl="triton")
    expected = case.call(getattr(reference, op))
    assert_nontrivial(expected, op)
    assert_close(out.detach().numpy(), expected, OPS[op].tolerance["float64"], op)
    out.backward(torch.ones_like(out))
    grads = case.call(lambda **kw: getattr(reference, op + "_vjp")(np.ones(expected.shape), **kw))
    for name, g in grads.items():
        assert_close(tensors[name].grad.numpy(), g, OPS[op].tolerance["float64"], f"{op} d/d{name}")
    t = tensors
    if op == CONV:
        args = (t["input"], t["depth"], t["weight"], t["bias"], [1, 1], [1, 1], [1, 1], 1.5,
                "triton")
    else:
        args = (t["input"], t["depth"], [2, 2], [1, 1], [1, 1], 1.5, False, "triton")
    result = torch.library.opcheck(getattr(torch.ops.crossconv, op).default, args,
                                   test_utils=("test_schema", "test_faketensor",
                                               "test_autograd_registration"))
    assert set(result.values()) == {"SUCCESS"}, result


def test_the_kernels_run_when_triton_was_imported_before_the_switch():
    """torch imports triton before the kernels package can set TRITON_INTERPRET (see
    test_package.py); the depth-aware kernels call no @jit helper of triton.language, so
    they still run in the interpreter."""
    code = (
        "import sys, triton\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_depthaware import CONV, POOL, _random, check\n"
        "check(_random(CONV, {'input': (1, 2, 3, 4), 'depth': (1, 1, 3, 4),"
        " 'weight': (2, 2, 2, 3)}, padding=1, alpha=1.0))\n"
        "check(_random(POOL, {'input': (1, 2, 3, 4), 'depth': (1, 1, 3, 4)}, kernel_size=2,"
        " stride=1, padding=1, alpha=1.0, count_include_pad=True))\n"
        "from torch_impl.kernels.common import INTERPRETING\n"
        "print(INTERPRETING)\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    environment["PYTHONPATH"] = str(ROOT)
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split()[-1] == str(not torch.cuda.is_available())
