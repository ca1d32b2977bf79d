"""Running the function under test on one call, in the worker process: one runner per framework.

A :class:`Call` holds NumPy arrays and instructions (the dtype and memory layout the
function must get, the cotangent for gradients); the runner makes the framework's tensors
inside the worker, calls the function, and returns NumPy arrays in a :class:`Result` (a
bfloat16 result as float32, which holds it exactly). So nothing of torch or JAX crosses
the process boundary, and the parent need not import the framework at all.

:data:`RUNNERS` is the table of frameworks: adding one is a class with ``run`` and an
entry there, plus its line in :data:`crossconv.verification.frameworks.FRAMEWORKS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..cases import as_outputs


@dataclass
class Call:
    """One call of the function: ``label`` names it in reports ("forward", "gradients",
    "gradients, again", "forward [channels_last]", "batch variant")."""

    label: str
    tensors: dict[str, np.ndarray | None]
    params: dict[str, Any]
    dtype: str
    layout: str = "contiguous"
    cotangent: np.ndarray | None = None
    wrt: tuple[str, ...] = ()
    outputs: int = 1


@dataclass
class Result:
    """What one call returned: its outputs (NumPy), their dtype names and, for a gradient
    call, the gradients; or ``error`` (an exception, or a result of the wrong kind)."""

    outputs: list[np.ndarray] = field(default_factory=list)
    dtypes: list[str] = field(default_factory=list)
    grads: dict[str, np.ndarray | None] | None = None
    error: str = ""
    seconds: float = 0.0


def describe_result_kind(result, expected: int, array_types, what: str) -> str:
    """Why ``result`` is not what the op returns (``expected`` outputs of ``what``), or ""."""
    def kind(value):
        if value is None:
            return "None"
        if isinstance(value, (list, tuple)):
            return f"a {type(value).__name__} of {len(value)} items"
        return f"a {type(value).__module__}.{type(value).__qualname__}"

    if expected == 2:
        if isinstance(result, tuple) and len(result) == 2:
            bad = [v for v in result if not isinstance(v, array_types)]
            return "" if not bad else (f"returned a tuple holding {kind(bad[0])}; return a tuple "
                                       f"(values, indices) of {what}s")
        if isinstance(result, array_types):
            return (f"returned one {what}; with return_indices=True return a tuple (values, "
                    f"indices) of {what}s")
        return f"returned {kind(result)}; return a tuple (values, indices) of {what}s"
    if isinstance(result, array_types):
        return ""
    if isinstance(result, (list, tuple)):
        return f"returned {kind(result)}; return one {what}"
    return f"returned {kind(result)}; return a {what}"


class NumpyRunner:
    """NumPy arrays in and out; gradients from the NumPy VJP given (``--vjp``)."""

    layouts = ("contiguous", "non-contiguous")
    half = False
    float64_ok = True  # a NumPy implementation may return float64, as the reference does
    array_name = "NumPy array"

    def __init__(self, device: str = "cpu", vjp=None):
        if device != "cpu":
            raise LookupError("a NumPy implementation runs on the CPU")
        self.vjp = vjp

    @staticmethod
    def _array(value, dtype, layout):
        value = np.array(value, dtype=dtype)
        if layout == "non-contiguous" and value.ndim:
            base = np.zeros((*value.shape[:-1], 2 * value.shape[-1]), dtype=dtype)
            view = base[..., 1::2]
            view[...] = value
            return view
        return value

    def run(self, fn, call: Call) -> Result:
        tensors = {k: None if v is None else self._array(v, call.dtype, call.layout)
                   for k, v in call.tensors.items()}
        result = fn(**tensors, **call.params)
        problem = describe_result_kind(result, call.outputs, (np.ndarray, np.generic), "array")
        if problem:
            return Result(error=problem)
        outputs = [np.asarray(r) for r in as_outputs(result)]
        grads = None
        if call.cotangent is not None:
            grad_output = self._array(call.cotangent, call.dtype, call.layout)
            returned = self.vjp(grad_output, **tensors, **call.params)
            if not isinstance(returned, dict):
                return Result(error=f"the VJP returned {type(returned).__name__}, expected a dict "
                                    f"like reference.<op>_vjp")
            grads = {name: None if returned.get(name) is None else np.asarray(returned[name])
                     for name in call.wrt}
        return Result(outputs, [o.dtype.name for o in outputs], grads)


class OnnxRunner(NumpyRunner):
    """A function that builds and runs an ONNX graph (onnxruntime, the ONNX reference
    evaluator, any runtime): NumPy arrays in and out, as ``onnx_impl``'s ops take them.
    Forward only: ONNX has no gradients."""

    float64_ok = False  # a graph's outputs have the element types its builder declared

    def __init__(self, device: str = "cpu", vjp=None):
        if device != "cpu":
            raise LookupError("--framework onnx passes NumPy arrays: --device applies to torch "
                              "and jax only (the function picks its execution provider)")
        super().__init__(device)


class TorchRunner:
    """torch tensors on ``device``, in the call's dtype and memory layout; gradients with
    ``torch.autograd.grad``."""

    layouts = ("contiguous", "non-contiguous", "channels_last")
    half = True
    float64_ok = False
    array_name = "torch.Tensor"

    def __init__(self, device: str = "cpu", vjp=None):
        import torch

        if device != "cpu" and not (device.startswith("cuda") and torch.cuda.is_available()):
            raise LookupError(f"torch cannot use device {device!r} here "
                              f"(torch.cuda.is_available() is {torch.cuda.is_available()})")
        self.torch = torch
        self.device = torch.device(device)

    def _tensor(self, value, dtype, layout, requires_grad=False):
        torch = self.torch
        t = torch.from_numpy(np.array(value, copy=True)).to(self.device).to(getattr(torch, dtype))
        if layout == "channels_last" and t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        elif layout == "non-contiguous" and t.dim():
            base = torch.zeros((*t.shape[:-1], 2 * t.shape[-1]), dtype=t.dtype, device=t.device)
            view = base[..., 1::2]
            view.copy_(t)
            t = view
        return t.requires_grad_(requires_grad)

    def _numpy(self, value):
        value = value.detach().cpu()
        dtype = str(value.dtype).removeprefix("torch.")
        if value.dtype == self.torch.bfloat16:
            value = value.float()
        return value.numpy(), dtype

    def run(self, fn, call: Call) -> Result:
        torch = self.torch
        grad = call.cotangent is not None
        tensors = {k: None if v is None else self._tensor(v, call.dtype, call.layout,
                                                           grad and k in call.wrt)
                   for k, v in call.tensors.items()}
        with torch.enable_grad() if grad else torch.no_grad():
            result = fn(**tensors, **call.params)
        problem = describe_result_kind(result, call.outputs, torch.Tensor, "torch.Tensor")
        if problem:
            return Result(error=problem)
        converted = [self._numpy(r) for r in as_outputs(result)]
        outputs, dtypes = [c[0] for c in converted], [c[1] for c in converted]
        grads = None
        if grad:
            output = as_outputs(result)[0]
            inputs = [tensors[name] for name in call.wrt]
            if not output.requires_grad:
                return Result(outputs, dtypes, error="the output does not require grad: the "
                                                     "function detached it from its inputs")
            cotangent = self._tensor(call.cotangent, call.dtype, call.layout)
            values = torch.autograd.grad(output, inputs, grad_outputs=cotangent, allow_unused=True)
            grads = {name: None if g is None else self._numpy(g)[0]
                     for name, g in zip(call.wrt, values)}
        return Result(outputs, dtypes, grads)


class JaxRunner:
    """JAX arrays (with ``jax_enable_x64`` on, so float64 stays float64); gradients with
    ``jax.vjp``.

    Each call is jitted with XLA's quick compile settings (the cases change shape from one
    to the next, so compiling is what a call costs); a jitted function is kept per set of
    arguments, so a repeated call reuses its compilation. A function that cannot be traced
    (it converts arrays to NumPy, branches on values) is called eagerly from then on.
    """

    layouts = ("contiguous",)
    half = True
    float64_ok = False
    array_name = "jax.Array"
    QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}

    def __init__(self, device: str = "cpu", vjp=None):
        import jax

        jax.config.update("jax_enable_x64", True)
        platform = "gpu" if device.startswith("cuda") else device
        try:
            devices = jax.devices(platform)
        except RuntimeError:
            raise LookupError(f"jax cannot use device {device!r} here (it has "
                              f"{jax.default_backend()} devices only)") from None
        self.jax = jax
        self.device = devices[int(device.split(":")[1]) if ":" in device else 0]
        self.eager = False
        self.compiled = {}

    def _array(self, value, dtype):
        return self.jax.device_put(self.jax.numpy.asarray(value, dtype=dtype), self.device)

    @staticmethod
    def _numpy(value):
        dtype = str(value.dtype)
        array = np.asarray(value)
        return (array.astype(np.float32) if dtype == "bfloat16" else array), dtype

    def _function(self, fn, call: Call):
        """``arrays -> (result, grads or None)`` for this call's arguments."""
        jax = self.jax
        params, wrt = call.params, call.wrt
        grad = call.cotangent is not None

        def run(arrays, cotangent):
            result = fn(**arrays, **params)
            if not grad:
                return result, None

            def first_output(*differentiable):
                return as_outputs(fn(**{**arrays, **dict(zip(wrt, differentiable))}, **params))[0]

            output, pullback = jax.vjp(first_output, *(arrays[name] for name in wrt))
            return result, pullback(cotangent.astype(output.dtype))

        if self.eager:
            return run
        key = (repr(params), tuple(sorted((k, v is None) for k, v in call.tensors.items())), wrt, grad)
        if key not in self.compiled:
            self.compiled[key] = jax.jit(run, compiler_options=self.QUICK_COMPILE)
        return self.compiled[key]

    def run(self, fn, call: Call) -> Result:
        jax = self.jax
        arrays = {k: None if v is None else self._array(v, call.dtype) for k, v in call.tensors.items()}
        cotangent = None if call.cotangent is None else self._array(call.cotangent, call.dtype)
        try:
            result, grads = self._function(fn, call)(arrays, cotangent)
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                jax.errors.TracerBoolConversionError, jax.errors.TracerIntegerConversionError):
            self.eager = True  # not traceable: call it as it is
            result, grads = self._function(fn, call)(arrays, cotangent)
        problem = describe_result_kind(result, call.outputs, jax.Array, "jax.Array")
        if problem:
            return Result(error=problem)
        converted = [self._numpy(r) for r in as_outputs(result)]
        outputs, dtypes = [c[0] for c in converted], [c[1] for c in converted]
        if grads is not None:
            grads = {name: self._numpy(g)[0] for name, g in zip(call.wrt, grads)}
        return Result(outputs, dtypes, grads)


RUNNERS = {"numpy": NumpyRunner, "onnx": OnnxRunner, "torch": TorchRunner, "jax": JaxRunner}


def run_call(runner, fn, call: Call) -> Result:
    """``runner.run`` with the time taken, an exception as the result's ``error``."""
    import warnings

    started = time.perf_counter()
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            result = runner.run(fn, call)
    except Exception as error:  # noqa: BLE001 - the function's failure, reported
        result = Result(error=f"raised {type(error).__name__}: {error}")
    result.seconds = time.perf_counter() - started
    return result
