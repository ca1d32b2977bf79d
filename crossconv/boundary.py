"""Boundary cases: fixed calls of each op on the edges of its definition, as data.

Random draws rarely hit an exact edge; these always do: deform samples landing exactly on
rows/columns -1, 0, H-1 and H (and at integers, where gradients are one-sided), pooling's
ceil-mode overhang, ties and NaN, conv2_5d centre depths of 0, below 0 and NaN with odd
and even bin counts and taps exactly on bin edges, tanprod factors that are exactly 0,
every non-finite input whose result the op's page in docs/ defines, and one case at each edge of the
strategies' large tier (a batch of 3, an output side of 33: one past a 32-wide tile, a
kernel of 5, a template of 17, many offset groups), so every run reaches the sizes where
kernels switch paths or leave a remainder. ``crossconv crosscheck`` runs
them through every implementation (forward and gradients, against the reference, in each
of the implementation's dtypes) and ``crossconv verify`` puts them first among its draws.

Each op's boundary cases are ``<op>_boundary()`` in its cases file
(``crossconv/cases/<file>.py``); the registry's ``Op.boundary`` lists them. Each
:class:`Boundary` says what it ``needs`` in the terms of the op's case strategy
(:mod:`crossconv.strategies`), the same options an implementation's registry ``limits``
set: an implementation gets a boundary case only if its strategy, with its limits, could
draw that configuration (:func:`admits`). So a backend without dilation
(``max_dilation=1``) never gets the dilated ones, and non-finite inputs go only to
implementations whose limits allow them (on by default; torchvision's ``deform_conv2d``
needs ``nonfinite_offsets=False``: it crashes the process on a NaN offset). The SiamFC
tracking shape for xcorr (search 255x255, template 127x127, 256 channels) needs
``max_template=127, max_channels=256``: it costs seconds, not milliseconds.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from .cases import Boundary, Case
from .registry import OPS

__all__ = ["Boundary", "admits", "implied_needs", "strategy_defaults"]


def strategy_defaults(strategy) -> dict[str, Any]:
    """The keyword options of a case strategy and their defaults."""
    return {name: p.default for name, p in inspect.signature(strategy).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _largest(value) -> int:
    return max(value) if isinstance(value, (tuple, list)) else int(value)


def _square(value) -> bool:
    return value is None or np.ndim(value) == 0 or len(set(value)) == 1


def implied_needs(case: Case) -> dict[str, Any]:
    """What a case's configuration asks of the strategy options that bound it: batch,
    channels, kernel, stride, dilation, padding, bias, string padding, square windows,
    and what the op's own cases file adds (``<op>_needs``: groups, offset groups, bins,
    template size, mask, the values of boolean, optional and fixed arguments such as
    ceil_mode, stride=None, divisor_override, focal, ...)."""
    t, p = case.tensors, case.params
    first = next(v for v in t.values() if v is not None)
    needs = {"max_batch": first.shape[0], "max_channels": first.shape[1]}
    if "weight" in t:
        needs["max_kernel"] = max(t["weight"].shape[-2:])
        if t["weight"].shape[-1] != t["weight"].shape[-2]:
            needs["square_kernel"] = False
    if "kernel_size" in p:
        needs["max_kernel"] = _largest(p["kernel_size"])
    for key in ("stride", "dilation", "padding"):
        if isinstance(p.get(key), str):
            needs["string_padding"] = True
        elif p.get(key) not in (None, ()):
            needs["max_" + key] = _largest(p[key])
    windows = [p.get(key) for key in ("stride", "dilation", "padding", "kernel_size")
               if not isinstance(p.get(key), str)]
    if not all(_square(value) for value in windows):
        needs["square"] = False
    if "bias" in t:
        needs["bias"] = t["bias"] is not None
    return {**needs, **OPS[case.op].needs(case)}


def admits(strategy, limits: Mapping[str, Any], boundary: Boundary) -> str | None:
    """None if ``strategy(**limits)`` could draw the boundary case's configuration, else
    why not. Its needs are :func:`implied_needs` (for the options the strategy has) plus
    its own (``nonfinite`` and the like): a ``max_*`` option must be at least the needed
    value, any other must equal it (an option of None, e.g. ``with_mask=None``, draws
    every value; ``divisor_override=True`` draws None too)."""
    defaults = strategy_defaults(strategy)
    implied = {k: v for k, v in implied_needs(boundary.case).items() if k in defaults}
    for key, needed in {**implied, **boundary.needs}.items():
        have = limits.get(key, defaults[key])
        if key.startswith("max_"):
            ok = have >= needed
        else:
            ok = have is None or have == needed
        if not ok:
            return f"needs {key}={needed!r}, the limits give {have!r}"
    return None
