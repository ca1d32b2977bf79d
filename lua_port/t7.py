"""Reading Torch7's ``.t7`` files in Python: ``load_t7(path)``, no Lua involved.

The format is Torch7's ``torch.save``, binary (little-endian, 8-byte longs, as written
on x86_64) or ascii (``torch.save(path, x, 'ascii')``); ``lua_port/lua/torch/File.lua``
describes it. What comes back:

- numbers as ``float`` (Torch7's numbers are doubles), strings as ``str`` (``bytes``
  when they are not UTF-8), booleans, ``None``;
- tensors as NumPy arrays of the tensor's type (``torch.FloatTensor`` -> float32,
  ``LongTensor`` -> int64, ...; copies, C-contiguous; an empty tensor has shape (0,)),
  storages as 1-D arrays;
- tables as ``dict`` (integral number keys as ``int``), or ``list`` when the keys are
  exactly 1..n (Lua's arrays); shared references stay shared (one Python object) and
  recursive ones keep the dict;
- other Torch classes (nn modules, ``torch.class`` objects) as :class:`T7Object`:
  the type name, the version and the fields; ``str()`` of an nn module describes it as
  Torch7 prints it; ``tds.Hash`` / ``tds.Vec`` as ``dict`` / ``list``;
- Lua functions as :class:`T7Function` (their bytecode, never run).

Nothing in the file is executed, and sizes are checked against the file's length before
anything is allocated: a damaged or hostile file raises :class:`T7FormatError`.
"""

from __future__ import annotations

import math
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LuaRef", "T7FormatError", "T7Function", "T7Object", "load_t7", "parse_t7"]

TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH, TYPE_BOOLEAN = 0, 1, 2, 3, 4, 5
TYPE_FUNCTION, LEGACY_TYPE_RECUR_FUNCTION, TYPE_RECUR_FUNCTION = 6, 7, 8

#: Element types: Torch7's name -> NumPy dtype (little-endian).
DTYPES = {
    "Double": np.dtype("<f8"), "Float": np.dtype("<f4"), "Long": np.dtype("<i8"),
    "Int": np.dtype("<i4"), "Short": np.dtype("<i2"), "Char": np.dtype("i1"), "Byte": np.dtype("u1"),
}
_TENSOR = re.compile(r"^torch\.(Double|Float|Long|Int|Short|Char|Byte)Tensor$")
_STORAGE = re.compile(r"^torch\.(Double|Float|Long|Int|Short|Char|Byte)Storage$")


class T7FormatError(ValueError):
    """The data is not a Torch7 file this reader understands (or it is damaged)."""


