"""Calling an op's kernel contract functions on a :class:`~crossconv.cases.Case`, in any
framework.

The GPU kernels of each backend (``torch_impl/kernels/<file>.py``, ``jax_impl/kernels/<file>.py``)
and its native code expose, per op, a forward and a backward function named by the
registry (``Op.contract``: ``forward``/``backward``, or prefixed where a file holds two
ops). Their parameters say what they take, by name:

- the op's tensor arguments but the bias (which the op adds), named as the op names them;
- ``grad_out``, first, in a backward; ``indices``, the forward's second output (max
  pooling's backward reads the argmax indices rather than the input);
- the geometry and scalars of the call: ``geometry`` and the other fields of what the
  op's signature check (``reference.<file>.<op>_signature``) returns, then the op's own
  arguments (``count_include_pad``, ...).

So one adapter serves every op and both kernel families: :func:`bind` fills a contract
function's parameters from a case, :func:`forward` and :func:`backward` call the pair.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from reference.common import Geometry

from .cases import Case
from .registry import OPS, Op


def _shape(value):
    return None if value is None else tuple(value.shape)


def call_values(case: Case) -> dict[str, Any]:
    """Everything a contract function may ask for by name, but the tensors: the fields
    of the op's checked signature (``geometry``, ``alpha``, ``groups``, ...) and the
    call's arguments with the op's defaults."""
    op = OPS[case.op]
    shapes = {name: _shape(value) for name, value in case.tensors.items()}
    sig = op.signature(**shapes, **case.params)
    defaults = {name: p.default for name, p in inspect.signature(op.reference).parameters.items()
                if p.default is not inspect.Parameter.empty}
    values = {**defaults, **case.params}
    if isinstance(sig, Geometry):
        values["geometry"] = sig
    else:
        values.update({f.name: getattr(sig, f.name) for f in dataclasses.fields(sig)})
    return values


def bind(fn: Callable, tensors: Mapping[str, Any], values: Mapping[str, Any]) -> list:
    """``fn``'s positional arguments, each taken by its parameter's name from ``tensors``
    (framework arrays, None for an absent optional one) or ``values``."""
    arguments = []
    for name in inspect.signature(fn).parameters:
        if name in tensors:
            arguments.append(tensors[name])
        elif name in values:
            arguments.append(values[name])
        else:
            raise TypeError(f"{fn.__module__}.{fn.__name__}: nothing in the case for its "
                            f"parameter {name!r}")
    return arguments


def functions(op: Op, module: ModuleType) -> tuple[Callable, Callable]:
    """The op's forward and backward contract functions in ``module``."""
    return tuple(getattr(module, name) for name in op.contract)


def gradient_names(op: Op) -> tuple[str, ...]:
    """The arguments a backward returns gradients for, in order (the bias's is the op's)."""
    return tuple(name for name in op.differentiable if name != "bias")


def forward(module: ModuleType, case: Case, tensors: Mapping[str, Any],
            values: Mapping[str, Any] | None = None):
    """The op's forward contract function in ``module`` on ``tensors`` (the case's
    tensors as framework arrays): its result, without the bias."""
    op = OPS[case.op]
    fn = functions(op, module)[0]
    return fn(*bind(fn, tensors, call_values(case) if values is None else values))


def backward(module: ModuleType, case: Case, tensors: Mapping[str, Any], grad_out,
             outputs: tuple = (), values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The op's backward contract function in ``module``: ``{argument: gradient}`` for
    every differentiable argument given but the bias. ``outputs``: the forward's
    outputs, for a backward that reads them (``indices``)."""
    op = OPS[case.op]
    fn = functions(op, module)[1]
    available = {**dict(zip(("output", "indices"), outputs)), **tensors, "grad_out": grad_out}
    result = fn(*bind(fn, available, call_values(case) if values is None else values))
    result = result if isinstance(result, tuple) else (result,)
    grads = {}
    for name, grad in zip(gradient_names(op), result, strict=True):
        if tensors.get(name) is not None:
            grads[name] = grad
        elif grad is not None:
            raise AssertionError(f"{fn.__name__} returned a gradient for the absent {name}")
    return grads
