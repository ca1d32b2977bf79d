"""What the functional ops share: argument checks (reference.common's, plus the features
Torch7's modules lack, plus what fits in Lua) and running one call through a Lua module.

``tanprod_conv2d`` runs ``nn.CustomConv`` with the 'tanprod' kernel, ``conv2d`` runs
``nn.SpatialConvolutionMM``; both modules take (nInputPlane, nOutputPlane, kW, kH, dW, dH,
padW, padH), so neither has dilation, groups or asymmetric padding (``padding="same"``
with an even kernel): those raise ``ValueError`` naming the argument.

Every check runs on shapes and Python values before any array is copied: the shared
checks of reference.common, then :func:`check_lua_sizes`, which refuses (``MemoryError``
naming the argument) a call whose tensors would not fit in a Lua table or in this
machine's memory, instead of letting Lua grow until the machine runs out.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from reference.common import check_arrays, check_float_dtypes, check_grad_output
from reference.conv2d import conv2d_signature
from reference.tanprod import tanprod_conv2d_signature as tanprod_signature

from .runtimes import resolve_runtime, trusted

#: Most numbers one Lua tensor of lua_port may hold: LuaJIT's tables keep at most 2**27
#: entries in their array part (the same bound serves Lua 5.4, for one behaviour).
MAX_LUA_NUMBERS = 2**27
#: Bytes a number takes in a Lua table (LuaJIT 8, Lua 5.4 16), doubled for a table's growth.
LUA_BYTES = {"luajit": 16, "5.4": 32}
#: Bytes a number takes in the Python list that carries it into Lua.
TRANSFER_BYTES = 32
#: Calls needing less than this are not checked against the memory left (small calls
#: stay as fast as they were).
ALWAYS_FITS = 256 * 2**20

#: op -> (Lua module, the argument check of reference.common).
MODULES = {
    "tanprod_conv2d": ("CustomConv", tanprod_signature),
    "conv2d": ("SpatialConvolutionMM", conv2d_signature),
}


@dataclass(frozen=True)
class Call:
    """A checked call: float64 arrays, the window geometry, the caller's dtype."""

    op: str
    input: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    geometry: object
    out_shape: tuple
    dtype: np.dtype


