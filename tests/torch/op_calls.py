"""One small float64 call of every torch_impl op, with its reference and reference VJP, for
the tests of transforms (``torch.func``, ``torch.jit.trace``) and of tracing with a
dynamic batch (``torch.export``, ``torch.compile``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

import reference
import torch_impl

F64 = torch.float64


def _uniform(shape, low, high, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=F64) * (high - low) + low


@dataclass(frozen=True)
class OpCall:
    """``op(**tensors, **params)``; ``shapes`` name each tensor argument (in the op's order)
    with its shape and value range; ``per_sample`` tensors have the batch first."""

    op: str
    shapes: dict
    params: dict = field(default_factory=dict)
    differentiable: tuple = ("input", "weight", "bias")
    per_sample: tuple = ("input",)
    impl: str | None = None  # passed to torch_impl only

    @property
    def id(self) -> str:
        return self.op if self.impl is None else f"{self.op}-{self.impl}"

    def tensors(self, batch: int = 2, seed: int = 0) -> dict:
        out = {}
        for i, (name, (shape, low, high)) in enumerate(self.shapes.items()):
            if name in self.per_sample:
                shape = (batch, *shape[1:])
            out[name] = _uniform(shape, low, high, seed + 7 * i)
        return out

    def torch(self, **tensors):
        extra = {} if self.impl is None else {"impl": self.impl}
        out = getattr(torch_impl, self.op)(**tensors, **self.params, **extra)
        return out[0] if isinstance(out, tuple) else out

    def reference(self, **tensors) -> torch.Tensor:
        arrays = {k: v.detach().numpy() for k, v in tensors.items()}
        return torch.from_numpy(np.asarray(getattr(reference, self.op)(**arrays, **self.params)))

    def reference_vjp(self, grad, **tensors) -> dict:
        arrays = {k: v.detach().numpy() for k, v in tensors.items()}
        grads = getattr(reference, self.op + "_vjp")(grad.detach().numpy(), **arrays,
                                                     **self.params)
        return {k: torch.from_numpy(np.asarray(v)) for k, v in grads.items()}

    def differentiable_call(self, tensors: dict):
        """``(f, args)``: ``f(*args)`` is the op as a function of its differentiable tensors
        (in ``self.differentiable`` order), the others held at ``tensors``."""
        names = [n for n in self.differentiable if n in tensors]

        def f(*args):
            return self.torch(**{**tensors, **dict(zip(names, args))})

        return f, names, [tensors[n] for n in names]


SMALL = (-0.4, 0.4)  # tangents stay tame: |x + w| <= 0.8
CALLS = [
    OpCall("conv2d", {"input": ((2, 4, 5, 5), -1, 1), "weight": ((4, 2, 3, 3), -1, 1),
                      "bias": ((4,), -1, 1)}, {"padding": 1, "stride": (1, 2), "groups": 2}),
    OpCall("xcorr2d", {"search": ((2, 3, 6, 6), -1, 1), "template": ((2, 3, 3, 3), -1, 1)},
           differentiable=("search", "template"), per_sample=("search", "template")),
    OpCall("xcorr2d_depthwise", {"search": ((2, 3, 6, 6), -1, 1),
                                 "template": ((2, 3, 3, 3), -1, 1)},
           differentiable=("search", "template"), per_sample=("search", "template")),
    OpCall("max_pool2d", {"input": ((2, 3, 6, 6), -1, 1)},
           {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    OpCall("avg_pool2d", {"input": ((2, 3, 6, 6), -1, 1)},
           {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
    OpCall("tanprod_conv2d", {"input": ((2, 3, 5, 5), *SMALL), "weight": ((4, 3, 3, 3), *SMALL),
                              "bias": ((4,), -1, 1)}, {"padding": 1}),
    OpCall("conv2_5d", {"input": ((2, 3, 5, 5), -1, 1), "depth": ((2, 1, 5, 5), 0.5, 2.0),
                        "weight": ((3, 4, 3, 3, 3), -1, 1), "bias": ((4,), -1, 1)},
           {"padding": 1, "focal": 2.0}, per_sample=("input", "depth")),
    OpCall("deform_conv2d", {"input": ((2, 3, 5, 5), -1, 1), "offset": ((2, 18, 5, 5), -2, 2),
                             "weight": ((4, 3, 3, 3), -1, 1), "bias": ((4,), -1, 1),
                             "mask": ((2, 9, 5, 5), 0, 1)},
           {"padding": 1}, differentiable=("input", "offset", "weight", "bias", "mask"),
           per_sample=("input", "offset", "mask")),
]
#: The pooling custom ops (``impl="triton"``), run by the stand-in kernels of conftest.py.
TRITON_POOLS = [OpCall(c.op, c.shapes, c.params, impl="triton") for c in CALLS
                if c.op.endswith("pool2d")]
CUSTOM_OPS = ("tanprod_conv2d", "conv2_5d", "deform_conv2d")
