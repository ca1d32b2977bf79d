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

Each :class:`Boundary` says what it ``needs`` in the terms of the op's case strategy
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

import functools
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reference.common import conv_geometry

from .cases import Case

NAN, INF = np.nan, np.inf


@dataclass(frozen=True)
class Boundary:
    """A named case on an edge of the op's definition and the strategy options it needs."""

    name: str
    case: Case
    needs: Mapping[str, Any] = field(default_factory=dict)


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
    channels, kernel, stride, dilation, padding, groups, offset groups, bins, template
    size, mask, bias, string padding, square windows, and the values of the boolean,
    optional and fixed arguments (ceil_mode, stride=None, divisor_override, focal, ...)."""
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
    if case.op in ("max_pool2d", "avg_pool2d"):
        needs["stride_none"] = p.get("stride") in (None, ())
        for key in ("ceil_mode", "return_indices", "count_include_pad"):
            if key in p:
                needs[key] = bool(p[key])
        if p.get("divisor_override") is not None:
            needs["divisor_override"] = True
    if case.op == "conv2d":
        needs["max_groups"] = p.get("groups", 1)
        needs["max_group_channels"] = t["weight"].shape[1]
    if case.op == "deform_conv2d":
        needs["max_groups"] = t["input"].shape[1] // t["weight"].shape[1]
        needs["max_group_channels"] = t["weight"].shape[1]
        taps = t["weight"].shape[2] * t["weight"].shape[3]
        needs["max_offset_groups"] = t["offset"].shape[1] // (2 * taps)
        needs["with_mask"] = t["mask"] is not None
    if case.op == "conv2_5d":
        needs["max_bins"] = t["weight"].shape[0]
        if t["weight"].shape[0] != t["weight"].shape[-2]:
            needs["bins_equal_kernel"] = False
        needs["focal"] = float(p.get("focal", 1.0))
        needs["pixel_size"] = float(p.get("pixel_size", 1.0))
    if "template" in t:
        needs["max_template"] = max(t["template"].shape[-2:])
    return needs


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


def _rng(seed):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- conv2d


def _conv2d(name, seed, input_shape, weight_shape, bias=True, needs=None, **params):
    rng = _rng(seed)
    tensors = {
        "input": rng.standard_normal(input_shape),
        "weight": rng.standard_normal(weight_shape),
        "bias": rng.standard_normal(weight_shape[0]) if bias else None,
    }
    params = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, **params}
    return Boundary(name, Case("conv2d", tensors, params, seed), needs or {})


def conv2d() -> list[Boundary]:
    nonfinite = _conv2d("NaN, +inf and -inf input cells", 106, (1, 2, 4, 4), (2, 2, 3, 3),
                        padding=1, needs={"nonfinite": True})
    nonfinite.case.tensors["input"][0, 0, 0, 0] = NAN
    nonfinite.case.tensors["input"][0, 1, 3, 2] = INF
    nonfinite.case.tensors["input"][0, 0, 3, 3] = -INF
    return [
        _conv2d("padding wider than the kernel: a border of pure bias", 100, (1, 2, 3, 3),
                (2, 2, 1, 1), padding=2),
        _conv2d("padding='same', even kernel: the extra row/column goes bottom/right", 101,
                (1, 1, 4, 5), (2, 1, 2, 2), padding="same"),
        _conv2d("padding='valid'", 102, (2, 1, 4, 3), (1, 1, 2, 2), bias=False, padding="valid"),
        _conv2d("stride and dilation skip cells; the last window floors", 103, (1, 1, 7, 8),
                (1, 1, 2, 3), stride=(3, 2), padding=(1, 0), dilation=2),
        _conv2d("depthwise groups", 104, (1, 3, 4, 4), (6, 1, 3, 3), groups=3, padding=1),
        _conv2d("the kernel covers the whole input: one output", 105, (2, 2, 3, 3), (1, 2, 3, 3)),
        nonfinite,
        _conv2d("a batch of 3 (an odd last chunk for a batch loop in steps of 2)", 107,
                (3, 2, 4, 3), (2, 2, 2, 2), padding=1),
        _conv2d("an output row of 33: one past a 32-wide tile", 108, (1, 2, 2, 35), (2, 2, 2, 3)),
        _conv2d("a 5x5 kernel", 109, (1, 1, 6, 7), (2, 1, 5, 5), padding=(2, 1)),
    ]


# ----------------------------------------------------------------------------- xcorr


def _xcorr(op, name, seed, search_shape, template_shape, needs=None):
    rng = _rng(seed)
    tensors = {"search": rng.standard_normal(search_shape),
               "template": rng.standard_normal(template_shape)}
    return Boundary(name, Case(op, tensors, {}, seed), needs or {})


@functools.lru_cache(maxsize=1)
def _tracking_arrays(seed):
    """The tracking shape's arrays, made once (read-only: every use copies them)."""
    rng = _rng(seed)
    search, template = rng.standard_normal((1, 256, 255, 255)), rng.standard_normal((1, 256, 127, 127))
    search.flags.writeable = template.flags.writeable = False
    return search, template


