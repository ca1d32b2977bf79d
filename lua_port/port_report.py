"""The port checker's report (:mod:`lua_port.port_check`): the pairs of layers, where a
Torch7 model and its port part (:class:`Difference`: the worst element and both values,
or the shapes), and the comparison rule itself."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .torch7 import LeafRecord


@dataclass
class Difference:
    """Where two arrays part: the worst element's index and both values, or the shapes."""

    what: str
    torch7_shape: tuple
    port_shape: tuple
    index: tuple | None = None
    torch7_value: float | None = None
    port_value: float | None = None
    max_abs_diff: float = math.inf
    note: str = ""

    def lines(self) -> list[str]:
        if self.torch7_shape != self.port_shape:
            out = [f"{self.what}: shape {list(self.torch7_shape)} in Torch7, "
                   f"{list(self.port_shape)} in the port"]
        else:
            out = [f"{self.what}: max |difference| {self.max_abs_diff:.3g}"]
        if self.index is not None:
            where = ", ".join(map(str, self.index))
            out.append(f"  worst element [{where}]: Torch7 {self.torch7_value!r}, port {self.port_value!r}")
        if self.note:
            out.append("  " + self.note)
        return out


@dataclass
class Pair:
    """One Torch7 leaf and the port module paired with it (either may be missing)."""

    lua: LeafRecord | None
    lua_fields: dict = field(default_factory=dict)
    port_name: str | None = None
    port_text: str | None = None
    port_module: Any = None
    port_input: Any = None
    port_output: Any = None
    port_grad_input: Any = None
    port_grad_output: Any = None
    forward_diff: float | None = None
    backward_diff: float | None = None

    @property
    def lua_label(self) -> str:
        if self.lua is None:
            return "-"
        ceil = ":ceil()" if self.lua_fields.get("ceil_mode") else ""
        return f"{self.lua.path or '(model)'} {self.lua.text}{ceil}"

    @property
    def port_label(self) -> str:
        return f"{self.port_name}: {self.port_text}" if self.port_name is not None else "-"

    @property
    def port_short(self) -> str:
        """The port module in a few words, as Torch7 describes its modules."""
        if self.port_name is None:
            return "-"
        return f"{self.port_name or '(model)'}: {_short(self.port_module)}"


@dataclass
class PortReport:
    """The checker's verdict: ``ok``; else ``stage`` ("weights", "forward", "backward"
    or "structure"), the pair where Torch7 and the port part (``pair``) and how
    (``difference``, ``message``); ``pairs`` holds every pair with its largest forward
    and backward differences."""

    ok: bool
    input_shape: tuple
    runtime: str
    pairs: list[Pair] = field(default_factory=list)
    stage: str | None = None
    pair: Pair | None = None
    difference: Difference | None = None
    message: str = ""

    def table(self) -> list[list[str]]:
        def cell(value):
            if value is None:
                return "-"
            return "shape" if value == math.inf else ("0" if value == 0 else f"{value:.2g}")

        rows = []
        for i, p in enumerate(self.pairs, 1):
            rows.append([str(i), p.lua_label, p.port_short, cell(p.forward_diff), cell(p.backward_diff)])
        return rows

    def summary(self) -> list[str]:
        if self.ok:
            return [f"Torch7 and the port agree on every paired layer, forward and backward "
                    f"(input {'x'.join(map(str, self.input_shape))}, float64)."]
        lines = [f"They part at the {self.stage} pass" + (":" if self.stage != "structure" else ":")]
        if self.pair is not None:
            lines.append(f"  Torch7 {self.pair.lua_label}")
            lines.append(f"  port   {self.pair.port_label}")
        if self.message:
            lines.append("  " + self.message)
        if self.difference is not None:
            lines += ["  " + line for line in self.difference.lines()]
        return lines

    def __str__(self) -> str:
        widths = [3, 44, 36, 8, 8]
        header = ["#", "Torch7 module", "port module", "forward", "backward"]

        def row(cells):
            return "  ".join(str(c)[:w].ljust(w) for c, w in zip(cells, widths)).rstrip()

        lines = [row(header)] + [row(r) for r in self.table()]
        return "\n".join(lines + [""] + self.summary())


def _pair_text(value) -> str:
    a, b = (value, value) if isinstance(value, int) else tuple(value)
    return f"{a}x{b}"


