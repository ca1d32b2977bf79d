"""torch_impl.kernels: what it imports, and how it picks the interpreter."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("tanprod", "conv2_5d", "deform", "pool")


def _run(code: str, **env) -> dict:
    environment = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    environment.update(env, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


PROBE = (
    "import json, os, sys\n"
    + "".join(f"import torch_impl.kernels.{m}\n" for m in MODULES)
    + "from torch_impl.kernels.common import INTERPRETING\n"
    "print(json.dumps({'interpreting': INTERPRETING, 'env': os.environ.get('TRITON_INTERPRET'),"
    " 'modules': sorted(sys.modules)}))\n"
)


@pytest.fixture(scope="module")
def unset():
    """The kernel modules imported with TRITON_INTERPRET unset."""
    return _run(PROBE)


def test_the_kernels_import_no_harness_and_no_other_framework(unset):
    modules = set(unset["modules"])
    assert {"torch", "triton"} <= modules
    assert not modules & {"crossconv", "hypothesis", "jax", "jax_impl", "lupa", "lua_port"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="the rule for a machine without CUDA")
def test_without_cuda_the_package_switches_to_the_interpreter(unset):
    assert unset["interpreting"] and unset["env"] == "1"


def test_the_kernels_run_when_triton_was_imported_before_the_switch():
    """torch imports triton (torch._dynamo does, e.g. on the first custom-op call) before
    the kernels package can set TRITON_INTERPRET; the kernels must still run (they avoid
    triton.language's own @jit helpers, which stay compiled-mode objects then)."""
    code = (
        "import sys, triton\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from kernel_cases import check_case, random_case\n"
        "check_case(random_case('tanprod_conv2d', {'input': (1, 2, 4, 4), 'weight': (2, 2, 3, 3)},"
        " low=-0.6, high=0.6))\n"
        "case = random_case('conv2_5d', {'input': (1, 2, 4, 4), 'depth': (1, 1, 4, 4),"
        " 'weight': (3, 2, 2, 3, 3)}, low=0.5, high=2.0, padding=1)\n"
        "check_case(case)\n"
        "check_case(random_case('deform_conv2d', {'input': (1, 2, 4, 4), 'offset': (1, 18, 2, 2),"
        " 'weight': (2, 2, 3, 3), 'mask': (1, 9, 2, 2)}))\n"
        "check_case(random_case('max_pool2d', {'input': (1, 2, 4, 4)}, kernel_size=2))\n"
        "check_case(random_case('avg_pool2d', {'input': (1, 2, 4, 4)}, kernel_size=2))\n"
        "from torch_impl.kernels.common import INTERPRETING\n"
        "print(INTERPRETING)\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    environment["PYTHONPATH"] = str(ROOT)
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split()[-1] == str(not torch.cuda.is_available())


def test_an_explicit_setting_is_respected():
    probe = _run(PROBE, TRITON_INTERPRET="0")
    assert not probe["interpreting"] and probe["env"] == "0"
