"""Every op's cases, one file per op with the reference's file names.

``crossconv/cases/<file>.py`` holds, for each op of ``reference/<file>.py``, next to its
loop oracle (``crossconv/oracles/<file>.py``):

- ``<op>_cases(**limits)``: the Hypothesis strategy drawing valid calls (re-exported by
  :mod:`crossconv.strategies`; :mod:`crossconv.cases.common` holds what they share);
- ``<op>_boundary()``: the boundary cases, fixed calls on the edges of the definition;
- ``<op>_goldens()``: golden cases, calls with a known output;
- ``<op>_sample(dtype, seed, smooth)``: one small fixed call where the op is not trivial
  (``smooth``: away from the kinks finite differences cannot cross), for tests of a
  framework's transforms.

The registry (:mod:`crossconv.registry`) finds them by these names. This module holds
the data types they return: :class:`Case`, :class:`Boundary` and :class:`Golden`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import reference

#: The tensor arguments without a batch axis, in every op (docs/index.md).
UNBATCHED = ("weight", "bias")


@dataclass(frozen=True)
class Case:
    """The arguments of one call of ``op``.

    ``tensors`` maps the op's tensor arguments, in signature order, to arrays (or None for
    an absent optional one); ``params`` holds every other keyword argument. ``seed`` drives
    whatever a check needs beyond the arguments (output cotangents, directions).
    """

    op: str
    tensors: dict[str, np.ndarray | None]
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @property
    def dtype(self) -> np.dtype:
        return next(t.dtype for t in self.tensors.values() if t is not None)

    def call(self, fn: Callable, convert: Callable = lambda a: a, **extra):
        """``fn(**tensors, **params, **extra)`` with every present tensor passed through ``convert``."""
        tensors = {k: (None if v is None else convert(v)) for k, v in self.tensors.items()}
        return fn(**tensors, **self.params, **extra)

    def with_tensor(self, name: str, value: np.ndarray) -> Case:
        return Case(self.op, {**self.tensors, name: value}, self.params, self.seed)

    def with_batch(self, size: int) -> Case:
        """The first ``size`` samples: every tensor but ``weight`` and ``bias`` is batched."""
        tensors = {
            k: v if v is None or k in UNBATCHED else v[:size] for k, v in self.tensors.items()
        }
        return Case(self.op, tensors, self.params, self.seed)

    def describe(self) -> str:
        shapes = ", ".join(
            f"{k}={'None' if v is None else tuple(v.shape)}" for k, v in self.tensors.items()
        )
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.op}({shapes}{', ' if params else ''}{params}) [{self.dtype}, seed={self.seed}]"


def as_outputs(result) -> tuple[np.ndarray, ...]:
    """An op's result as a tuple whose first entry is the differentiable output."""
    return tuple(result) if isinstance(result, tuple) else (result,)


@dataclass(frozen=True)
class Boundary:
    """A named case on an edge of the op's definition and the strategy options it needs
    (:func:`crossconv.boundary.admits`)."""

    name: str
    case: Case
    needs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Golden:
    """A case with its known output: written out (from the blog posts, or by hand) or
    built by an independent construction named in ``source``."""

    name: str
    source: str
    case: Case
    expected: np.ndarray

    @property
    def op(self) -> str:
        return self.case.op

    def run(self) -> tuple[np.ndarray, np.ndarray]:
        """``(actual, expected)``: the reference's output on the case, and the known one."""
        return as_outputs(self.case.call(getattr(reference, self.op)))[0], self.expected
