"""``max_pool2d`` and ``avg_pool2d``: torch's own pooling, or the Triton kernels (docs/pool.md).

``impl="native"`` (the default on the CPU) calls ``F.max_pool2d`` / ``F.avg_pool2d``
after the shared checks, which also turn away the window of pure padding that makes
torch's max pooling return an out-of-range index. ``impl="triton"`` (and ``"auto"`` on
CUDA when the kernels import) runs the custom ops ``crossconv::max_pool2d`` /
``crossconv::avg_pool2d`` and their backward ops, which call ``torch_impl.kernels.pool``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reference.pool import avg_pool2d_signature as avg_pool_signature
from reference.pool import max_pool2d_signature as max_pool_signature

from .common import (
    check_impl,
    check_tensors,
    int_list,
    kernel_module,
    resolve_impl,
    shape,
)
from .custom_op import CustomOp


def _implementation(op: str, impl: str, device: torch.device):
    """Where ``impl`` resolves for pooling (the only place): the kernel module, or None
    for torch's own pooling."""
    if resolve_impl(op, "pool", impl, device) == "native":
        return None
    return kernel_module(op, "pool")


def _input_shape(args):
    """The pooled input's shape: the input's, or in a backward op the gradient's batch
    and channels with ``input_size``."""
    if hasattr(args, "input"):
        return shape(args.input)
    return (*shape(args.grad)[:2], *args.input_size)


def _max_geometry(args):
    return max_pool_signature(_input_shape(args), args.kernel_size, args.stride, args.padding,
                              args.dilation, args.ceil_mode)


def _avg_geometry(args):
    return avg_pool_signature(_input_shape(args), args.kernel_size, args.stride, args.padding,
                              args.ceil_mode, args.count_include_pad, args.divisor_override)


def _pooled_shape(args, geometry):
    return (*args.input.shape[:2], *geometry.out_size)


def _input_gradient_fake(args):
    return args.grad.new_empty(_input_shape(args))


max_pool2d_op = CustomOp(
    "max_pool2d",
    "Tensor input, int[] kernel_size, int[] stride, int[] padding, int[] dilation, "
    "bool ceil_mode",
    outputs=("output", "indices"),
    compute=lambda args: _implementation("max_pool2d", "triton", args.input.device).max_forward(
        args.input.contiguous(), _max_geometry(args)),
    fake=lambda args: (args.input.new_empty(_pooled_shape(args, _max_geometry(args))),
                       args.input.new_empty(_pooled_shape(args, _max_geometry(args)),
                                            dtype=torch.int64)),
    grads=("input",),
    saved=("indices",),
    input_size=True,
    backward=lambda args: _implementation("max_pool2d", "triton", args.grad.device).max_backward(
        args.grad.contiguous(), args.indices.contiguous(), _max_geometry(args)),
    backward_fake=_input_gradient_fake,
)

avg_pool2d_op = CustomOp(
    "avg_pool2d",
    "Tensor input, int[] kernel_size, int[] stride, int[] padding, bool ceil_mode, "
    "bool count_include_pad, int? divisor_override",
    compute=lambda args: _implementation("avg_pool2d", "triton", args.input.device).avg_forward(
        args.input.contiguous(), _avg_geometry(args), args.count_include_pad,
        args.divisor_override),
    fake=lambda args: args.input.new_empty(_pooled_shape(args, _avg_geometry(args))),
    grads=("input",),
    saved=(),
    input_size=True,
    backward=lambda args: _implementation("avg_pool2d", "triton", args.grad.device).avg_backward(
        args.grad.contiguous(), _avg_geometry(args), args.count_include_pad,
        args.divisor_override),
    backward_fake=_input_gradient_fake,
)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, impl="auto"):
    """Max pooling, ``F.max_pool2d`` semantics.

    Args:
        input: ``[N, C, H, W]`` floating tensor.
        kernel_size: int or a sequence of one or two ints.
        stride: int, sequence, or None / ``()`` (= kernel_size).
        padding: at most half the kernel size; padded cells never win.
        dilation: int or a sequence of one or two ints.
        ceil_mode: round the output size up (a last window starts inside the input or
            the left padding).
        return_indices: also return flat ``h*W + w`` argmax indices (int64).
        impl: ``"auto"``, ``"native"`` (torch) or ``"triton"``.

    Returns:
        ``[N, C, oh, ow]`` in the input dtype, or ``(output, indices)``.
    """
    check_tensors("max_pool2d", input=input)
    check_impl("max_pool2d", impl)
    x = shape(input)
    g = max_pool_signature(x, kernel_size, stride, padding, dilation, ceil_mode,
                           return_indices)
    # The flags as Python bools: the checks accept numpy.bool_, which torch's pooling refuses.
    ceil_mode, return_indices = bool(ceil_mode), bool(return_indices)
    kernels = _implementation("max_pool2d", impl, input.device)
    if kernels is None:
        return F.max_pool2d(input, g.kernel, g.stride, g.pad_before, g.dilation,
                            ceil_mode=ceil_mode, return_indices=return_indices)
    out, indices = max_pool2d_op(input, int_list(g.kernel), int_list(g.stride),
                                 int_list(g.pad_before), int_list(g.dilation), ceil_mode)
    return (out, indices) if return_indices else out


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, impl="auto"):
    """Average pooling, ``F.avg_pool2d`` semantics.

    Args:
        input: ``[N, C, H, W]`` floating tensor.
        kernel_size: int or a sequence of one or two ints.
        stride: int, sequence, or None / ``()`` (= kernel_size).
        padding: zero padding, at most half the kernel size.
        ceil_mode: round the output size up.
        count_include_pad: divide by the cells inside the padded border (True) or inside
            the input (False).
        divisor_override: a non-zero int replacing the count.
        impl: ``"auto"``, ``"native"`` (torch) or ``"triton"``.

    Returns:
        ``[N, C, oh, ow]`` in the input dtype.
    """
    check_tensors("avg_pool2d", input=input)
    check_impl("avg_pool2d", impl)
    x = shape(input)
    g = avg_pool_signature(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                           divisor_override)
    ceil_mode, count_include_pad = bool(ceil_mode), bool(count_include_pad)  # numpy.bool_ too
    divisor_override = None if divisor_override is None else int(divisor_override)
    kernels = _implementation("avg_pool2d", impl, input.device)
    if kernels is None:
        return F.avg_pool2d(input, g.kernel, g.stride, g.pad_before, ceil_mode=ceil_mode,
                            count_include_pad=count_include_pad,
                            divisor_override=divisor_override)
    return avg_pool2d_op(input, int_list(g.kernel), int_list(g.stride), int_list(g.pad_before),
                         ceil_mode, count_include_pad, divisor_override)
