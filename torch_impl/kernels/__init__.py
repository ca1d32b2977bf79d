"""Triton kernels of the PyTorch backend: one module per operation, with the reference's
file names (``tanprod``, ``conv2_5d``, ``deform``, ``pool``).

Each module exposes the plain contract functions of the backend interface (no autograd,
no bias: the op adds it; ``geometry`` is ``reference.common.Geometry`` from the shared
signature check; all tensors one dtype and device, contiguous)::

    tanprod.forward(input, weight, geometry) -> out
    tanprod.backward(grad_out, input, weight, geometry) -> (grad_input, grad_weight)
    conv2_5d.forward(input, depth, weight, geometry, focal, pixel_size) -> out
    conv2_5d.backward(grad_out, input, depth, weight, geometry, focal, pixel_size)
        -> (grad_input, grad_weight)
    deform.forward(input, offset, weight, mask, geometry, groups, offset_groups) -> out
    deform.backward(grad_out, input, offset, weight, mask, geometry, groups, offset_groups)
        -> (grad_input, grad_offset, grad_weight, grad_mask or None)
    pool.max_forward(input, geometry) -> (out, indices)
    pool.max_backward(grad_out, indices, geometry) -> grad_input
    pool.avg_forward(input, geometry, count_include_pad, divisor_override) -> out
    pool.avg_backward(grad_out, geometry, count_include_pad, divisor_override) -> grad_input

float32, float64 and float16 tensors are accepted (float16 accumulates in float32, with
float16 operands in tl.dot); bfloat16 tensors are converted to float32 around the
float32 kernels and the results rounded back.

Interpreter rule. Triton decides between compiling a kernel and interpreting it when
``@triton.jit`` decorates it, i.e. when a kernel module is imported, from the environment
variable ``TRITON_INTERPRET``. Importing this package therefore settles the mode for every
kernel module below it:

- ``TRITON_INTERPRET`` set in the environment (to anything, ``0`` included): respected.
  The compile checks (tests/test_triton_compile.py) run a subprocess with
  ``TRITON_INTERPRET=0`` so the kernels are real ``JITFunction`` objects they can compile
  for sm_90 without a GPU.
- not set, and torch sees no CUDA device: set to ``1`` here, so the kernels run in
  Triton's CPU interpreter (NumPy, one program instance at a time: slow, for tests).
- not set, CUDA available: kernels are compiled for the GPU.

The decision is frozen at the first import of the kernel modules. ``triton`` itself may
have been imported earlier in compiled mode (torch._dynamo imports it, e.g. on a process's
first custom-op call): the kernels then still run in the interpreter, because they call no
``@jit`` helper of ``triton.language`` (see ``common.ADD``).
"""

from __future__ import annotations

import os


def _choose_mode() -> None:
    if "TRITON_INTERPRET" in os.environ:
        return
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"


_choose_mode()
