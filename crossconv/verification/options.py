"""Limits: the user's (``--limit KEY=VALUE`` or ``limits={...}``) and the automatic ones
that follow the function's signature."""

from __future__ import annotations

import ast
import inspect

from .. import strategy_options
from ..registry import OPS
from . import dtypes as dt


class UsageError(Exception):
    """A bad option, or a function that cannot be loaded: the CLI exits 2."""


def parse_limit_items(op: str, items) -> dict:
    """``["max_dilation=1", ...]`` as a dict; VALUE is a Python literal."""
    limits = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise UsageError(f"--limit {item!r}: expected KEY=VALUE (--limit help lists the keys)")
        try:
            limits[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            raise UsageError(f"--limit {key}={text}: the value must be a Python literal "
                             f"(e.g. 1, True, ('float32',))") from None
    return limits


def check_limits(op: str, limits: dict, half_ok: bool) -> dict:
    """``limits`` validated against ``op``'s strategy options (``dtypes`` as a tuple)."""
    known = strategy_options.options(op)
    checked = {}
    for key, value in limits.items():
        if key not in known:
            raise UsageError(f"--limit {key}: unknown for {op}; its options are "
                             + ", ".join(f"{k} (default {v!r})" for k, v in known.items())
                             + " (--limit help describes them)")
        if key == "dtypes":
            value = (value,) if isinstance(value, str) else tuple(value)
            allowed = dt.ALL if half_ok else dt.FLOATS
            if not value or not set(value) <= set(allowed):
                raise UsageError(f"--limit dtypes={value!r}: one or more of {', '.join(allowed)}")
        checked[key] = value
    return checked


def limit_help(op: str) -> str:
    lines = [f"--limit keys of {op} (KEY=VALUE, VALUE a Python literal; the default first):"]
    lines += ["  " + line for line in strategy_options.help_lines(op)]
    return "\n".join(lines)


def spec_arguments(op: str) -> tuple[list[str], list[str]]:
    """The op's arguments: ``(required, optional)``, in the order of the op's signature (docs/)."""
    parameters = inspect.signature(OPS[op].reference).parameters.values()
    required = [p.name for p in parameters if p.default is inspect.Parameter.empty]
    optional = [p.name for p in parameters if p.default is not inspect.Parameter.empty]
    return required, optional


def follow_signature(op: str, accepted, limits: dict) -> tuple[dict, list[str]]:
    """The limits that keep every argument the function lacks at its default, and those
    arguments. ``UsageError`` when it lacks one every call needs."""
    if accepted is None:
        return {}, []
    required, optional = spec_arguments(op)
    lacking = [name for name in required if name not in accepted]
    if lacking:
        raise UsageError(f"the function has no argument {', '.join(map(repr, lacking))}, which "
                         f"every call of {op} passes (verify calls it with the contract's names: "
                         f"{', '.join(required + optional)})")
    untested = [name for name in optional if name not in accepted]
    automatic = {}
    for name in untested:
        for key, value in strategy_options.PINS[op].get(name, {}).items():
            if key not in limits:
                automatic[key] = value
    return automatic, untested