def _tracking(op, seed) -> Boundary:
    search, template = _tracking_arrays(seed)
    case = Case(op, {"search": search, "template": template}, {}, seed)
    return Boundary("the tracking shape: search 255x255, template 127x127, 256 channels", case)


def _xcorr_cases(op, seed):
    nonfinite = _xcorr(op, "NaN and inf search cells (an FFT must not smear them)", seed + 2,
                       (1, 2, 6, 6), (1, 2, 2, 3), needs={"nonfinite": True})
    nonfinite.case.tensors["search"][0, 0, 1, 1] = NAN
    nonfinite.case.tensors["search"][0, 1, 4, 5] = INF
    return [
        _xcorr(op, "template as large as the search region: one output", seed, (2, 2, 3, 4),
               (2, 2, 3, 4)),
        _xcorr(op, "1x1 template", seed + 1, (2, 3, 4, 3), (2, 3, 1, 1)),
        nonfinite,
        _xcorr(op, "a batch of 3", seed + 3, (3, 2, 4, 5), (3, 2, 2, 2)),
        _xcorr(op, "a 17x17 template (past where implementations switch to FFT)", seed + 4,
               (1, 2, 19, 18), (1, 2, 17, 17)),
        _xcorr(op, "an output row of 33: one past a 32-wide tile", seed + 5, (1, 1, 3, 35),
               (1, 1, 2, 3)),
        _tracking(op, 119),
    ]


def xcorr2d() -> list[Boundary]:
    return _xcorr_cases("xcorr2d", 110)


def xcorr2d_depthwise() -> list[Boundary]:
    return _xcorr_cases("xcorr2d_depthwise", 120)


# ----------------------------------------------------------------------------- tanprod


def _tanprod(name, seed, input_shape, weight_shape, zeros=(), bias=False, needs=None, **params):
    """``zeros``: ``((n, c, y, x), (o, c, i, j))`` pairs; the input cell is set to minus the
    weight of the tap that reads it, so that factor is exactly ``tan(0) = 0``."""
    rng = _rng(seed)
    x = rng.uniform(-0.6, 0.6, input_shape)
    w = rng.uniform(-0.6, 0.6, weight_shape)
    for cell, tap in zeros:
        x[cell] = -w[tap]
    tensors = {"input": x, "weight": w, "bias": rng.standard_normal(weight_shape[0]) if bias else None}
    params = {"stride": 1, "padding": 0, "dilation": 1, **params}
    return Boundary(name, Case("tanprod_conv2d", tensors, params, seed), needs or {})


