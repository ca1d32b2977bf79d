"""Torch7 models in lua_port's own Lua state, driven from Python.

``Torch7Model.load(path)`` (or ``.from_bytes``) reads a ``.t7`` file with the shim's
``torch.load`` into lua_port's trusted Lua state (the state the Python bridge computes
with; no code from the file runs: the shim's classes rebuild the objects). The model's
own ``forward``/``backward`` then run on NumPy arrays, and ``record_forward`` /
``record_backward`` return what every leaf module received and produced, in call order
(the port checker compares those with a PyTorch port).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from .runtimes import CHUNK, lua_source, trusted
from .t7 import parse_t7


@cache
def _inspect(lua):
    """lua_port/lua/inspect.lua in the trusted state `lua` (loaded once per state)."""
    return lua._execute(lua_source("inspect.lua"), "@lua_port/inspect.lua")


def _check_mode(mode, name: str):
    if mode not in ("binary", "ascii"):
        raise ValueError(f"Torch7Model.{name}: mode must be 'binary' or 'ascii', got mode={mode!r}")
    return mode


def read_bytes(source) -> bytes:
    """The bytes of a .t7 file given as a path or as bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            return handle.read()
    raise TypeError(f"a .t7 file path or its bytes expected, got {type(source).__name__}")


def lua_string_bytes(lua, holder, length: int) -> bytes:
    """A Lua string (possibly binary) of the trusted state, kept in the Lua table
    ``holder`` as its first element, as Python bytes."""
    lua_side = _inspect(lua)
    out = bytearray()
    for first in range(1, length + 1, CHUNK):
        last = min(length, first + CHUNK - 1)
        values = lua.call(lua_side.bytes, holder, first, last)
        out.extend(values if isinstance(values, tuple) else (values,))
    return bytes(out)


@dataclass
class LeafRecord:
    """One call of a leaf module: ``path`` is its place in the model (``"(4)(2)"``:
    module 2 of module 4), ``typename`` its class, ``text`` its Torch7 description; the
    arrays are copies (a table of tensors comes as a list of arrays)."""

    path: str
    typename: str
    text: str
    input: Any = None
    output: Any = None
    grad_output: Any = None
    grad_input: Any = None
    parameters: tuple = ()
    grad_parameters: tuple = ()


class Torch7Model:
    """A Torch7 object (usually an nn module) in lua_port's trusted Lua state."""

    def __init__(self, lua_object, runtime: str | None = None, data: bytes | None = None):
        self.lua = trusted(runtime)
        self.runtime = self.lua.name
        self.obj = lua_object
        self._data = data

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_bytes(cls, data: bytes, runtime: str | None = None, mode: str | None = None) -> Torch7Model:
        """The object in ``data`` (a .t7 file's bytes); ``mode`` ``"binary"`` (default
        when None and the data is not ascii) or ``"ascii"``."""
        data = read_bytes(data)
        if mode is None:
            mode = "ascii" if data[:2] and data[:1].isdigit() and data[1:2].isspace() else "binary"
        _check_mode(mode, "from_bytes")
        lua = trusted(runtime)
        obj = lua.call(_inspect(lua).load, data, mode)
        return cls(obj, lua.name, data)

    @classmethod
    def load(cls, path, runtime: str | None = None, mode: str | None = None) -> Torch7Model:
        """The object saved in the .t7 file at ``path``."""
        return cls.from_bytes(read_bytes(path), runtime, mode)

    def to_bytes(self, mode: str = "binary") -> bytes:
        """The object as the bytes of a .t7 file (Torch7's torch.save format)."""
        _check_mode(mode, "to_bytes")
        holder, length = self.lua.call(_inspect(self.lua).save, self.obj, mode)
        return lua_string_bytes(self.lua, holder, int(length))

    def save(self, path, mode: str = "binary") -> None:
        with open(path, "wb") as handle:
            handle.write(self.to_bytes(mode))

    def describe_t7(self):
        """The same object read by the Python reader (lua_port.load_t7's form)."""
        return parse_t7(self._data if self._data is not None else self.to_bytes())

    # ------------------------------------------------------------------ running

    @property
    def typename(self) -> str:
        return str(self.lua.call(self.lua.torch.type, self.obj))

    def __str__(self) -> str:
        return str(self.lua.call(self.lua.lua.globals().tostring, self.obj))

    def _value(self, value):
        """A Lua tensor (or table of them) as arrays."""
        if value is None:
            return None
        if self.lua.call(self.lua.torch.isTensor, value):
            return self.lua.array(value)
        return [self._value(v) for v in value.values()]

    def _tensor(self, array):
        if isinstance(array, (list, tuple)):
            return self.lua.lua.table_from([self._tensor(a) for a in array])
        return self.lua.tensor(np.asarray(array, dtype=np.float64))

    def evaluate(self) -> None:
        self.lua.method(self.obj, "evaluate")

    def training(self) -> None:
        self.lua.method(self.obj, "training")

    def forward(self, input) -> np.ndarray:
        return self._value(self.lua.method(self.obj, "forward", self._tensor(input)))

    def backward(self, input, grad_output, scale: float = 1.0):
        result = self.lua.method(self.obj, "backward", self._tensor(input), self._tensor(grad_output),
                                 float(scale))
        return self._value(result)

    def parameters(self) -> list[np.ndarray]:
        params, _ = self.lua.call(_inspect(self.lua).parameters, self.obj)
        return [self.lua.array(p) for p in params.values()]

    def record_forward(self, input) -> tuple[list[LeafRecord], Any]:
        """``forward(input)`` with every leaf call recorded (inputs and outputs)."""
        records, output = self.lua.call(_inspect(self.lua).forward, self.obj, self._tensor(input))
        out = []
        for r in records.values():
            params, grads = self.lua.call(_inspect(self.lua).parameters, r.module)
            out.append(LeafRecord(str(r.path), str(r.typename), str(r.text), self._value(r.input),
                                  self._value(r.output),
                                  parameters=tuple(self.lua.array(p) for p in params.values())))
        return out, self._value(output)

    def record_backward(self, input, grad_output, leaves: list[LeafRecord]) -> Any:
        """``zeroGradParameters`` then ``backward(input, grad_output)``; fills each of
        ``leaves`` (from :meth:`record_forward`, same model) with its gradients."""
        lua_side = _inspect(self.lua)
        records, grad_input = self.lua.call(lua_side.backward, self.obj, self._tensor(input),
                                            self._tensor(grad_output))
        by_path = {}
        for r in records.values():
            by_path.setdefault(str(r.path), (self._value(r.gradOutput), self._value(r.gradInput)))
        modules = {str(leaf.path): leaf.module for leaf in self.lua.call(lua_side.leaves, self.obj).values()}
        for leaf in leaves:
            if leaf.path in by_path:
                leaf.grad_output, leaf.grad_input = by_path[leaf.path]
            _, grads = self.lua.call(lua_side.parameters, modules[leaf.path])
            leaf.grad_parameters = tuple(self.lua.array(g) for g in grads.values())
        return self._value(grad_input)

    def set_parameters(self, path: str, arrays) -> None:
        """Copy ``arrays`` into the parameters of the leaf at ``path``."""
        lua_side = _inspect(self.lua)
        modules = {str(leaf.path): leaf.module for leaf in self.lua.call(lua_side.leaves, self.obj).values()}
        params, _ = self.lua.call(lua_side.parameters, modules[path])
        for tensor, array in zip(params.values(), arrays, strict=True):
            values = self.lua.lua.table_from(np.asarray(array, dtype=np.float64).ravel().tolist())
            self.lua.call(lua_side.assign, tensor, values)
