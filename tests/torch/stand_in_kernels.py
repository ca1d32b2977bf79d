"""Stand-in ``torch_impl.kernels.*`` modules: torch code with the kernel contract's
signatures that records its calls, so the ``impl="triton"`` routing and the pooling custom
ops run on any machine (the ``kernels`` fixture in ``conftest.py`` installs them)."""

import types

import torch
import torch.nn.functional as F

from reference.common import Geometry


def recording(native, calls):
    module = types.ModuleType("stand-in kernels")

    def wrap(name):
        def fn(*args):
            calls.append(name)
            assert all(a.is_contiguous() for a in args if isinstance(a, torch.Tensor))
            assert any(isinstance(a, Geometry) for a in args)
            return getattr(native, name)(*args)

        return fn

    module.forward, module.backward = wrap("forward"), wrap("backward")
    return module


def _ceil_mode(geometry):
    """Whether ``geometry`` keeps a ceil-mode window that floor division would drop."""
    floor = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in zip(
        geometry.in_size, geometry.pad_before, geometry.dilation, geometry.kernel,
        geometry.stride)]
    return list(geometry.out_size) != floor


def pool_kernels(calls):
    """The pooling kernel interface in torch code (flat ``h*W + w`` indices)."""
    module = types.ModuleType("stand-in pool kernels")

    def max_forward(input, geometry):
        calls.append("max_forward")
        return F.max_pool2d(input, geometry.kernel, geometry.stride, geometry.pad_before,
                            geometry.dilation, ceil_mode=_ceil_mode(geometry),
                            return_indices=True)

    def max_backward(grad, indices, geometry):
        calls.append("max_backward")
        n, c = grad.shape[:2]
        out = grad.new_zeros(n, c, geometry.in_size[0] * geometry.in_size[1])
        out.scatter_add_(2, indices.flatten(2), grad.flatten(2))
        return out.view(n, c, *geometry.in_size)

    def avg_forward(input, geometry, count_include_pad, divisor_override):
        calls.append("avg_forward")
        return F.avg_pool2d(input, geometry.kernel, geometry.stride, geometry.pad_before,
                            ceil_mode=_ceil_mode(geometry), count_include_pad=count_include_pad,
                            divisor_override=divisor_override)

    def avg_backward(grad, geometry, count_include_pad, divisor_override):
        calls.append("avg_backward")
        shape = (*grad.shape[:2], *geometry.in_size)
        return torch.ops.aten.avg_pool2d_backward(
            grad, grad.new_empty(shape), list(geometry.kernel), list(geometry.stride),
            list(geometry.pad_before), _ceil_mode(geometry), count_include_pad, divisor_override)

    module.max_forward, module.max_backward = max_forward, max_backward
    module.avg_forward, module.avg_backward = avg_forward, avg_backward
    return module