def tanprod_conv2d() -> list[Boundary]:
    padded_zero = _tanprod("a padded tap with weight 0: the factor tan(0 + 0) is 0", 132,
                           (1, 1, 3, 3), (1, 1, 2, 2), padding=1)
    padded_zero.case.tensors["weight"][0, 0, 0, 0] = 0.0
    nonfinite = _tanprod("NaN and inf input cells", 133, (1, 2, 3, 4), (2, 2, 2, 2), bias=True,
                         needs={"nonfinite": True})
    nonfinite.case.tensors["input"][0, 0, 0, 0] = NAN
    nonfinite.case.tensors["input"][0, 1, 2, 3] = INF
    return [
        _tanprod("one factor exactly 0 (x + w = 0): the gradient is the other factors' product",
                 130, (1, 1, 3, 4), (1, 1, 2, 2), zeros=[((0, 0, 0, 0), (0, 0, 0, 0))]),
        _tanprod("two zero factors in one window, one in the next", 131, (2, 1, 3, 4), (2, 1, 2, 2),
                 zeros=[((0, 0, 1, 1), (0, 0, 0, 0)), ((0, 0, 2, 2), (0, 0, 1, 1)),
                        ((1, 0, 0, 2), (1, 0, 0, 1))], bias=True),
        padded_zero,
        nonfinite,
        _tanprod("a batch of 3", 134, (3, 1, 3, 3), (1, 1, 2, 2), bias=True),
        _tanprod("an output row of 33: one past a 32-wide tile", 135, (1, 1, 2, 35), (2, 1, 2, 3)),
    ]


# ----------------------------------------------------------------------------- conv2_5d


def _conv2_5d(name, seed, depth, bins, channels=(1, 2), kernel=(3, 3), bias=True, needs=None,
              batch=1, **params):
    """``depth`` ``[H, W]`` (every sample); bins, (C, O) and the kernel size as given."""
    rng = _rng(seed)
    h, w = depth.shape
    c, o = channels
    tensors = {
        "input": rng.standard_normal((batch, c, h, w)),
        "depth": np.repeat(np.asarray(depth, dtype=np.float64)[None, None], batch, axis=0),
        "weight": rng.standard_normal((bins, o, c, *kernel)),
        "bias": rng.standard_normal(o) if bias else None,
    }
    params = {"stride": 1, "padding": 1, "dilation": 1, "focal": 1.0, "pixel_size": 0.5, **params}
    return Boundary(name, Case("conv2_5d", tensors, params, seed), needs or {})


# Depths on a grid of quarters around 2: with focal 1 and pixel_size 0.5 a centre depth
# of 2 gives s = 1, so for B = 3 the edges are 0.5, 1.5, 2.5, 3.5 and for B = 2 they are
# 1, 2, 3: many taps lie exactly on an edge.
EDGE_DEPTHS = np.array([[2.0, 1.5, 2.5, 3.5, 0.5],
                        [1.0, 2.0, 3.0, 2.0, 1.5],
                        [2.5, 0.5, 2.0, 1.0, 3.0],
                        [3.5, 2.0, 1.5, 2.5, 2.0]])


