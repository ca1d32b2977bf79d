"""The fuzz's child process: one backend column, calls in, outcomes out.

``python fuzz_worker.py <column>`` reads pickled :class:`fuzz_calls.Call` objects from
stdin and answers each with a pickled ``{"reference": outcome, "backend": outcome}``:
the call's tensors built from their specs, run through the reference and through the
column's backend (forward, or the gradient path: the reference's ``<op>_vjp``, torch
autograd, ``jax.vjp``, lua_port's ``<op>_vjp``; onnx_impl is forward only). An outcome
is ``("ok", result)`` with NumPy arrays or ``("error", mro_names, message)``. The
answers go through a copy of the original stdout; fd 1 itself then points at stderr, so
nothing a library prints can corrupt them. A crash or a hang ends the process: the
parent sees that and starts another.
"""

from __future__ import annotations

import inspect
import os
import pickle
import sys
import zlib

import numpy as np
from fuzz_calls import OPS, AsList, Foreign, T

#: column -> (backend, keyword arguments every call gets where the op takes them)
COLUMNS = {
    "reference": ("reference", {}),
    "torch-native": ("torch", {"impl": "native"}),
    "torch-triton": ("torch", {"impl": "triton"}),
    "jax-native": ("jax", {"impl": "native"}),
    "jax-pallas": ("jax", {"impl": "pallas"}),
    "lua-luajit": ("lua", {"runtime": "luajit"}),
    "lua-5.4": ("lua", {"runtime": "5.4"}),
    "onnx": ("onnx", {"runtime": "onnxruntime"}),
}


def pattern(shape) -> np.ndarray:
    """The gradient every VJP is given: varied, non-zero, the same in every column."""
    return np.cos(np.arange(int(np.prod(shape)), dtype=np.float64)).reshape(shape)


class ForeignTensor:
    """What another framework's tensor looks like to NumPy: shape, dtype, ``__array__``."""

    def __init__(self, array):
        self._array, self.shape, self.dtype = array, array.shape, array.dtype

    def __array__(self, dtype=None, copy=None):
        return self._array if dtype is None else self._array.astype(dtype)


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


def numpy_value(value, name):
    """A spec as NumPy / Python (what the reference and lua_port get)."""
    if isinstance(value, T):
        return value.array(_seed(name))
    if isinstance(value, AsList):
        return T(value.shape).array(_seed(name)).tolist()
    if isinstance(value, Foreign):
        return ForeignTensor(T(value.shape).array(_seed(name)))
    return value


def outcome(fn):
    try:
        return ("ok", fn())
    except Exception as error:  # every error is judged by the parent
        return ("error", [c.__name__ for c in type(error).__mro__], f"{error}"[:2000])


def first(result):
    return result[0] if isinstance(result, tuple) else result


def as_numpy_outputs(result):
    return [np.asarray(r) for r in (result if isinstance(result, tuple) else (result,))]


class Reference:
    def __init__(self):
        import reference

        self.reference = reference

    def forward(self, call, arguments):
        return as_numpy_outputs(getattr(self.reference, call.op)(**arguments))

    def vjp(self, call, arguments, grad):
        grads = getattr(self.reference, call.op + "_vjp")(grad, **arguments)
        return {k: np.asarray(v) for k, v in grads.items()}


