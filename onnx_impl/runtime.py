"""Running the graphs: argument checks, the model cache and the sessions.

A call of an op is planned as a :class:`Spec` (everything its graph depends on: the
dtype, every size but the batch, the static arguments; frozen, so it is the cache key)
and the feeds (the NumPy arrays). :func:`model` builds a spec's graph once; :func:`run`
runs it on one of two runtimes:

- ``"onnxruntime"`` (the default): an ``onnxruntime.InferenceSession`` per spec, cached,
  on the CUDA execution provider when this onnxruntime has it (then the CPU for what it
  lacks), else on the CPU, with :func:`configure`'s thread count and no spinning threads
  (the CPUs are shared).
- ``"reference"``: ``onnx.reference.ReferenceEvaluator`` on the same model, the ONNX
  specification's own NumPy evaluator (slow; see docs/onnx.md for what it gets wrong).

The batch axis of every graph is dynamic, so one session serves every batch size, an
empty batch included.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from reference.common import REFERENCE_KIND, check_float_dtypes, check_tensor_types

from .graph import BATCH, Graph

RUNTIMES = ("onnxruntime", "reference")
DTYPES = ("float32", "float64")
#: Sessions kept (least recently used dropped): one per op, static arguments and dtype.
CACHE_SIZE = 256


@dataclass(frozen=True)
class Spec:
    """One graph: an op's tensor arguments, outputs and static arguments.

    Subclasses (one per op) add their static fields and implement :meth:`arguments`,
    :meth:`results` and :meth:`build`. Shapes use None for the batch axis.
    """

    dtype: str

    op = ""

    def arguments(self) -> list[tuple[str, tuple]]:
        """``(name, shape)`` of each graph input (present tensor arguments only)."""
        raise NotImplementedError

    def results(self) -> list[tuple[str, tuple, str]]:
        """``(name, shape, dtype)`` of each graph output."""
        raise NotImplementedError

    def build(self, g, **values) -> tuple:
        """The op's nodes on graph ``g`` (the one definition of its graph): its output
        values, given its input values by argument name."""
        raise NotImplementedError


def _shape(shape) -> list:
    return [BATCH if size is None else int(size) for size in shape]


# ----------------------------------------------------------------------------- arguments


def check_runtime(op: str, runtime) -> str:
    if runtime not in RUNTIMES:
        raise ValueError(f"{op}: runtime must be one of {', '.join(map(repr, RUNTIMES))}, "
                         f"got {runtime!r}")
    return runtime


def arrays(op: str, **tensors) -> tuple[dict[str, np.ndarray | None], str]:
    """The tensor arguments (None stays None) as given, nothing copied, and their common
    dtype: NumPy arrays of float32 or float64, the same for all (nothing is cast).
    ``TypeError`` naming the argument otherwise (the reference's rule,
    ``reference.common.check_arrays``): a list, a torch tensor or a scalar is not
    converted (``np.asarray`` it first), a required tensor may not be None."""
    check_tensor_types(op, np.ndarray, REFERENCE_KIND, tensors)
    dtype = check_float_dtypes(op, {k: None if v is None else v.dtype
                                    for k, v in tensors.items()}, DTYPES, same=True)
    return dict(tensors), dtype


def batched(shape) -> tuple:
    """A shape with its batch axis dynamic."""
    return (None, *tuple(int(s) for s in shape[1:]))


# ----------------------------------------------------------------------------- models


@functools.lru_cache(maxsize=CACHE_SIZE)
def model(spec: Spec) -> onnx.ModelProto:
    """The spec's graph as a standalone model (cached: do not modify it; copy it first)."""
    g = Graph(spec.dtype, spec.op)
    values = {name: g.input(name, _shape(shape)) for name, shape in spec.arguments()}
    outputs = spec.build(g, **values)
    for value, (name, shape, dtype) in zip(outputs, spec.results(), strict=True):
        g.output(value, name, _shape(shape), dtype)
    return g.model()


# ----------------------------------------------------------------------------- sessions

_settings = {"threads": None}


def configure(threads: int | None = None) -> None:
    """onnxruntime's intra-op threads per session (default: the CPUs this process may
    run on). Sessions made before keep theirs: the cache is cleared."""
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    _settings["threads"] = threads
    _session.cache_clear()


def threads() -> int:
    if _settings["threads"] is not None:
        return _settings["threads"]
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def providers() -> list[str]:
    """The CUDA execution provider first when this onnxruntime has it, the CPU always."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    preferred = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in preferred if p in available]


@functools.lru_cache(maxsize=CACHE_SIZE)
def _session(spec: Spec, runtime: str):
    if runtime == "reference":
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(model(spec))
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    # Idle threads sleep instead of spinning: the CPUs here are shared.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model(spec).SerializeToString(), options,
                                        providers=providers())


def run(spec: Spec, feeds: Mapping[str, np.ndarray | None], runtime: str = "onnxruntime"):
    """Run ``spec``'s graph on ``feeds`` (argument name -> array; None for an absent
    optional argument): its output, or a tuple of outputs."""
    check_runtime(spec.op, runtime)
    inputs = {name: np.ascontiguousarray(feeds[name]) for name, _ in spec.arguments()}
    outputs = _session(spec, runtime).run(None, inputs)
    outputs = [np.asarray(o) for o in outputs]
    return outputs[0] if len(outputs) == 1 else tuple(outputs)

