"""Torch7's nn.CustomConv ported to Lua on a Torch7-compatible shim, run through lupa,
with the part of Torch7 that models use (nn, .t7 files) and a checker for PyTorch ports.

- ``tanprod_conv2d`` / ``conv2d`` (the signatures of docs/tanprod.md and docs/conv2d.md,
  plus ``runtime=``) compute with the Lua modules ``nn.CustomConv`` /
  ``nn.SpatialConvolutionMM``; ``*_vjp`` give their gradients through the modules'
  ``backward``.
- ``CustomConv`` mirrors the Lua module from Python (NumPy in and out).
- ``run(code)`` executes a Torch7 snippet in a sandbox and returns its results.
- ``load_t7(path)`` / ``parse_t7(bytes)`` read Torch7's ``.t7`` files in Python (no Lua).
- ``Torch7Model`` holds a ``.t7`` model in lua_port's Lua state and runs it from Python.
- ``to_torch(model)`` converts a Torch7 nn model to a ``torch.nn.Module``;
  ``port_check(model, port, ...)`` compares a PyTorch port with the original, layer by
  layer (``crossconv port-check`` on the command line).

Runtimes: ``"luajit"`` (LuaJIT 2.1, the default) or ``"5.4"`` (Lua 5.4; the default where
lupa has no LuaJIT). The Lua sources are in ``lua_port/lua/``.
"""

from .conv2d import conv2d, conv2d_vjp
from .errors import LuaCrashError, LuaError, LuaLimitError, LuaMemoryError, LuaSyntaxError
from .module import CustomConv
from .port_check import port_check
from .runtimes import available_runtimes
from .sandbox import Sandbox, run
from .t7 import T7FormatError, T7Function, T7Object, load_t7, parse_t7
from .tanprod import tanprod_conv2d, tanprod_conv2d_vjp
from .to_torch import to_torch
from .torch7 import Torch7Model

__all__ = [
    "CustomConv",
    "LuaCrashError",
    "LuaError",
    "LuaLimitError",
    "LuaMemoryError",
    "LuaSyntaxError",
    "Sandbox",
    "T7FormatError",
    "T7Function",
    "T7Object",
    "Torch7Model",
    "available_runtimes",
    "conv2d",
    "conv2d_vjp",
    "load_t7",
    "parse_t7",
    "port_check",
    "run",
    "tanprod_conv2d",
    "tanprod_conv2d_vjp",
    "to_torch",
]
