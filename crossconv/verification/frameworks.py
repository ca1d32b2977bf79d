"""The frameworks verify can call, as a table.

Each :class:`Framework` names its worker-side runner (:mod:`crossconv.verification.runners`:
tensors made from NumPy arrays inside the worker) and what the snippet of a
counterexample writes to make the same tensors. A new framework is one runner class and
one entry in :data:`FRAMEWORKS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import runners


@dataclass(frozen=True)
class Framework:
    """``requires``: the module that must be installed; ``gradients``: "autodiff" (the
    framework's own), "vjp" (a NumPy VJP given with ``--vjp``) or "" (forward only);
    ``imports``, ``convert`` (an expression of ``array`` and ``{dtype}``), ``to_numpy`` (of
    ``value``): the snippet's way to make the function's inputs and read its outputs."""

    name: str
    runner: type
    requires: str = ""
    gradients: str = "autodiff"
    imports: tuple[str, ...] = ()
    convert: str = "array"
    to_numpy: str = "np.asarray(value)"

    @property
    def layouts(self) -> tuple[str, ...]:
        return self.runner.layouts

    @property
    def half(self) -> bool:
        return self.runner.half

    @property
    def float64_ok(self) -> bool:
        return self.runner.float64_ok


FRAMEWORKS: dict[str, Framework] = {
    f.name: f
    for f in [
        Framework("numpy", runners.NumpyRunner, gradients="vjp",
                  convert="np.array(array, dtype={dtype})"),
        Framework("onnx", runners.OnnxRunner, requires="onnxruntime", gradients="",
                  convert="np.array(array, dtype={dtype})"),
        Framework("torch", runners.TorchRunner, requires="torch", imports=("import torch",),
                  convert="torch.from_numpy(array).to(device).to(getattr(torch, {dtype}))",
                  to_numpy="value.detach().cpu().float().numpy() if value.dtype == torch.bfloat16 "
                           "else value.detach().cpu().numpy()"),
        Framework("jax", runners.JaxRunner, requires="jax",
                  imports=("import jax", "import jax.numpy as jnp", "",
                           'jax.config.update("jax_enable_x64", True)'),
                  convert="jnp.asarray(array, dtype={dtype})",
                  to_numpy="np.asarray(value, dtype=np.float32) if value.dtype == jnp.bfloat16 "
                           "else np.asarray(value)"),
    ]
}
