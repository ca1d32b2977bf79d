"""What every torch op checks before the shared shape checks, and where ``impl`` resolves.

The shape and argument checks live in :mod:`reference.common` (one copy for every
backend); this module adds what only tensors have: the type, dtype and device of each
tensor argument, and gradient requirements. Backends never cast silently, so every tensor
argument must be a floating tensor of one dtype on one device.

``impl`` (docs/index.md): ``"native"`` is the vectorised torch code in :mod:`torch_impl.native`,
``"triton"`` the kernels in ``torch_impl.kernels.<file>`` (imported lazily, on first use),
``"auto"`` the kernels for CUDA tensors when their module imports, else native. Each op
resolves it in one function that calls :func:`implementation`.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

import torch

from reference.common import check_float_dtypes

#: Floating dtypes the torch ops accept. float16/bfloat16 are computed in float32 and
#: returned in the input dtype.
TORCH_DTYPES = ("float16", "bfloat16", "float32", "float64")
IMPLS = ("auto", "native", "triton")
LOW_PRECISION = (torch.float16, torch.bfloat16)


def check_tensors(op: str, **tensors) -> torch.dtype:
    """Every non-None keyword is a floating ``torch.Tensor``; all share one dtype and one
    device. ``TypeError``/``ValueError`` naming the argument otherwise. Returns the dtype."""
    present = {name: t for name, t in tensors.items() if t is not None}
    for name, t in present.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    check_float_dtypes(op, {name: t.dtype for name, t in present.items()}, TORCH_DTYPES,
                       same=True)
    devices = {name: t.device for name, t in present.items()}
    if len(set(devices.values())) > 1:
        listed = ", ".join(f"{name} on {device}" for name, device in devices.items())
        raise ValueError(f"{op}: tensor arguments must be on one device, got {listed}")
    return next(iter(present.values())).dtype


def check_impl(op: str, impl) -> str:
    if impl not in IMPLS:
        raise ValueError(f"{op}: impl must be one of {', '.join(map(repr, IMPLS))}, got {impl!r}")
    return impl


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the native code computes in: float32 for float16/bfloat16."""
    return torch.float32 if dtype in LOW_PRECISION else dtype


@functools.cache
def _kernel_module(file: str) -> ModuleType | ImportError:
    try:
        return importlib.import_module(f"torch_impl.kernels.{file}")
    except ImportError as error:  # no triton, or the kernels are not there yet
        return error


def resolve_impl(op: str, file: str, impl: str, device: torch.device) -> str:
    """``"native"`` or ``"triton"``: ``"auto"`` picks the kernels for CUDA tensors when
    ``torch_impl.kernels.<file>`` imports."""
    check_impl(op, impl)
    if impl == "auto":
        usable = device.type == "cuda" and isinstance(_kernel_module(file), ModuleType)
        return "triton" if usable else "native"
    return impl


def kernel_module(op: str, file: str) -> ModuleType:
    """``torch_impl.kernels.<file>``; ``ImportError`` naming it if it cannot be imported."""
    kernels = _kernel_module(file)
    if isinstance(kernels, ImportError):
        raise ImportError(
            f"{op}: impl='triton' needs the module torch_impl.kernels.{file}, which cannot be "
            f"imported ({kernels})"
        )
    return kernels


def implementation(op: str, file: str, impl: str, device: torch.device) -> ModuleType:
    """The module whose contract functions compute ``op``: :mod:`torch_impl.native.<file>`
    or ``torch_impl.kernels.<file>``."""
    if resolve_impl(op, file, impl, device) == "native":
        return importlib.import_module(f"torch_impl.native.{file}")
    return kernel_module(op, file)


def int_list(pair) -> list[int]:
    """A ``(h, w)`` pair as the ``int[]`` a custom op takes."""
    return [int(v) for v in pair]


def owned(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a contiguous tensor starting at its storage's beginning (a custom op's
    output must match its fake: contiguous, offset 0), copied only when it is not."""
    if t.is_contiguous() and t.storage_offset() == 0:
        return t
    return t.clone(memory_format=torch.contiguous_format)
