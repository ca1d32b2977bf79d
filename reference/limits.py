"""How large a call may be: the limits every backend checks before any work.

Two limits, both checked on Python ints (never on the tensors):

- **One axis fits 32-bit indices.** Every integer argument (kernel size, stride,
  padding, dilation, groups, divisor) and every padded input extent
  ``H + pad_before + pad_after`` is at most :data:`MAX_EXTENT` = 2**31 - 1: the GPU
  kernels and JAX (without ``jax_enable_x64``) index one axis with 32-bit integers, and
  a window, an output size or a padded size derived from such values then fits 64-bit
  arithmetic with room to spare. Beyond it: ``ValueError`` naming the argument.
- **The tensors an op creates fit in memory.** The output and the padded input (which
  the reference and the XLA code materialise) together need at least
  :data:`BYTES_PER_ELEMENT` bytes an element. More than this machine's memory
  (:func:`machine_memory`): ``MemoryError`` naming the arguments, raised before anything
  is allocated, where NumPy would raise it late, XLA:CPU would abort the process and the
  Linux OOM killer would end it.

An empty batch (N = 0) or a symbolic one (a ``torch.SymInt`` under ``torch.export``) is
checked as a batch of one, so the same arguments are accepted or refused whatever the
batch size the caller traces with.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

#: The largest extent along one axis, and the largest integer argument: 2**31 - 1.
MAX_EXTENT = 2**31 - 1
#: The least bytes an element takes in any backend's computation (float32: half
#: precision is computed in float32).
BYTES_PER_ELEMENT = 4
#: The memory assumed where the machine's cannot be read: the 2**48-byte virtual address
#: space of x86-64 and AArch64 processes.
ADDRESS_SPACE = 2**48


def _read_machine_memory() -> int:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        total = ADDRESS_SPACE
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total if total > 0 else ADDRESS_SPACE


#: Read once, at import: the checks run inside ``torch.compile`` and ``jax.jit`` traces,
#: which should see a constant rather than a system call.
_MACHINE_MEMORY = _read_machine_memory()


def machine_memory() -> int:
    """Bytes of physical memory, or the cgroup (container) limit if lower."""
    return _MACHINE_MEMORY


def check_extent(value: int, what: str, op: str, arguments: str) -> None:
    """``ValueError`` unless ``0 <= value <= MAX_EXTENT``; ``what`` is the extent's name
    ("padded input height"), ``arguments`` the arguments that produced it."""
    if value > MAX_EXTENT:
        raise ValueError(
            f"{op}: {arguments} make the {what} {value}, more than 2**31 - 1 (one axis must "
            f"fit 32-bit indices)"
        )


def elements(shape) -> int:
    """Elements of a tensor of ``shape``, the batch (axis 0) counted as at least one and
    a non-int (symbolic) batch as one."""
    batch, *rest = shape
    batch = batch if isinstance(batch, int) and batch > 0 else 1
    return batch * math.prod(rest)


def _bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_memory(op: str, created: dict[str, tuple], arguments: str) -> None:
    """``MemoryError`` if the tensors of ``created`` (name -> shape) need more than this
    machine's memory at :data:`BYTES_PER_ELEMENT` bytes an element; ``arguments``
    describes the call (it names the arguments that set the sizes)."""
    need = BYTES_PER_ELEMENT * sum(elements(shape) for shape in created.values())
    have = machine_memory()
    if need > have:
        listed = " and ".join(
            f"the {name} {list(shape)}" for name, shape in created.items()
        )
        raise MemoryError(
            f"{op}: {listed} need at least {_bytes(need)}, more than this machine's "
            f"{_bytes(have)} of memory ({arguments})"
        )