def available_memory() -> int | None:
    """Bytes this machine can still allocate (Linux's MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_lua_sizes(op: str, input_shape: tuple, weight_shape: tuple, out_shape: tuple, padding,
                    runtime: str | None, backward: bool = False) -> None:
    """Refuse a call whose tensors cannot live in Lua: ``MemoryError`` naming the argument.

    Each of input, weight and output must hold at most :data:`MAX_LUA_NUMBERS` numbers,
    and all the numbers Lua holds at once (forward: input, a prepared copy of it, output;
    backward also the gradients), plus the transfer of the input, must fit in the memory
    this machine has left. The message names ``padding`` when padding makes the output
    larger than the input, else the input's and the weight's shapes.
    """
    counts = {"input": math.prod(input_shape), "weight": math.prod(weight_shape),
              "output": math.prod(out_shape)}

    def culprit(what: str) -> str:
        if what != "output":
            return f"{what} has shape {tuple(input_shape if what == 'input' else weight_shape)}"
        if any(o > i for o, i in zip(out_shape[-2:], input_shape[-2:])):
            return f"padding={padding!r} makes the output larger than the input"
        return f"input has shape {tuple(input_shape)}, weight {tuple(weight_shape)}"

    for what, count in counts.items():
        if count > MAX_LUA_NUMBERS:
            shape = {"input": input_shape, "weight": weight_shape, "output": out_shape}[what]
            raise MemoryError(f"{op}: the {what} would hold {count} numbers (shape {tuple(shape)}), more "
                              f"than the {MAX_LUA_NUMBERS} a Lua tensor of lua_port holds ({culprit(what)})")
    per_number = LUA_BYTES[resolve_runtime(runtime)]
    held = 2 * counts["input"] + counts["output"] + counts["weight"]
    if backward:
        held += 2 * counts["input"] + counts["output"] + 2 * counts["weight"]
    needed = held * per_number + counts["input"] * TRANSFER_BYTES
    if needed <= ALWAYS_FITS:
        return
    available = available_memory()
    if available is not None and needed > available:
        what = max(("input", "output"), key=lambda name: counts[name])
        raise MemoryError(f"{op}: this call needs about {needed / 2**30:.1f} GiB in Lua (the {what} alone "
                          f"holds {counts[what]} numbers), more than the {available / 2**30:.1f} GiB "
                          f"this machine has left ({culprit(what)})")


def check_call(op: str, input, weight, bias, stride, padding, dilation, groups=1, *, runtime=None,
               backward: bool = False) -> Call:
    """Check a call (the tensors' kinds, shapes and values first, then sizes), then copy
    the arrays to float64. Tensors are NumPy arrays of float32 or float64, one dtype
    (reference.common's :func:`check_arrays`: nothing is converted before the checks)."""
    x, w, b = check_arrays(op, input=input, weight=weight, bias=bias)
    dtype = check_float_dtypes(op, {"input": x.dtype, "weight": w.dtype,
                                    "bias": None if b is None else b.dtype}, same=True)
    shapes = (x.shape, w.shape, None if b is None else b.shape, stride, padding, dilation)
    signature = MODULES[op][1]
    sig = signature(*shapes, groups) if op == "conv2d" else signature(*shapes)
    module = MODULES[op][0]
    if sig.geometry.dilation != (1, 1):
        raise ValueError(f"{op}: Torch7's nn.{module} has no dilation; lua_port supports only "
                         f"dilation=1, got dilation={dilation!r}")
    if sig.groups != 1:
        raise ValueError(f"{op}: Torch7's nn.{module} has no groups; lua_port supports only "
                         f"groups=1, got groups={groups!r}")
    if sig.geometry.pad_before != sig.geometry.pad_after:
        raise ValueError(f"{op}: Torch7's nn.{module} pads both sides alike; padding={padding!r} "
                         f"needs {sig.geometry.pad_before} before and {sig.geometry.pad_after} after")
    check_lua_sizes(op, x.shape, w.shape, sig.out_shape, padding, runtime, backward)
    x, w, b = (None if a is None else a.astype(np.float64, copy=False) for a in (x, w, b))
    return Call(op, x, w, b, sig.geometry, sig.out_shape, np.dtype(dtype))


#: Modules kept per trusted Lua state for repeated calls of one configuration.
CACHED_MODULES = 16


def build_module(lua, call: Call):
    """The Lua module computing ``call``, holding its weight and bias.

    One module per configuration (op, channels, kernel, stride, padding, bias or not) is
    kept and given the call's parameters, so repeated calls skip the construction.
    """
    out_channels, in_channels, kh, kw = call.weight.shape
    (sh, sw), (ph, pw) = call.geometry.stride, call.geometry.pad_before
    key = (call.op, in_channels, out_channels, kw, kh, sw, sh, pw, ph, call.bias is None)
    cache = lua.modules
    module = cache.pop(key, None)
    if module is None:
        name = MODULES[call.op][0]
        module = lua.call(lua.bridge.module, name, in_channels, out_channels, kw, kh, sw, sh, pw, ph)
        if call.bias is None:
            lua.method(module, "noBias")
        if len(cache) >= CACHED_MODULES:
            cache.pop(next(iter(cache)))
    cache[key] = module
    lua.assign(module.weight, call.weight)
    if call.bias is not None:
        lua.assign(module.bias, call.bias)
    return module


def forward(call: Call, runtime) -> np.ndarray:
    lua = trusted(runtime)
    module = build_module(lua, call)
    output = lua.method(module, "forward", lua.tensor(call.input))
    return lua.array(output).astype(call.dtype)


def vjp(call: Call, grad_output, runtime) -> dict[str, np.ndarray]:
    """Gradients through the module's Torch7 protocol: zeroGradParameters, forward, then
    backward(input, gradOutput, 1) (updateGradInput + accGradParameters)."""
    grad = check_grad_output(grad_output, call.out_shape, call.op)
    lua = trusted(runtime)
    module = build_module(lua, call)
    lua.method(module, "zeroGradParameters")
    x = lua.tensor(call.input)
    lua.method(module, "forward", x)
    grad_input = lua.method(module, "backward", x, lua.tensor(grad), 1)
    grads = {
        "input": lua.array(grad_input),
        "weight": lua.array(module.gradWeight).reshape(call.weight.shape),
    }
    if call.bias is not None:
        grads["bias"] = lua.array(module.gradBias)
    return {name: g.astype(call.dtype) for name, g in grads.items()}