class Backend:
    """One column's backend: builds its tensors and runs forward and gradient paths."""

    def __init__(self, column):
        self.kind, self.extra = COLUMNS[column]
        self.module = __import__({"reference": "reference", "torch": "torch_impl",
                                  "jax": "jax_impl", "lua": "lua_port",
                                  "onnx": "onnx_impl"}[self.kind])
        if self.kind == "jax":
            import jax

            jax.config.update("jax_enable_x64", True)
            self.jax = jax
            self.quick = {"xla_backend_optimization_level": 0,
                          "xla_cpu_use_fusion_emitters": False}
        if self.kind in ("torch", "jax"):
            try:
                import torch

                self.torch = torch
            except ImportError:
                self.torch = None

    def value(self, value, name, differentiable):
        if self.kind in ("reference", "lua"):
            return numpy_value(value, name)
        if isinstance(value, Foreign):
            array = T(value.shape).array(_seed(name))
            if self.kind == "jax" and self.torch is not None:
                return self.torch.from_numpy(array)  # what jax_impl users mix up most
            return array if self.kind == "torch" else ForeignTensor(array)
        built = numpy_value(value, name)
        if self.kind == "torch" and isinstance(value, T):
            tensor = self.torch.from_numpy(built)
            if differentiable and tensor.is_floating_point():
                tensor.requires_grad_()
            return tensor
        return built

    def extras(self, fn, arguments):
        accepted = inspect.signature(fn).parameters
        return {k: v for k, v in self.extra.items() if k in accepted and k not in arguments}

    def forward(self, call, arguments):
        fn = getattr(self.module, call.op)
        extra = self.extras(fn, arguments)
        if self.kind == "jax":
            return self._jax(fn, call, arguments, extra, None)
        if self.kind == "torch":
            with self.torch.no_grad():
                return [self._numpy(r) for r in _tuple(fn(**arguments, **extra))]
        return as_numpy_outputs(fn(**arguments, **extra))

    def vjp(self, call, arguments, grad):
        if self.kind == "lua":
            fn = getattr(self.module, call.op + "_vjp")
            grads = fn(grad, **arguments, **self.extras(fn, arguments))
            return {k: np.asarray(v) for k, v in grads.items()}
        fn = getattr(self.module, call.op)
        extra = self.extras(fn, arguments)
        if self.kind == "jax":
            return self._jax(fn, call, arguments, extra, OPS[call.op].differentiable)
        out = first(fn(**arguments, **extra))
        wanted = {k: v for k, v in arguments.items()
                  if isinstance(v, self.torch.Tensor) and v.requires_grad}
        if not out.requires_grad:
            return {}
        out.backward(self.torch.from_numpy(pattern(tuple(out.shape))).to(out.dtype))
        return {k: self._numpy(v.grad) for k, v in wanted.items() if v.grad is not None}

    def _numpy(self, t):
        return t.detach().numpy() if isinstance(t, self.torch.Tensor) else np.asarray(t)

    def _jax(self, fn, call, arguments, extra, differentiable):
        """The call as one jit (quick XLA:CPU settings): arrays are its arguments (traced),
        everything else is closed over (static)."""
        jax, jnp = self.jax, self.jax.numpy
        arrays = {k: v for k, v in arguments.items() if isinstance(v, np.ndarray)}
        static = {k: v for k, v in arguments.items() if k not in arrays}

        def run(a):
            return fn(**a, **static, **extra)

        if differentiable is None:
            result = jax.jit(run, compiler_options=self.quick)(arrays)
            return as_numpy_outputs(result)
        diff = {k: v for k, v in arrays.items()
                if k in differentiable and np.issubdtype(v.dtype, np.floating)}
        rest = {k: v for k, v in arrays.items() if k not in diff}

        def pullback(d, r):
            out, pull = jax.vjp(lambda dd: first(run({**r, **dd})), d)
            size = int(np.prod(out.shape))
            g = jnp.cos(jnp.arange(size, dtype=jnp.float64)).reshape(out.shape).astype(out.dtype)
            return pull(g)[0]

        grads = jax.jit(pullback, compiler_options=self.quick)(diff, rest)
        return {k: np.asarray(v) for k, v in grads.items()}


def _tuple(result):
    return result if isinstance(result, tuple) else (result,)


def answer(call, reference, backend):
    """Run ``call`` through the reference (numbers for the comparison, the reference's
    verdict) and the column's backend."""
    op = OPS[call.op]
    specs = call.arguments
    ref_args = {k: numpy_value(v, k) for k, v in specs.items() if k != "impl"}
    ref_forward = outcome(lambda: reference.forward(call, ref_args))
    grad = np.ones(1)
    if ref_forward[0] == "ok":
        grad = pattern(ref_forward[1][0].shape)
    if call.hostile_grad:  # a hostile grad_output (reference and lua VJPs)
        value = call.grad_output
        if isinstance(value, T) and value.shape is None:
            grad = grad.astype(value.dtype)
        else:
            grad = numpy_value(value, "grad_output")
    result = {"reference": ref_forward}
    if call.vjp:
        result["reference"] = outcome(lambda: reference.vjp(call, ref_args, grad))
    if backend is None:
        return result
    try:
        args = {k: backend.value(v, k, call.vjp and k in op.differentiable)
                for k, v in specs.items()}
    except Exception as error:  # noqa: BLE001  (the fuzz's own bug: report it)
        return {**result, "fuzz": f"building the arguments failed: {error!r}"}
    if call.vjp:
        result["backend"] = outcome(lambda: backend.vjp(call, args, grad))
    else:
        result["backend"] = outcome(lambda: backend.forward(call, args))
    return result


def main(column: str) -> None:
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    reference = Reference()
    backend = None if column == "reference" else Backend(column)
    pickle.dump("ready", answers)
    answers.flush()
    while True:
        try:
            call = pickle.load(sys.stdin.buffer)
        except EOFError:
            return
        pickle.dump(answer(call, reference, backend), answers)
        answers.flush()


if __name__ == "__main__":
    main(sys.argv[1])
