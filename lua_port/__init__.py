"""Torch7's nn.CustomConv ported to Lua on a Torch7-compatible shim, run through lupa.

- ``tanprod_conv2d`` / ``conv2d`` (the signatures of docs/, plus ``runtime=``) compute with
  the Lua modules ``nn.CustomConv`` / ``nn.SpatialConvolutionMM``; ``*_vjp`` give their
  gradients through the modules' ``backward``.
- ``CustomConv`` mirrors the Lua module from Python (NumPy in and out).
- ``run(code)`` executes a Torch7 snippet in a sandbox and returns its results.

Runtimes: ``"luajit"`` (LuaJIT 2.1, the default) or ``"5.4"`` (Lua 5.4; the default where
lupa has no LuaJIT). The Lua sources are in ``lua_port/lua/``.
"""

from .conv2d import conv2d, conv2d_vjp
from .errors import LuaError, LuaLimitError, LuaMemoryError, LuaSyntaxError
from .module import CustomConv
from .runtimes import available_runtimes
from .sandbox import Sandbox, run
from .tanprod import tanprod_conv2d, tanprod_conv2d_vjp

__all__ = [
    "CustomConv",
    "LuaError",
    "LuaLimitError",
    "LuaMemoryError",
    "LuaSyntaxError",
    "Sandbox",
    "available_runtimes",
    "conv2d",
    "conv2d_vjp",
    "run",
    "tanprod_conv2d",
    "tanprod_conv2d_vjp",
]
