"""Running a backend's function on a :class:`~crossconv.cases.Case`, lazily.

Each framework adapter converts NumPy arguments to native tensors, calls the function and
returns NumPy results, and computes vector-Jacobian products with the framework's own
autodiff. A backend whose framework (or module, or adapter) is missing is reported as
unavailable with the reason, never as a crash: nothing here imports a framework at module
import time.
"""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np

from .cases import Case, as_outputs
from .registry import BACKENDS, Backend, Implementation


class TorchAdapter:
    """torch tensors on the CPU; gradients with ``torch.autograd.grad``."""

    def __init__(self):
        import torch

        self.torch = torch

    def _tensor(self, array, requires_grad=False):
        t = self.torch.from_numpy(np.array(array, copy=True))
        return t.requires_grad_(requires_grad)

    def _numpy(self, value):
        if isinstance(value, self.torch.Tensor):
            return value.detach().cpu().numpy()
        return np.asarray(value)

    def forward(self, fn, case: Case, extra) -> tuple[np.ndarray, ...]:
        with self.torch.no_grad():
            result = case.call(fn, self._tensor, **extra)
        return tuple(self._numpy(r) for r in as_outputs(result))

    def vjp(self, fn, case: Case, grad_output, wrt, extra) -> dict[str, np.ndarray | None]:
        tensors = {
            name: None if value is None else self._tensor(value, name in wrt)
            for name, value in case.tensors.items()
        }
        output = as_outputs(fn(**tensors, **case.params, **extra))[0]
        inputs = [tensors[name] for name in wrt]
        grads = self.torch.autograd.grad(
            output, inputs, grad_outputs=self._tensor(grad_output.astype(case.dtype)),
            allow_unused=True,
        )
        return {name: None if g is None else self._numpy(g) for name, g in zip(wrt, grads)}


class JaxAdapter:
    """JAX arrays on the default device; gradients with ``jax.vjp``.

    float64 cases run with ``jax_enable_x64`` switched on for the call only (a context,
    not the process-wide flag, so no other test sees 64-bit defaults); float32 cases with
    it off. Each call is one ``jax.jit`` of the whole computation (the forward, or the
    forward and its VJP) compiled with XLA's quick settings: the cases change shape from
    one example to the next, so compile time is what a check costs, and these settings
    change how fast the code runs, not what it computes. jax_impl's tests check that
    default-compiled and eager calls agree with jitted ones.
    """

    #: No LLVM optimisation, classic loop emitters: about 5x faster XLA:CPU compiles.
    QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}

    def __init__(self):
        import jax

        self.jax = jax

    def _x64(self, case: Case):
        return self.jax.enable_x64(np.dtype(case.dtype) == np.float64)

    def _compiled(self, fn):
        return self.jax.jit(fn, compiler_options=self.QUICK_COMPILE)

    def forward(self, fn, case: Case, extra) -> tuple[np.ndarray, ...]:
        tensors = {name: value for name, value in case.tensors.items() if value is not None}
        call = lambda arrays: fn(**{**case.tensors, **arrays}, **case.params, **extra)  # noqa: E731
        with self._x64(case):
            result = self._compiled(call)({k: self.jax.numpy.asarray(v) for k, v in tensors.items()})
            return tuple(np.asarray(r) for r in as_outputs(result))

    def vjp(self, fn, case: Case, grad_output, wrt, extra) -> dict[str, np.ndarray | None]:
        jnp = self.jax.numpy

        def pullback(arrays, grad):
            def output(diff):
                return as_outputs(fn(**{**case.tensors, **arrays, **diff}, **case.params, **extra))[0]

            _, vjp_fn = self.jax.vjp(output, {name: arrays[name] for name in wrt})
            return vjp_fn(grad)[0]

        with self._x64(case):
            arrays = {k: jnp.asarray(v) for k, v in case.tensors.items() if v is not None}
            grad = jnp.asarray(grad_output.astype(case.dtype))
            grads = self._compiled(pullback)(arrays, grad)
            return {name: np.asarray(grads[name]) for name in wrt}


ADAPTERS = {"torch": TorchAdapter, "jax": JaxAdapter}


def backend_status(backend: Backend) -> str | None:
    """None when ``backend`` can run here, else why not."""
    for module in backend.requires:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    if backend.framework not in ADAPTERS:
        return f"no {backend.framework} adapter yet"
    try:
        importlib.import_module(backend.module)
    except ImportError as error:
        return f"cannot import {backend.module}: {error}"
    return None


def implementation_status(impl: Implementation) -> str | None:
    """None when ``impl`` can run here, else why not."""
    backend = BACKENDS[impl.backend]
    reason = backend_status(backend)
    if reason is None and not hasattr(importlib.import_module(backend.module), impl.function_name):
        reason = f"{backend.module} has no {impl.function_name}"
    return reason


def load(impl: Implementation):
    """``(adapter, function)`` for ``impl``; ``LookupError`` with the reason if unavailable."""
    reason = implementation_status(impl)
    if reason is not None:
        raise LookupError(f"{impl.name} cannot run {impl.op}: {reason}")
    backend = BACKENDS[impl.backend]
    function = getattr(importlib.import_module(backend.module), impl.function_name)
    return ADAPTERS[backend.framework](), function