def conv2_5d() -> list[Boundary]:
    closed = EDGE_DEPTHS.copy()
    closed[1, 1], closed[2, 3] = 0.0, -1.0  # two window centres open no bin
    nonfinite_depth = EDGE_DEPTHS.copy()
    nonfinite_depth[1, 1], nonfinite_depth[2, 2], nonfinite_depth[0, 3] = NAN, INF, NAN
    nan_input = _conv2_5d("NaN and inf input cells", 147, EDGE_DEPTHS, 3,
                          needs={"nonfinite": True})
    nan_input.case.tensors["input"][0, 0, 1, 2] = NAN
    nan_input.case.tensors["input"][0, 0, 3, 0] = INF
    return [
        _conv2_5d("centre depth 0 and negative: those windows give the bias", 140, closed, 3),
        _conv2_5d("odd bins (B=3), taps exactly on bin edges (half-open)", 141, EDGE_DEPTHS, 3),
        _conv2_5d("one bin (B=1)", 142, EDGE_DEPTHS, 1),
        _conv2_5d("even bins (B=2): the centre lies on edge B/2, in bin B/2", 143, EDGE_DEPTHS, 2),
        _conv2_5d("constant depth, no padding: only the middle bin opens", 145,
                  np.full((4, 5), 1.75), 3, padding=0, focal=2.0, pixel_size=1.0),
        _conv2_5d("NaN and inf depths, at window centres and off them", 146, nonfinite_depth, 3,
                  needs={"nonfinite": True}),
        nan_input,
        _conv2_5d("a batch of 3", 148, EDGE_DEPTHS, 3, batch=3),
        _conv2_5d("an output row of 33: one past a 32-wide tile", 149,
                  np.tile(EDGE_DEPTHS[:3], (1, 7))[:, :33], 3, kernel=(3, 1), padding=(1, 0)),
        _conv2_5d("five bins and a 5x5 kernel (B = kernel size)", 144, np.tile(EDGE_DEPTHS, (2, 2)),
                  5, kernel=(5, 5), padding=2),
    ]


# ----------------------------------------------------------------------------- deform

ROW_TARGETS = lambda h: [-1, 0, h - 1, h, 1.5, -0.5, h - 0.5, 1]  # noqa: E731
COL_TARGETS = lambda w: [w, 0.25, -1, w - 1, 2, 0, -0.75]  # noqa: E731


def _deform(name, seed, input_shape, weight_shape, offset_groups=1, rows=None, cols=None,
            mask=False, bias=False, needs=None, **params):
    """Offsets chosen so that tap k of output (y, x) samples row ``rows[...]`` and column
    ``cols[...]`` exactly (each list cycled over taps and positions; lengths 8 and 7 mix
    every row with every column)."""
    rng = _rng(seed)
    n, c, h, w = input_shape
    params = {"stride": 1, "padding": 0, "dilation": 1, **params}
    geometry = conv_geometry("deform_conv2d", input_shape, weight_shape[2:], params["stride"],
                             params["padding"], params["dilation"])
    (kh, kw), (oh, ow) = geometry.kernel, geometry.out_size
    shape = (n, offset_groups, kh * kw, oh, ow)
    base_y = np.stack([geometry.positions(0, i) for i in range(kh) for _ in range(kw)])
    base_x = np.stack([geometry.positions(1, j) for _ in range(kh) for j in range(kw)])
    target_y = np.resize(np.asarray(ROW_TARGETS(h) if rows is None else rows, float), shape)
    target_x = np.resize(np.asarray(COL_TARGETS(w) if cols is None else cols, float), shape)
    dy = target_y - base_y[:, :, None]
    dx = target_x - base_x[:, None, :]
    tensors = {
        "input": rng.standard_normal(input_shape),
        "offset": np.stack([dy, dx], axis=3).reshape(n, 2 * offset_groups * kh * kw, oh, ow),
        "weight": rng.standard_normal(weight_shape),
        "bias": rng.standard_normal(weight_shape[0]) if bias else None,
        "mask": rng.choice([0.0, 0.5, 1.0, 0.25], (n, offset_groups * kh * kw, oh, ow)) if mask else None,
    }
    return Boundary(name, Case("deform_conv2d", tensors, params, seed), needs or {})


