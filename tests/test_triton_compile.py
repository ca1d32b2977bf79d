"""Every Triton kernel compiles for an H100 (sm_90) without a GPU.

The test runs this file as a subprocess with ``TRITON_INTERPRET=0`` (Triton reads the
variable when ``@triton.jit`` decorates, so the interpreter, which the rest of the suite
may use, has to stay out of that process). There, each contract function of
``torch_impl.kernels`` is called on small CPU tensors for every dtype and code path while
``recording_launches`` turns its kernel launches into records; every distinct
(kernel, signature, constexprs) is then built with ``triton.compile(ASTSource(...),
target=GPUTarget("cuda", 90, 32))`` and its TTIR and PTX inspected:

- a kernel whose TTIR has ``tt.dot`` uses the tensor cores in float16 (``wgmma`` or
  ``mma.sync ... f16``) and float64 (``mma.sync ... f64``, Hopper's DMMA);
- in float32 it must not use TF32 (the kernels ask for ``input_precision="ieee"``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ("float16", "float32", "float64")


def _signature(kernel, args, constexprs):
    import torch

    names = {torch.float16: "fp16", torch.float32: "fp32", torch.float64: "fp64",
             torch.int64: "i64", torch.int32: "i32"}
    signature, constants = {}, {}
    for name, value in zip(kernel.arg_names, args):
        if isinstance(value, torch.Tensor):
            signature[name] = "*" + names[value.dtype]
        elif isinstance(value, bool):
            signature[name] = "i1"
        elif isinstance(value, int):
            signature[name] = "i32" if -(2**31) <= value < 2**31 else "i64"
        elif isinstance(value, float):
            signature[name] = "fp32"
        else:
            raise TypeError(f"{kernel.__name__}: argument {name}={value!r} has no Triton type")
    for name, value in constexprs.items():
        signature[name] = "constexpr"
        constants[name] = value
    return signature, constants


def _calls(dtype):
    """Every contract function on small tensors, each code path once."""
    import torch

    from reference.conv2_5d import conv2_5d_signature
    from reference.deform import deform_conv2d_signature
    from reference.depthaware import (
        depthaware_avg_pool2d_signature,
        depthaware_conv2d_signature,
    )
    from reference.pool import avg_pool2d_signature, max_pool2d_signature
    from reference.tanprod import tanprod_conv2d_signature
    from torch_impl.kernels import conv2_5d, deform, depthaware, pool, tanprod

    def t(*shape):
        return torch.rand(shape, dtype=dtype)

    x, w = t(2, 3, 7, 6), t(4, 3, 3, 3)
    geo = tanprod_conv2d_signature(x.shape, w.shape, None, 1, 1, 1).geometry
    g = t(2, 4, *geo.out_size)
    yield lambda: tanprod.forward(x, w, geo)
    yield lambda: tanprod.backward(g, x, w, geo)

    depth, w5 = t(2, 1, 7, 6), t(3, 4, 3, 3, 3)
    geo = conv2_5d_signature(x.shape, depth.shape, w5.shape, None, 1, 1, 1, 1.0, 1.0).geometry
    yield lambda: conv2_5d.forward(x, depth, w5, geo, 2.0, 1.0)
    yield lambda: conv2_5d.backward(g, x, depth, w5, geo, 2.0, 1.0)

    xd, wd = t(2, 4, 7, 6), t(4, 2, 3, 3)
    offset, mask = t(2, 2 * 2 * 9, 7, 6), t(2, 2 * 9, 7, 6)
    sig = deform_conv2d_signature(xd.shape, offset.shape, wd.shape, None, 1, 1, 1, mask.shape)
    gd = t(2, 4, 7, 6)
    for m in (mask, None):
        yield lambda m=m: deform.forward(xd, offset, wd, m, sig.geometry, sig.groups,
                                         sig.offset_groups)
        yield lambda m=m: deform.backward(gd, xd, offset, wd, m, sig.geometry, sig.groups,
                                          sig.offset_groups)

    geo = max_pool2d_signature(x.shape, 3, 2, 1, 1, True)
    yield lambda: pool.max_forward(x, geo)
    yield lambda: pool.max_backward(t(2, 3, *geo.out_size),
                                    torch.zeros((2, 3, *geo.out_size), dtype=torch.int64), geo)
    geo = avg_pool2d_signature(x.shape, 3, 2, 1, True, True, None)
    for include_pad, override in ((True, None), (False, None), (True, 3)):
        yield lambda i=include_pad, o=override: pool.avg_forward(x, geo, i, o)
        yield lambda i=include_pad, o=override: pool.avg_backward(
            t(2, 3, *geo.out_size), geo, i, o)

    geo = depthaware_conv2d_signature(x.shape, depth.shape, w.shape, None, 1, 1, 1, 1.0).geometry
    yield lambda: depthaware.conv_forward(x, depth, w, geo, 1.5)
    yield lambda: depthaware.conv_backward(g, x, depth, w, geo, 1.5)
    geo = depthaware_avg_pool2d_signature(x.shape, depth.shape, 3, 2, 1, 1.0, True).geometry
    yield lambda: depthaware.pool_forward(x, depth, geo, 1.5, True)
    yield lambda: depthaware.pool_backward(t(2, 3, *geo.out_size), x, depth, geo, 1.5, False)


def build_all(dtypes=DTYPES) -> list[dict]:
    """Compile every recorded launch for sm_90; one summary dict per distinct build.
    float16 builds only the kernels with a tl.dot (the ones whose float16 path differs)."""
    import torch
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from torch_impl.kernels.common import INTERPRETING, recording_launches

    assert not INTERPRETING, "run with TRITON_INTERPRET=0"
    builds = {}
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        for deterministic in (False, True):
            torch.use_deterministic_algorithms(deterministic)
            with recording_launches() as launches:
                for call in _calls(dtype):
                    call()
            for kernel, _, args, constexprs, num_warps in launches:
                if dtype_name == "float16" and "tl.dot(" not in kernel.src:
                    continue
                signature, constants = _signature(kernel, args, constexprs)
                key = (kernel.__name__, json.dumps(signature, sort_keys=True),
                       repr(sorted(constants.items())), num_warps)
                builds.setdefault(key, (kernel, signature, constants, num_warps, dtype_name))
    torch.use_deterministic_algorithms(False)

    results = []
    target = GPUTarget("cuda", 90, 32)
    for kernel, signature, constants, num_warps, dtype_name in builds.values():
        start = time.perf_counter()
        compiled = triton.compile(ASTSource(kernel, signature, constants), target=target,
                                  options={"num_warps": num_warps})
        ptx = compiled.asm["ptx"]
        results.append({
            "kernel": f"{kernel.__module__.rsplit('.', 1)[-1]}.{kernel.__name__}",
            "dtype": dtype_name,
            "constexprs": {k: str(v) for k, v in constants.items()},
            "seconds": round(time.perf_counter() - start, 3),
            "dot": "tt.dot" in compiled.asm["ttir"],
            "mma": sorted(set(re.findall(r"(?:wgmma\.mma_async|mma)\.sync\.aligned\.[\w.]+", ptx))),
        })
    return results


@pytest.fixture(scope="module")
def builds():
    """All builds, from two processes side by side (CI has two cores)."""
    env = {**os.environ, "TRITON_INTERPRET": "0", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as cache:
        env["TRITON_CACHE_DIR"] = cache  # build for real, not from an earlier run's cache
        runs = [subprocess.Popen([sys.executable, __file__, *dtypes], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for dtypes in (["float32"], ["float64", "float16"])]
        outputs = [run.communicate(timeout=600) for run in runs]
    for run, (_, err) in zip(runs, outputs):
        assert run.returncode == 0, err[-4000:]
    return [build for out, _ in outputs for build in json.loads(out)]


def test_every_kernel_module_is_built(builds):
    built = {b["kernel"].split(".")[0] for b in builds}
    assert built == {"tanprod", "conv2_5d", "deform", "pool", "depthaware"}
    for dtype in DTYPES:
        assert any(b["dtype"] == dtype for b in builds)


def test_dot_kernels_use_the_tensor_cores_in_float16_and_float64(builds):
    dots = [b for b in builds if b["dot"] and b["dtype"] != "float32"]
    assert {b["kernel"].split(".")[0] for b in dots} == {"conv2_5d", "deform", "depthaware"}
    for b in dots:
        operand = "f16" if b["dtype"] == "float16" else "f64"
        assert any(operand in mma for mma in b["mma"]), (
            f"{b['kernel']} ({b['dtype']}) does not use the matrix instructions: {b['mma']}")


def test_float32_dots_are_not_tf32(builds):
    for b in builds:
        if b["dot"] and b["dtype"] == "float32":
            assert not any("tf32" in mma for mma in b["mma"]), (
                f"{b['kernel']} rounds float32 operands to TF32: {b['mma']}")


def test_only_dot_kernels_use_matrix_instructions(builds):
    for b in builds:
        assert b["dot"] or not b["mma"], b


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(json.dumps(build_all(sys.argv[1:] or DTYPES)))
