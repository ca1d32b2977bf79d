"""Helpers for the Torch7 shim's nn tests: building Lua modules in lua_port's trusted
Lua state and holding them to torch.nn with the same weights (float64)."""

import numpy as np

from lua_port.runtimes import trusted
from lua_port.torch7 import Torch7Model

#: fp64, long sums: |lua - torch| <= 1e-10 * max|torch| (the differences are ~1e-16).
FP64 = 1e-10


def assert_close(got, want, what=""):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    assert scale > 0 or want.size == 0, f"{what}: the expected values are all zero (a trivial check)"
    np.testing.assert_allclose(got, want, rtol=FP64, atol=FP64 * scale, err_msg=what)


def lua_module(runtime, code) -> Torch7Model:
    """``code``, a Lua expression building a module, in the trusted state of ``runtime``."""
    lua = trusted(runtime)
    return Torch7Model(lua.lua.execute("return " + code), runtime)


def torch_of(array, requires_grad=False):
    import torch

    return torch.tensor(np.asarray(array, dtype=np.float64), requires_grad=requires_grad)


def set_lua_parameters(model: Torch7Model, arrays) -> None:
    """Copy arrays into the Lua module's parameters() (in Torch7's order)."""
    lua = model.lua
    result = lua.method(model.obj, "parameters")
    params = result[0] if result is not None else lua.lua.table()
    for tensor, array in zip(params.values(), arrays, strict=True):
        lua.assign(tensor, np.asarray(array, dtype=np.float64).reshape(lua.array(tensor).shape))


def lua_gradients(model: Torch7Model) -> list[np.ndarray]:
    lua = model.lua
    result = lua.method(model.obj, "parameters")
    if result is None:
        return []
    _, grads = result
    return [lua.array(g) for g in grads.values()]


def lua_value(model: Torch7Model, value):
    """A Lua tensor or table of tensors as arrays."""
    return model._value(value)