def _short(module) -> str:
    """A torch module in Torch7's words: Conv2d(1 -> 6, 5x5), MaxPool2d(3x3, 2,2) ceil."""
    import torch.nn as tnn

    name = type(module).__name__
    if isinstance(module, tnn.Conv2d):
        text = f"{name}({module.in_channels} -> {module.out_channels}, {_pair_text(module.kernel_size[::-1])}"
        if module.stride != (1, 1) or module.padding != (0, 0):
            text += f", {module.stride[1]},{module.stride[0]}"
        if module.padding != (0, 0) and not isinstance(module.padding, str):
            text += f", {module.padding[1]},{module.padding[0]}"
        return text + ")"
    if isinstance(module, tnn.Linear):
        return f"{name}({module.in_features} -> {module.out_features})"
    if isinstance(module, (tnn.MaxPool2d, tnn.AvgPool2d)):
        kernel = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,) * 2
        stride = module.stride if isinstance(module.stride, tuple) else (module.stride,) * 2
        text = f"{name}({kernel[1]}x{kernel[0]}, {stride[1]},{stride[0]}"
        padding = module.padding if isinstance(module.padding, tuple) else (module.padding,) * 2
        if padding != (0, 0):
            text += f", {padding[1]},{padding[0]}"
        return text + (") ceil" if module.ceil_mode else ")")
    extra = module.extra_repr()
    return f"{name}({extra})" if len(extra) <= 24 else name


def compare(what: str, torch7, port, rtol: float, atol: float) -> Difference | None:
    """None when the arrays agree (|a - b| <= atol + rtol * max |a|), else where they part."""
    if isinstance(torch7, list) or isinstance(port, list):
        if not (isinstance(torch7, list) and isinstance(port, list) and len(torch7) == len(port)):
            return Difference(what, (), (), note="one side is a table of tensors and the other is not")
        for i, (a, b) in enumerate(zip(torch7, port)):
            found = compare(f"{what}[{i + 1}]", a, b, rtol, atol)
            if found:
                return found
        return None
    a, b = np.asarray(torch7, dtype=np.float64), np.asarray(port, dtype=np.float64)
    if a.shape != b.shape and np.squeeze(a).shape == np.squeeze(b).shape:
        a, b = np.squeeze(a), np.squeeze(b)  # e.g. Torch7's nn.View drops a batch of one
    if a.shape != b.shape:
        diff = Difference(what, a.shape, b.shape)
        if a.ndim == b.ndim and a.size and b.size:
            common = tuple(slice(0, min(x, y)) for x, y in zip(a.shape, b.shape))
            inner = compare(what, a[common], b[common], rtol, atol)
            if inner is None:
                bigger = "Torch7's" if a.size > b.size else "the port's"
                diff.note = (f"the values agree where both exist; {bigger} has extra trailing rows or "
                             f"columns")
            else:
                diff.index, diff.max_abs_diff = inner.index, inner.max_abs_diff
                diff.torch7_value, diff.port_value = inner.torch7_value, inner.port_value
        return diff
    if a.size == 0:
        return None
    delta = np.abs(a - b)
    delta = np.where(np.isnan(a) & np.isnan(b), 0.0, delta)
    delta = np.where(np.isnan(delta), np.inf, delta)
    scale = max(float(np.nanmax(np.abs(a))) if np.isfinite(a).any() else 0.0, 1e-300)
    worst = np.unravel_index(int(np.argmax(delta)), a.shape)
    if delta[worst] <= atol + rtol * scale:
        return None
    return Difference(what, a.shape, b.shape, tuple(int(i) for i in worst), float(a[worst]), float(b[worst]),
                      float(delta[worst]))


def max_diff(a, b) -> float | None:
    if a is None or b is None:
        return None
    if isinstance(a, list) or isinstance(b, list):
        if not (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)):
            return math.inf
        diffs = [max_diff(x, y) for x, y in zip(a, b)]
        return max((d for d in diffs if d is not None), default=0.0)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape and np.squeeze(a).shape == np.squeeze(b).shape:
        a, b = np.squeeze(a), np.squeeze(b)
    if a.shape != b.shape:
        return math.inf
    return float(np.max(np.abs(a - b))) if a.size else 0.0