class LuaRef:
    """A table key that Python cannot hash (a table or a tensor used as a key in Lua):
    ``ref.value`` is the object; equal only to a LuaRef of the same object."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, LuaRef) and other.value is self.value

    def __hash__(self):
        return id(self.value)

    def __repr__(self):
        return f"LuaRef({type(self.value).__name__} at {id(self.value):#x})"


@dataclass(eq=False)
class T7Function:
    """A Lua function stored in a ``.t7`` file: its bytecode (not run) and upvalues."""

    bytecode: bytes
    upvalues: Any = None


@dataclass(eq=False)
class T7Object:
    """An object of a Torch class: ``typename`` (``"nn.Linear"``), the class ``version``
    written with it, and its ``fields`` (a dict). Fields read as attributes too:
    ``obj.weight``."""

    typename: str
    version: float = 1.0
    fields: dict = field(default_factory=dict)

    def __getattr__(self, name):
        fields = self.__dict__.get("fields")
        if fields is not None and name in fields:
            return fields[name]
        raise AttributeError(f"{self.__dict__.get('typename', 'T7Object')} has no field {name!r}")

    def __getitem__(self, key):
        return self.fields[key]

    def __contains__(self, key):
        return key in self.fields

    def get(self, key, default=None):
        return self.fields.get(key, default)

    @property
    def is_module(self) -> bool:
        return self.typename.startswith("nn.") and isinstance(self.fields, dict) and "output" in self.fields

    def __repr__(self) -> str:
        if self.is_module:
            return f"<T7Object {describe(self)}>"
        keys = ", ".join(map(str, list(self.fields)[:8])) if isinstance(self.fields, dict) else ""
        return f"<T7Object {self.typename} v{self.version:g} fields: {keys}>"

    def __str__(self) -> str:
        return describe(self) if self.is_module else repr(self)


# ----------------------------------------------------------------------------- sources


class _Binary:
    def __init__(self, data: bytes):
        self.data, self.pos = memoryview(data), 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def _take(self, n: int) -> memoryview:
        if n < 0 or n > self.remaining():
            raise T7FormatError(f"truncated file: {n} bytes wanted at byte {self.pos}, "
                                f"{self.remaining()} left")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def ints(self, kind: str, count: int) -> np.ndarray:
        dtype = DTYPES[kind]
        if count < 0 or count * dtype.itemsize > self.remaining():
            raise T7FormatError(f"{count} elements of type {kind} at byte {self.pos} run past the end "
                                f"of the file ({self.remaining()} bytes left)")
        return np.frombuffer(self._take(count * dtype.itemsize), dtype=dtype).copy()

    def int(self) -> int:
        return struct.unpack("<i", self._take(4))[0]

    def long(self) -> int:
        return struct.unpack("<q", self._take(8))[0]

    def double(self) -> float:
        return struct.unpack("<d", self._take(8))[0]

    def text(self, n: int) -> bytes:
        return bytes(self._take(n))


_NUMBER = re.compile(rb"\s*(\S+)")


class _Ascii:
    def __init__(self, data: bytes):
        self.data, self.pos = bytes(data), 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def _token(self) -> bytes:
        match = _NUMBER.match(self.data, self.pos)
        if not match:
            raise T7FormatError(f"truncated ascii file: a number wanted at byte {self.pos}")
        self.pos = match.end()
        return match.group(1)

    def _newline(self):
        if self.data[self.pos:self.pos + 1] == b"\n":
            self.pos += 1

    def _number(self, integer: bool):
        token = self._token().lower()
        try:
            if integer:
                return int(token)
            if token in (b"nan", b"-nan"):
                return math.nan
            return float(token)
        except ValueError:
            raise T7FormatError(f"not a number in an ascii file at byte {self.pos}: {token!r}") from None

    def ints(self, kind: str, count: int) -> np.ndarray:
        dtype = DTYPES[kind]
        if count < 0 or count > self.remaining():
            raise T7FormatError(f"{count} elements of type {kind} at byte {self.pos} run past the end "
                                f"of the file")
        if kind in ("Char", "Byte"):
            values = np.frombuffer(self.text(count), dtype=dtype).copy()
            return values
        values = [self._number(kind not in ("Double", "Float")) for _ in range(count)]
        if count:
            self._newline()
        return np.array(values, dtype=dtype)

    def int(self) -> int:
        value = self._number(True)
        self._newline()
        return value

    long = int

    def double(self) -> float:
        value = self._number(False)
        self._newline()
        return value

    def text(self, n: int) -> bytes:
        if n < 0 or n > self.remaining():
            raise T7FormatError(f"a string of {n} bytes at byte {self.pos} runs past the end of the file")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        if n:
            self._newline()
        return chunk


# ----------------------------------------------------------------------------- objects


def _string(raw: bytes):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _key(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        hash(value)
    except TypeError:
        return LuaRef(value)
    return value


class _Reader:
    def __init__(self, source):
        self.source = source
        self.objects: dict[int, Any] = {}
        self.building: dict[int, bool] = {}  # index -> referenced while its table was read

    def text(self) -> bytes:
        return self.source.text(self.source.int())

    def read(self):
        s = self.source
        kind = s.int()
        if kind == TYPE_NIL:
            return None
        if kind == TYPE_NUMBER:
            return s.double()
        if kind == TYPE_BOOLEAN:
            return s.int() == 1
        if kind == TYPE_STRING:
            return _string(self.text())
        if kind == TYPE_FUNCTION:
            code = self.text()
            return T7Function(code, self.read())
        if kind in (TYPE_TABLE, TYPE_TORCH, TYPE_RECUR_FUNCTION, LEGACY_TYPE_RECUR_FUNCTION):
            index = s.int()
            if index in self.objects:
                if index in self.building:
                    self.building[index] = True
                return self.objects[index]
            if kind == TYPE_TABLE:
                return self._table(index)
            if kind == TYPE_TORCH:
                return self._torch(index)
            function = T7Function(self.text())
            self.objects[index] = function
            function.upvalues = self.read()
            return function
        raise T7FormatError(f"unknown object type {kind} at byte {s.pos - 4}: not a Torch7 file, "
                            f"or one of another mode (binary/ascii)")

    def _table(self, index: int):
        size = self.source.int()
        if size < 0 or 2 * size > self.source.remaining():
            raise T7FormatError(f"a table of {size} entries runs past the end of the file")
        table: dict = {}
        self.objects[index] = table
        self.building[index] = False
        for _ in range(size):
            key = self.read()
            value = self.read()
            if key is None:
                raise T7FormatError("a table key is nil")
            table[_key(key)] = value
        referenced = self.building.pop(index)
        keys = list(table)
        if keys and not referenced and all(isinstance(k, int) for k in keys) \
                and sorted(keys) == list(range(1, len(keys) + 1)):
            as_list = [table[k] for k in range(1, len(keys) + 1)]
            self.objects[index] = as_list
            return as_list
        return table

    def _torch(self, index: int):
        s = self.source
        version_text = _string(self.text())
        match = re.match(r"^V (.*)$", version_text) if isinstance(version_text, str) else None
        if match:
            try:
                version = float(match.group(1))
            except ValueError:
                raise T7FormatError(f"bad class version {version_text!r}") from None
            name = self.text().decode("utf-8", "replace")
        else:
            version, name = 0.0, version_text if isinstance(version_text, str) else version_text.decode(
                "utf-8", "replace")
        tensor, storage = _TENSOR.match(name), _STORAGE.match(name)
        if storage:
            size = s.long()
            value = s.ints(storage.group(1), size)
            self.objects[index] = value
            return value
        if tensor:
            return self._tensor(index, tensor.group(1))
        if name in ("tds.Hash", "tds.Vec"):
            size = s.int()
            if size < 0 or size > s.remaining():
                raise T7FormatError(f"a {name} of {size} elements runs past the end of the file")
            container: Any = {} if name == "tds.Hash" else []
            self.objects[index] = container
            self.read()  # tds writes one more object (nil) before the elements
            for _ in range(size):
                if name == "tds.Hash":
                    key = self.read()
                    container[_key(key)] = self.read()
                else:
                    container.append(self.read())
            return container
        obj = T7Object(name, version)
        self.objects[index] = obj
        fields = self.read()
        if isinstance(fields, list):
            fields = {i + 1: v for i, v in enumerate(fields)}
        obj.fields = fields if isinstance(fields, dict) else {"value": fields}
        return obj

    def _tensor(self, index: int, kind: str):
        s = self.source
        dims = s.int()
        if dims < 0 or dims > 64:
            raise T7FormatError(f"a tensor with {dims} dimensions")
        sizes = [int(v) for v in s.ints("Long", dims)]
        strides = [int(v) for v in s.ints("Long", dims)]
        offset = s.long() - 1
        storage = self.read()
        dtype = DTYPES[kind]
        if dims == 0 or storage is None or any(n == 0 for n in sizes):
            value = np.empty(sizes if dims and storage is not None else (0,), dtype=dtype)
        else:
            if not isinstance(storage, np.ndarray) or storage.dtype != dtype:
                raise T7FormatError(f"a torch.{kind}Tensor whose storage is not a torch.{kind}Storage")
            last = offset + sum((n - 1) * st for n, st in zip(sizes, strides))
            if offset < 0 or min(strides) < 0 or last >= storage.size:
                raise T7FormatError(f"a tensor of size {sizes} (strides {strides}, offset {offset}) reaches "
                                    f"past its storage of {storage.size} elements")
            view = np.lib.stride_tricks.as_strided(storage[offset:], shape=sizes,
                                                   strides=[st * dtype.itemsize for st in strides])
            value = np.ascontiguousarray(view).copy()
        self.objects[index] = value
        return value


def parse_t7(data: bytes, mode: str | None = None):
    """The object in ``data`` (the bytes of a ``.t7`` file); ``mode`` ``"binary"``,
    ``"ascii"`` or None (told apart from the first bytes)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"parse_t7: data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if mode is None:
        mode = "ascii" if re.match(rb"^[0-8]\s", data[:2]) else "binary"
    if mode not in ("binary", "ascii"):
        raise ValueError(f"parse_t7: mode must be 'binary', 'ascii' or None, got mode={mode!r}")
    reader = _Reader(_Binary(data) if mode == "binary" else _Ascii(data))
    try:
        return reader.read()
    except RecursionError:
        raise T7FormatError("objects nested too deeply") from None


