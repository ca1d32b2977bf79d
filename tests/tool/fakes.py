"""A torch backend built from any NumPy forward and VJP, for registering fake backends."""

import numpy as np

from crossconv.cases import as_outputs
from crossconv.registry import OPS


def torch_function(op_name, forward=None, vjp=None):
    """A torch function computing ``forward`` (default: the reference) on NumPy copies,
    with autograd through ``vjp`` (default: the reference VJP); returns the input dtype."""
    import torch

    op = OPS[op_name]
    forward = forward or op.reference
    vjp = vjp or op.reference_vjp

    def fn(**kwargs):
        tensors = {name: kwargs.pop(name) for name in op.tensor_args if name in kwargs}
        names = [name for name, value in tensors.items() if value is not None]

        class Function(torch.autograd.Function):
            @staticmethod
            def forward(ctx, *values):
                arrays = {k: None for k in tensors}
                arrays.update({k: v.detach().numpy() for k, v in zip(names, values)})
                ctx.arrays = arrays
                out = as_outputs(forward(**arrays, **kwargs))[0]
                return torch.from_numpy(np.asarray(out).astype(values[0].numpy().dtype))

            @staticmethod
            def backward(ctx, grad):
                dtype = grad.numpy().dtype
                grads = vjp(grad.numpy(), **ctx.arrays, **kwargs)
                return tuple(None if k not in grads else torch.from_numpy(grads[k].astype(dtype))
                             for k in names)

        return Function.apply(*(tensors[k] for k in names))

    return fn