def deform_conv2d() -> list[Boundary]:
    nan_offset = _deform("a NaN in one offset coordinate (torchvision crashes here)", 157,
                         (1, 2, 4, 5), (2, 2, 2, 2), needs={"nonfinite_offsets": True})
    offset = nan_offset.case.tensors["offset"]
    offset[0, 0, 0, 0], offset[0, 3, 1, 2] = NAN, NAN  # a dy of one sample, a dx of another
    inf_offset = _deform("infinite offsets sample 0", 158, (1, 2, 4, 5), (2, 2, 2, 2),
                         needs={"nonfinite_offsets": True})
    offset = inf_offset.case.tensors["offset"]
    offset[0, 0, 0, 1], offset[0, 5, 2, 3], offset[0, 6, 1, 0] = INF, -INF, INF
    nan_input = _deform("NaN and inf input cells, read with bilinear weight 0 too", 159,
                        (1, 2, 4, 5), (2, 2, 2, 2), rows=[0, 1, 2, 3, -1, 4],
                        cols=[0, 1, 2, 3, 4, -1, 5], needs={"nonfinite": True})
    nan_input.case.tensors["input"][0, 0, 1, 1] = NAN
    nan_input.case.tensors["input"][0, 1, 0, 4] = INF
    return [
        _deform("samples on rows -1, 0, H-1, H and columns -1, 0, W-1, W (v1)", 150,
                (1, 2, 4, 5), (2, 2, 2, 2), bias=True),
        _deform("the same edges with a mask (v2), mask values 0 to 1", 151, (2, 2, 4, 5),
                (3, 2, 2, 2), mask=True),
        _deform("integer sample points: one-sided (right-hand) gradients", 152, (1, 1, 4, 4),
                (1, 1, 3, 3), rows=[-2, 0, 1, 3, 2, 4, -1, 1, 2], cols=[1, 0, 2, 3, 4, -1, 1, 2]),
        _zero_offsets(),
        _deform("weight groups (2) and offset groups (4) independent", 154, (1, 4, 4, 5),
                (2, 2, 2, 2), offset_groups=4, mask=True),
        _deform("stride, padding and dilation with edge samples", 155, (1, 2, 5, 6), (2, 2, 2, 3),
                stride=2, padding=1, dilation=(2, 1)),
        nan_offset,
        inf_offset,
        nan_input,
        _deform("a batch of 3, with a mask", 160, (3, 2, 4, 5), (2, 2, 2, 2), mask=True),
        _deform("an output row of 33: one past a 32-wide tile", 161, (1, 2, 2, 35), (2, 2, 2, 3)),
        _deform("8 offset groups over 8 channels, 2 weight groups", 162, (1, 8, 4, 4),
                (4, 4, 2, 2), offset_groups=8, mask=True),
    ]


def _zero_offsets() -> Boundary:
    rng = _rng(153)
    tensors = {"input": rng.standard_normal((1, 2, 4, 5)), "offset": np.zeros((1, 18, 4, 5)),
               "weight": rng.standard_normal((2, 2, 3, 3)), "bias": rng.standard_normal(2),
               "mask": None}
    case = Case("deform_conv2d", tensors, {"stride": 1, "padding": 1, "dilation": 1}, 153)
    return Boundary("zero offsets: conv2d, integer samples everywhere", case)


# ----------------------------------------------------------------------------- pooling


def _pool(op, name, seed, values, needs=None, **params):
    case = Case(op, {"input": np.asarray(values, dtype=np.float64)}, params, seed)
    return Boundary(name, case, needs or {})


def _grid(rng, shape, low=-3, high=4):
    """Small integers (many ties), never all zero."""
    values = rng.integers(low, high, shape).astype(np.float64)
    values.flat[0] = high
    return values


