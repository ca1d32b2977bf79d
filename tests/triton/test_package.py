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


def test_an_explicit_setting_is_respected():
    probe = _run(PROBE, TRITON_INTERPRET="0")
    assert not probe["interpreting"] and probe["env"] == "0"
