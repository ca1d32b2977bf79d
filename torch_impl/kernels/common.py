"""What every kernel module shares: the interpreter flag, dtypes, block sizes, ``tan``,
and the one launch function (which the compile checks can record instead of running).

Block sizes come in pairs, ``(interpreted, compiled)``: the interpreter runs one program
instance at a time (~0.5 ms each plus NumPy work), so there blocks are as large as the
problem allows; on a GPU they are sized for occupancy and registers.
"""

from __future__ import annotations

import contextlib
import functools

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

#: Frozen when this module is imported, like ``@triton.jit`` itself (see the package
#: docstring for the rule).
INTERPRETING = bool(triton.knobs.runtime.interpret)
INTERPRET: tl.constexpr = tl.constexpr(INTERPRETING)

#: ``tl.dot`` precision for float32 operands. "ieee" keeps float32 accuracy (the 1e-4
#: tolerance of long sums) and IEEE Inf/NaN propagation; TF32 rounds operands to 10
#: mantissa bits (~1e-3) and "tf32x3" splits x into tf32(x) + rest, which turns an
#: infinite operand into NaN (inf - inf). float16 and float64 operands ignore it: they use
#: the tensor cores (wgmma f16, DMMA f64) at full precision.
DOT_PRECISION: tl.constexpr = tl.constexpr("ieee")

#: The combine functions of tl.sum and tl.cumprod. The kernels call tl.reduce and
#: tl.associative_scan with them rather than tl.sum / tl.cumprod, and write tl.full and
#: integer arithmetic rather than tl.zeros / tl.cdiv: those are @jit functions of
#: triton.language.standard, decorated when triton was first imported. torch imports
#: triton (torch._dynamo does, e.g. when a custom op is first called) before this package
#: can set TRITON_INTERPRET, and a compiled-mode @jit function cannot be called from an
#: interpreted kernel. The interpreter recognises these two combine functions and runs
#: NumPy's sum / cumprod for them.
ADD = tl.standard._sum_combine
MUL = tl.standard._prod_combine

FLOAT_TYPES = {torch.float16: tl.float16, torch.float32: tl.float32, torch.float64: tl.float64}


def check_tensors(*tensors: torch.Tensor | None) -> torch.dtype:
    """The common float dtype of ``tensors`` (None skipped). ``TypeError`` unless they
    share one of float16/float32/float64; ``ValueError`` unless they share a device that
    the kernels can run on (CUDA when compiled, anything in the interpreter)."""
    present = [t for t in tensors if t is not None]
    dtypes = {t.dtype for t in present}
    if len(dtypes) != 1 or not dtypes <= FLOAT_TYPES.keys():
        raise TypeError(
            f"Triton kernels need tensors of one dtype among float16/float32/float64, got "
            f"{sorted(map(str, dtypes))}"
        )
    devices = {t.device for t in present}
    if len(devices) != 1:
        raise ValueError(f"Triton kernels need tensors on one device, got {sorted(map(str, devices))}")
    device = devices.pop()
    if not INTERPRETING and device.type != "cuda" and _recorded is None:
        raise ValueError(
            f"the Triton kernels were compiled for the GPU and need CUDA tensors, got {device}; "
            f"set TRITON_INTERPRET=1 before importing torch_impl.kernels to run them on the CPU"
        )
    return dtypes.pop()


def bfloat16_in_float32(contract_function):
    """Let a contract function take bfloat16 tensors: when every float tensor argument
    is bfloat16, they are computed in float32 (the interpreter cannot run bfloat16
    arithmetic, and float32 accumulation is what a bfloat16 user gets from torch anyway)
    and the float results rounded back to bfloat16. Mixed dtypes pass through to the
    function's own check."""

    @functools.wraps(contract_function)
    def wrapper(*args, **kwargs):
        floats = [a for a in (*args, *kwargs.values())
                  if isinstance(a, torch.Tensor) and a.is_floating_point()]
        if not floats or any(a.dtype != torch.bfloat16 for a in floats):
            return contract_function(*args, **kwargs)

        def up(a):
            return a.float() if isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16 else a

        def down(r):
            return r.to(torch.bfloat16) if isinstance(r, torch.Tensor) and r.dtype == torch.float32 else r

        result = contract_function(*map(up, args), **{k: up(v) for k, v in kwargs.items()})
        return tuple(map(down, result)) if isinstance(result, tuple) else down(result)

    return wrapper


def acc_type(dtype: torch.dtype):
    """Triton accumulation type: float64 for float64, float32 otherwise."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def index_type(*tensors: torch.Tensor):
    """int32 index arithmetic when every tensor a kernel touches has fewer than 2**31
    elements (64-bit division and multiplication cost several times more on a GPU),
    int64 otherwise."""
    return tl.int32 if max(t.numel() for t in tensors) < 2**31 else tl.int64


def block(n: int, interpreted: tuple[int, int], compiled: tuple[int, int]) -> int:
    """The power of two >= ``n``, clamped to ``(low, high)`` of the current mode."""
    low, high = interpreted if INTERPRETING else compiled
    return max(low, min(high, triton.next_power_of_2(max(int(n), 1))))


def parallel_splits(programs: int, chunks: int, min_chunks: int = 1) -> int:
    """How many partial sums to split a reduction over ``chunks`` blocks into, so that
    ``programs * splits`` fills the GPU (2 programs per SM) while each split keeps at
    least ``min_chunks`` blocks (every split writes one partial result: memory traffic).
    1 in the interpreter, where programs run one after the other."""
    if INTERPRETING or not torch.cuda.is_available():
        return 1
    sms = torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count
    wanted = -(-2 * sms // max(programs, 1))
    return max(1, min(wanted, chunks // max(min_chunks, 1)))


@triton.jit
def tan(x):
    """``tan(x)``: libdevice's correctly rounded tan on the GPU; sin/cos in the
    interpreter, which has no libdevice."""
    if INTERPRET:
        return tl.sin(x) / tl.cos(x)
    else:
        return libdevice.tan(x)


@triton.jit
def divide(a, b):
    """``a / b`` correctly rounded: on a GPU, float32 ``/`` compiles to the approximate
    ``div.full.f32`` (2 ulp); torch divides exactly."""
    if a.dtype == tl.float64:
        return a / b
    else:
        return tl.math.div_rn(a, b)


# ----------------------------------------------------------------------------- launching

_recorded: list | None = None


def launch(kernel, grid, *args, num_warps: int = 4, **constexprs) -> None:
    """``kernel[grid](*args, **constexprs)``, or recorded while :func:`recording_launches`
    is active (the compile checks turn every launch a wrapper makes into an sm_90 build)."""
    if _recorded is not None:
        _recorded.append((kernel, tuple(grid), args, constexprs, num_warps))
        return
    if min(grid) > 0:
        kernel[tuple(grid)](*args, num_warps=num_warps, **constexprs)


@contextlib.contextmanager
def recording_launches():
    """Within the block, launches are collected (kernel, grid, args, constexprs,
    num_warps) in the yielded list instead of run."""
    global _recorded
    previous, _recorded = _recorded, []
    try:
        yield _recorded
    finally:
        _recorded = previous


def window_args(geometry):
    """A window's scalars in the order the conv kernels take them: stride, the padding
    before, dilation and kernel size, each ``(rows, cols)`` flattened."""
    (sh, sw), (ph, pw), (dh, dw), (kh, kw) = (geometry.stride, geometry.pad_before,
                                               geometry.dilation, geometry.kernel)
    return sh, sw, ph, pw, dh, dw, kh, kw