def load_t7(path, mode: str | None = None):
    """The object saved in the ``.t7`` file at ``path`` (see the module's docstring for
    what comes back). ``mode``: ``"binary"``, ``"ascii"`` or None (detected)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load_t7: path must be a str or os.PathLike, got {type(path).__name__} "
                        f"(parse_t7 reads bytes)")
    with open(path, "rb") as handle:
        return parse_t7(handle.read(), mode)


# ----------------------------------------------------------------------------- describing modules


def _n(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _size(obj, name) -> tuple:
    value = obj.fields.get(name)
    return tuple(np.shape(value)) if value is not None else ()


def _branches(obj, modules) -> str:
    lines = [f"{obj.typename} {{", "  input"]
    for i, module in enumerate(modules, 1):
        last = i == len(modules)
        text = describe(module).replace("\n", "\n  " + ("       " if last else "  |    "))
        lines.append("  " + ("   `-> " if last else "  |`-> ") + f"({i}): {text}")
    lines += ["     ... -> output", "}"]
    return "\n".join(lines)


def describe(obj) -> str:
    """An nn module as Torch7's ``print(module)`` shows it."""
    if not isinstance(obj, T7Object):
        return repr(obj)
    f, name = obj.fields, obj.typename
    modules = f.get("modules")
    if isinstance(modules, dict):
        modules = [modules[k] for k in sorted(modules)]
    if name == "nn.Sequential" and isinstance(modules, list):
        head = "nn.Sequential {\n  [input" + "".join(f" -> ({i})" for i in range(1, len(modules) + 1))
        body = "".join(f"\n  ({i}): " + describe(m).replace("\n", "\n  ") for i, m in enumerate(modules, 1))
        return head + " -> output]" + body + "\n}"
    if name in ("nn.Concat", "nn.ConcatTable", "nn.ParallelTable") and isinstance(modules, list):
        return _branches(obj, modules)
    if name in ("nn.SpatialConvolution", "nn.SpatialConvolutionMM"):
        text = f"{name}({_n(f['nInputPlane'])} -> {_n(f['nOutputPlane'])}, {_n(f['kW'])}x{_n(f['kH'])}"
        pad = (f.get("padW", 0) or 0, f.get("padH", 0) or 0)
        if (f.get("dW"), f.get("dH")) != (1, 1) or pad != (0, 0):
            text += f", {_n(f['dW'])},{_n(f['dH'])}"
        if pad != (0, 0):
            text += f", {_n(pad[0])},{_n(pad[1])}"
        return text + (")" if f.get("bias") is not None else ") without bias")
    if name in ("nn.SpatialMaxPooling", "nn.SpatialAveragePooling"):
        text = f"{name}({_n(f['kW'])}x{_n(f['kH'])}, {_n(f['dW'])},{_n(f['dH'])}"
        pad = (f.get("padW", 0) or 0, f.get("padH", 0) or 0)
        if pad != (0, 0):
            text += f", {_n(pad[0])},{_n(pad[1])}"
        return text + ")"
    if name == "nn.Linear" and "weight" in f:
        out, inp = _size(obj, "weight")
        return f"nn.Linear({inp} -> {out})" + ("" if f.get("bias") is not None else " without bias")
    if name in ("nn.BatchNormalization", "nn.SpatialBatchNormalization"):
        dims = 4 if name == "nn.SpatialBatchNormalization" else 2
        return f"{name} ({dims}D) ({np.size(f.get('running_mean'))})"
    if name in ("nn.View", "nn.Reshape") and "size" in f:
        sep = ", " if name == "nn.View" else "x"
        return f"{name}(" + sep.join(str(int(v)) for v in np.ravel(f["size"])) + ")"
    if name == "nn.Dropout" and "p" in f:
        return f"nn.Dropout({f['p']:f})"
    if name == "nn.SpatialZeroPadding":
        pads = [int(f[k]) for k in ("pad_l", "pad_r", "pad_t", "pad_b")]
        return "nn.SpatialZeroPadding(l={}, r={}, t={}, b={})".format(*pads)
    return name