def max_pool2d() -> list[Boundary]:
    rng = _rng(160)
    with_nan = _grid(rng, (1, 2, 5, 5))
    with_nan[0, 0, 0, 1] = NAN
    with_nan[0, 0, 1, 0] = NAN  # two NaNs in one window
    with_nan[0, 1, 4, 4] = NAN  # in the ceil-mode overhang window
    infinite = _grid(rng, (1, 1, 4, 4))
    infinite[0, 0, :2, :2] = -INF  # a window of -inf only: its first cell is the index
    infinite[0, 0, 3, 3] = INF
    nonfinite = {"nonfinite": True}
    return [
        _pool("max_pool2d", "ceil_mode: the last window overhangs the input", 161,
              _grid(rng, (1, 2, 5, 5)), kernel_size=2, stride=2, ceil_mode=True,
              return_indices=True),
        _pool("max_pool2d", "ceil_mode: a window starting in the right padding is dropped", 162,
              _grid(rng, (1, 1, 4, 4)), kernel_size=2, stride=3, padding=1, ceil_mode=True,
              return_indices=True),
        _pool("max_pool2d", "ties: the first index in row-major window order wins", 163,
              np.ones((1, 1, 4, 5)) * np.array([1, 2, 2, 1, 2.0]), kernel_size=(2, 3), stride=1,
              return_indices=True),
        _pool("max_pool2d", "negative input with padding: padding is -inf, not 0", 164,
              -1.0 - rng.integers(0, 3, (2, 1, 3, 4)), kernel_size=3, stride=2, padding=1,
              return_indices=True),
        _pool("max_pool2d", "dilation and ceil_mode", 165, _grid(rng, (1, 1, 6, 5)),
              kernel_size=2, stride=2, dilation=2, ceil_mode=True, return_indices=True),
        _pool("max_pool2d", "NaN wins (the last NaN of a window), also in the overhang", 166,
              with_nan, kernel_size=2, stride=2, ceil_mode=True, return_indices=True,
              needs=nonfinite),
        _pool("max_pool2d", "-inf windows and +inf", 167, infinite, kernel_size=2, stride=2,
              return_indices=True, needs=nonfinite),
        _pool("max_pool2d", "a batch of 3", 168, rng.standard_normal((3, 2, 4, 4)), kernel_size=2,
              return_indices=True),
        _pool("max_pool2d", "an output row of 33: one past a 32-wide tile", 169,
              rng.standard_normal((1, 2, 3, 35)), kernel_size=3, stride=1, return_indices=True),
        _pool("max_pool2d", "a 5x5 window", 159, rng.standard_normal((1, 1, 7, 8)), kernel_size=5,
              stride=2, padding=2, return_indices=True),
    ]


def avg_pool2d() -> list[Boundary]:
    rng = _rng(170)
    nonfinite = rng.standard_normal((1, 2, 5, 5))
    nonfinite[0, 0, 1, 1], nonfinite[0, 1, 4, 4], nonfinite[0, 1, 0, 0] = NAN, INF, -INF
    return [
        _pool("avg_pool2d", "ceil_mode overhang: count_include_pad never counts it", 171,
              rng.standard_normal((1, 2, 5, 5)), kernel_size=2, stride=2, ceil_mode=True,
              count_include_pad=True),
        _pool("avg_pool2d", "ceil_mode with padding, count_include_pad", 172,
              rng.standard_normal((1, 1, 5, 6)), kernel_size=3, stride=2, padding=1,
              ceil_mode=True, count_include_pad=True),
        _pool("avg_pool2d", "ceil_mode with padding, without count_include_pad", 173,
              rng.standard_normal((1, 1, 5, 6)), kernel_size=3, stride=2, padding=1,
              ceil_mode=True, count_include_pad=False),
        _pool("avg_pool2d", "divisor_override, negative", 174, rng.standard_normal((2, 1, 4, 4)),
              kernel_size=2, padding=1, divisor_override=-3),
        _pool("avg_pool2d", "NaN, +inf and -inf cells", 175, nonfinite, kernel_size=2, stride=2,
              ceil_mode=True, needs={"nonfinite": True}),
        _pool("avg_pool2d", "a batch of 3", 176, rng.standard_normal((3, 1, 4, 4)), kernel_size=2),
        _pool("avg_pool2d", "an output row of 33: one past a 32-wide tile, a 5-wide window", 177,
              rng.standard_normal((1, 2, 2, 37)), kernel_size=(1, 5), stride=1, padding=0),
    ]
