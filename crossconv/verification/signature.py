"""Which of the op's arguments (docs/) a function accepts, and calling it with only those."""

from __future__ import annotations

import inspect

import numpy as np


def spec_defaults(reference_fn) -> dict:
    """The op's documented defaults: the reference's keyword defaults."""
    return {name: p.default for name, p in inspect.signature(reference_fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def accepted_arguments(fn) -> list[str] | None:
    """The argument names ``fn`` accepts by keyword; None when it takes ``**kwargs`` or its
    signature cannot be inspected (builtins such as ``F.conv2d``: called with everything)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


class Signature:
    """Calls a function with the arguments it has; one it lacks is left out while the case
    gives it the op's default."""

    def __init__(self, accepted: list[str] | None, defaults: dict):
        self.accepted = None if accepted is None else set(accepted)
        self.defaults = defaults

    def arguments(self, kwargs: dict) -> dict:
        """``kwargs`` without the arguments the function lacks; ``TypeError`` if the case
        needs one of them at a value other than its default."""
        if self.accepted is None:
            return kwargs
        kept = {}
        for name, value in kwargs.items():
            if name in self.accepted:
                kept[name] = value
            elif not is_default(value, self.defaults.get(name, inspect.Parameter.empty)):
                raise TypeError(f"the function has no argument {name!r}, and this case needs "
                                f"{name}={_short(value)} (narrow the draw with --limit)")
        return kept


def is_default(value, default) -> bool:
    if default is inspect.Parameter.empty:
        return False
    if value is None or default is None:
        return value is None and default is None
    if hasattr(value, "shape") and not isinstance(value, np.ndarray | np.generic):
        return False  # a tensor argument given: never its default (None)
    try:
        return bool(np.all(np.asarray(value) == np.asarray(default)))
    except (TypeError, ValueError):
        return False


def _short(value) -> str:
    return f"array{tuple(value.shape)}" if hasattr(value, "shape") else repr(value)
