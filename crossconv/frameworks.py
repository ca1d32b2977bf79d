"""Running a backend's function on a :class:`~crossconv.cases.Case`, lazily.

Each framework adapter converts NumPy arguments to native tensors, calls the function and
returns NumPy results, and computes vector-Jacobian products with the framework's own
autodiff. A backend whose framework (or module, or adapter) is missing is reported as
unavailable with the reason, never as a crash: nothing here imports a framework at module
import time.

Adapters take a ``device`` (``"cpu"``, the default, or ``"cuda"``) and raise
``LookupError`` with the reason when their framework cannot use it; an adapter class
without a ``device`` parameter runs on the CPU only.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect

import numpy as np

from .cases import Case, as_outputs
from .registry import BACKENDS, Backend, Implementation


class TorchAdapter:
    """torch tensors on ``device`` (CPU by default); gradients with ``torch.autograd.grad``."""

    def __init__(self, device: str = "cpu"):
        import torch

        if device != "cpu" and not (device.startswith("cuda") and torch.cuda.is_available()):
            raise LookupError(f"torch cannot use device {device!r} here "
                              f"(torch.cuda.is_available() is {torch.cuda.is_available()})")
        self.torch = torch
        self.device = torch.device(device)

    def _tensor(self, array, requires_grad=False):
        t = self.torch.from_numpy(np.array(array, copy=True)).to(self.device)
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


class LuaAdapter:
    """lua_port: NumPy in and out (the bridge copies arrays into Lua tables). Forward by the
    functional op, gradients by the Lua module's ``backward`` (``lua_port.<op>_vjp``).
    ``extra={"runtime": ...}`` picks the Lua VM."""

    def __init__(self):
        import lua_port

        self.lua_port = lua_port

    @staticmethod
    def unavailable(impl: Implementation) -> str | None:
        """Why ``impl``'s Lua runtime cannot run here (lupa builds lack LuaJIT on macOS)."""
        from lua_port.runtimes import resolve_runtime

        try:
            resolve_runtime(impl.extra.get("runtime"))
        except ImportError as error:
            return str(error)
        return None

    def forward(self, fn, case: Case, extra) -> tuple[np.ndarray, ...]:
        return tuple(np.asarray(r) for r in as_outputs(case.call(fn, **extra)))

    def vjp(self, fn, case: Case, grad_output, wrt, extra) -> dict[str, np.ndarray | None]:
        vjp_fn = getattr(self.lua_port, case.op + "_vjp")
        grads = case.call(lambda **arguments: vjp_fn(grad_output, **arguments), **extra)
        return {name: grads.get(name) for name in wrt}


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

    def __init__(self, device: str = "cpu"):
        import jax

        platform = "gpu" if device.startswith("cuda") else device
        try:
            devices = jax.devices(platform)
        except RuntimeError:
            raise LookupError(f"jax cannot use device {device!r} here (it has "
                              f"{jax.default_backend()} devices only)") from None
        index = int(device.split(":")[1]) if ":" in device else 0
        self.jax = jax
        self.device = devices[index]

    def _x64(self, case: Case):
        return self.jax.enable_x64(np.dtype(case.dtype) == np.float64)

    def _compiled(self, fn):
        return self.jax.jit(fn, compiler_options=self.QUICK_COMPILE)

    def forward(self, fn, case: Case, extra) -> tuple[np.ndarray, ...]:
        tensors = {name: value for name, value in case.tensors.items() if value is not None}
        call = lambda arrays: fn(**{**case.tensors, **arrays}, **case.params, **extra)  # noqa: E731
        with self._x64(case):
            arrays = {k: self.jax.device_put(v, self.device) for k, v in tensors.items()}
            result = self._compiled(call)(arrays)
            return tuple(np.asarray(r) for r in as_outputs(result))

    def vjp(self, fn, case: Case, grad_output, wrt, extra) -> dict[str, np.ndarray | None]:
        def pullback(arrays, grad):
            def output(diff):
                return as_outputs(fn(**{**case.tensors, **arrays, **diff}, **case.params, **extra))[0]

            _, vjp_fn = self.jax.vjp(output, {name: arrays[name] for name in wrt})
            return vjp_fn(grad)[0]

        with self._x64(case):
            arrays = {k: self.jax.device_put(v, self.device) for k, v in case.tensors.items()
                      if v is not None}
            grad = self.jax.device_put(grad_output.astype(case.dtype), self.device)
            grads = self._compiled(pullback)(arrays, grad)
            return {name: np.asarray(grads[name]) for name in wrt}


class OnnxAdapter:
    """A function that takes and returns NumPy arrays and builds and runs ONNX graphs
    (onnx_impl's ops, or your own graph builder under ``crossconv verify``): called on
    copies of the arrays, its outputs must have the input dtype. Forward only (ONNX has
    no gradients): :meth:`vjp` raises.

    ``device="cuda"`` needs an onnxruntime with the CUDA execution provider (onnx_impl
    then runs there; it also does by default when one is present).
    """

    def __init__(self, device: str = "cpu"):
        import onnx  # noqa: F401 - the framework must be there

        if device != "cpu":
            available = self._providers()
            if not device.startswith("cuda") or "CUDAExecutionProvider" not in available:
                raise LookupError(f"onnxruntime cannot use device {device!r} here (its "
                                  f"execution providers: {', '.join(available) or 'none'})")
        self.device = device

    @staticmethod
    def _providers() -> list[str]:
        try:
            import onnxruntime
        except ImportError:
            return []
        return list(onnxruntime.get_available_providers())

    def forward(self, fn, case: Case, extra) -> tuple[np.ndarray, ...]:
        return tuple(np.asarray(r) for r in as_outputs(case.call(fn, np.copy, **extra)))

    def vjp(self, fn, case: Case, grad_output, wrt, extra) -> dict[str, np.ndarray | None]:
        raise NotImplementedError("ONNX graphs are forward only: no gradients to check")


ADAPTERS = {"torch": TorchAdapter, "jax": JaxAdapter, "lua": LuaAdapter, "onnx": OnnxAdapter}


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
    unavailable = getattr(ADAPTERS.get(backend.framework), "unavailable", None)
    if reason is None and unavailable is not None:
        reason = unavailable(impl)
    return reason


def adapter(framework: str, device: str = "cpu"):
    """An adapter for ``framework`` on ``device``; ``LookupError`` with the reason if it
    cannot run there."""
    cls = ADAPTERS[framework]
    if "device" in inspect.signature(cls).parameters:
        return cls(device=device)
    if device != "cpu":
        raise LookupError(f"the {framework} adapter runs on the CPU only")
    return cls()


def load(impl: Implementation, device: str = "cpu"):
    """``(adapter, function)`` for ``impl`` on ``device``; ``LookupError`` with the reason
    if unavailable."""
    reason = implementation_status(impl)
    if reason is not None:
        raise LookupError(f"{impl.name} cannot run {impl.op}: {reason}")
    backend = BACKENDS[impl.backend]
    function = getattr(importlib.import_module(backend.module), impl.function_name)
    try:
        return adapter(backend.framework, device), function
    except LookupError as error:
        raise LookupError(f"{impl.name} cannot run {impl.op}: {error}") from None
