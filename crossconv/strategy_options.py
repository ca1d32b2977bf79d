"""What each option of the case strategies means, and which options pin each argument.

The options of :mod:`crossconv.strategies` are the "limits" of a registry row and of
``crossconv verify --limit KEY=VALUE``. :data:`OPTIONS` says what each one narrows (shown
by ``crossconv verify --op NAME --limit help``); :data:`PINS` says, for every argument of
every op, the options under which the argument always keeps its default (docs/<op>.md), so that
verify can check a function lacking that argument where the argument does not matter.
"""

from __future__ import annotations

import inspect
from typing import Any

from . import strategies
from .registry import OPS

#: Option -> what it does. Shared by every op that has the option.
OPTIONS: dict[str, str] = {
    "dtypes": "dtypes drawn, e.g. ('float32',); verify draws float16 and bfloat16 too for torch "
              "and JAX functions, and takes them here",
    "max_batch": "largest batch N (the small tier draws 1-2; the large tier 3 and up)",
    "max_groups": "largest number of weight groups",
    "max_group_channels": "largest input channels per weight group (the small tier draws up to 3)",
    "max_channels": "largest number of input channels",
    "max_out_channels": "largest number of output channels",
    "max_offset_groups": "largest number of offset groups",
    "max_kernel": "largest kernel side (the small tier draws up to 3; the large tier 4 and up)",
    "square_kernel": "True: square kernels only (kh == kw)",
    "max_stride": "largest stride",
    "max_dilation": "largest dilation (1: no dilation)",
    "max_padding": "largest padding (0: no padding)",
    "square": "True: stride, padding and dilation (and pooling's kernel_size) as one int each, "
              "the same on both axes",
    "string_padding": "False: never padding='same' or 'valid'",
    "max_extra": "how far the small tier's input sides go past the smallest valid size",
    "max_out_size": "largest output side of the large tier (<= 32: no long sides)",
    "max_template": "largest template side (the small tier draws up to 4; the large tier past 16)",
    "max_bins": "largest number of depth bins B",
    "bins_equal_kernel": "True: B = kh, as in the 2.5D paper",
    "focal": "None: drawn from 0.5, 1, 2, 4; a number fixes it",
    "pixel_size": "None: drawn from 0.5, 1, 2; a number fixes it",
    "bias": "None: with and without bias; True: always a bias; False: never",
    "with_mask": "None: v1 and v2; True: always a mask (v2); False: never (v1)",
    "smooth": "True: sample points away from integer coordinates (for finite differences)",
    "zero_factors": "this many input cells set so that one tan factor is exactly 0",
    "stride_none": "None: stride=None (the kernel size) and explicit strides; True: always None; "
                   "False: never None",
    "ceil_mode": "None: both; True/False fixes it",
    "return_indices": "None: both; True/False fixes it",
    "count_include_pad": "None: both; True/False fixes it",
    "divisor_override": "True: drawn (None, 1, 2, 5, -3); False: never passed (None)",
    "distinct": "True: all-distinct input values (no ties)",
    "nonfinite": "True: NaN/+inf/-inf input (and depth) cells in half the draws; False: finite only",
    "nonfinite_offsets": "True: NaN/+inf/-inf offset coordinates in half the draws (torchvision "
                         "crashes on a NaN one)",
    "alpha": "None: the depth-similarity scale drawn from 0, 0.25, 1, 3 (0: depth off); a "
             "number fixes it",
    "tied_depths": "True: depths on a grid (ties) or uniform; False: distinct depths 0.1 apart "
                   "(no tap at its centre's depth, for finite differences)",
    "image_like": "True: pixel-valued input (0..255) over reductions of 27 terms or more",
    "large": "fraction of draws in the large tier (0: none; default 0.1)",
}

#: op -> argument -> the options that keep that argument at its documented default
#: (each op's ``PINS`` entry in its cases file).
PINS: dict[str, dict[str, dict[str, Any]]] = {name: op.pins for name, op in OPS.items()}


def options(op: str) -> dict[str, Any]:
    """The options of ``op``'s strategy and their defaults."""
    strategy = getattr(strategies, f"{op}_cases")
    return {name: p.default for name, p in inspect.signature(strategy).parameters.items()
            if p.default is not inspect.Parameter.empty}


def help_lines(op: str) -> list[str]:
    """One line per option of ``op``: name, default, meaning, and the arguments it pins."""
    pinned_by = {}
    for argument, pins in PINS[op].items():
        for key in pins:
            pinned_by.setdefault(key, []).append(argument)
    lines = []
    for key, default in options(op).items():
        argument = f" [argument {', '.join(pinned_by[key])}]" if key in pinned_by else ""
        lines.append(f"{key}={default!r}: {OPTIONS.get(key, '')}{argument}")
    return lines
