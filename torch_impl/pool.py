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
from torch import Tensor

from reference.common import avg_pool_signature, max_pool_signature

from .common import check_impl, check_tensors, int_list, kernel_module, owned, resolve_impl


def _kernels(op: str, impl: str, device: torch.device):
    """Where ``impl`` resolves for pooling (the only place): the kernel module, or None
    for torch's own pooling."""
    if resolve_impl(op, "pool", impl, device) == "native":
        return None
    return kernel_module(op, "pool")


def _max_geometry(input_shape, kernel_size, stride, padding, dilation, ceil_mode):
    return max_pool_signature(input_shape, kernel_size, stride, padding, dilation, ceil_mode)


@torch.library.custom_op("crossconv::max_pool2d", mutates_args=())
def max_pool2d_op(input: Tensor, kernel_size: list[int], stride: list[int], padding: list[int],
                  dilation: list[int], ceil_mode: bool) -> tuple[Tensor, Tensor]:
    geometry = _max_geometry(input.shape, kernel_size, stride, padding, dilation, ceil_mode)
    out, indices = _kernels("max_pool2d", "triton", input.device).max_forward(
        input.contiguous(), geometry
    )
    return owned(out), owned(indices)


@max_pool2d_op.register_fake
def _(input, kernel_size, stride, padding, dilation, ceil_mode):
    geometry = _max_geometry(input.shape, kernel_size, stride, padding, dilation, ceil_mode)
    shape = (*input.shape[:2], *geometry.out_size)
    return input.new_empty(shape), input.new_empty(shape, dtype=torch.int64)


@torch.library.custom_op("crossconv::max_pool2d_backward", mutates_args=())
def max_pool2d_backward_op(grad: Tensor, indices: Tensor, input_size: list[int],
                           kernel_size: list[int], stride: list[int], padding: list[int],
                           dilation: list[int], ceil_mode: bool) -> Tensor:
    shape = (*grad.shape[:2], *input_size)
    geometry = _max_geometry(shape, kernel_size, stride, padding, dilation, ceil_mode)
    return owned(_kernels("max_pool2d", "triton", grad.device).max_backward(
        grad.contiguous(), indices.contiguous(), geometry
    ))


@max_pool2d_backward_op.register_fake
def _(grad, indices, input_size, kernel_size, stride, padding, dilation, ceil_mode):
    return grad.new_empty((*grad.shape[:2], *input_size))


def _max_setup_context(ctx, inputs, output):
    input, *arguments = inputs
    ctx.save_for_backward(output[1])
    ctx.input_size = list(input.shape[2:])
    ctx.arguments = arguments


def _max_backward(ctx, grad, grad_indices):
    (indices,) = ctx.saved_tensors
    grad_input = max_pool2d_backward_op(grad, indices, ctx.input_size, *ctx.arguments)
    return grad_input, None, None, None, None, None


max_pool2d_op.register_autograd(_max_backward, setup_context=_max_setup_context)


def _avg_geometry(input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                  divisor_override):
    return avg_pool_signature(input_shape, kernel_size, stride, padding, ceil_mode,
                              count_include_pad, divisor_override)


@torch.library.custom_op("crossconv::avg_pool2d", mutates_args=())
def avg_pool2d_op(input: Tensor, kernel_size: list[int], stride: list[int], padding: list[int],
                  ceil_mode: bool, count_include_pad: bool, divisor_override: int | None) -> Tensor:
    geometry = _avg_geometry(input.shape, kernel_size, stride, padding, ceil_mode,
                             count_include_pad, divisor_override)
    return owned(_kernels("avg_pool2d", "triton", input.device).avg_forward(
        input.contiguous(), geometry, count_include_pad, divisor_override
    ))


@avg_pool2d_op.register_fake
def _(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    geometry = _avg_geometry(input.shape, kernel_size, stride, padding, ceil_mode,
                             count_include_pad, divisor_override)
    return input.new_empty((*input.shape[:2], *geometry.out_size))


@torch.library.custom_op("crossconv::avg_pool2d_backward", mutates_args=())
def avg_pool2d_backward_op(grad: Tensor, input_size: list[int], kernel_size: list[int],
                           stride: list[int], padding: list[int], ceil_mode: bool,
                           count_include_pad: bool, divisor_override: int | None) -> Tensor:
    shape = (*grad.shape[:2], *input_size)
    geometry = _avg_geometry(shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                             divisor_override)
    return owned(_kernels("avg_pool2d", "triton", grad.device).avg_backward(
        grad.contiguous(), geometry, count_include_pad, divisor_override
    ))


@avg_pool2d_backward_op.register_fake
def _(grad, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad,
      divisor_override):
    return grad.new_empty((*grad.shape[:2], *input_size))


def _avg_setup_context(ctx, inputs, output):
    input, *arguments = inputs
    ctx.input_size = list(input.shape[2:])
    ctx.arguments = arguments


def _avg_backward(ctx, grad):
    return (avg_pool2d_backward_op(grad, ctx.input_size, *ctx.arguments),
            None, None, None, None, None, None)


avg_pool2d_op.register_autograd(_avg_backward, setup_context=_avg_setup_context)


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
    g = max_pool_signature(input.shape, kernel_size, stride, padding, dilation, ceil_mode,
                           return_indices)
    kernels = _kernels("max_pool2d", impl, input.device)
    if kernels is None:
        return F.max_pool2d(input, g.kernel, g.stride, g.pad_before, g.dilation,
                            ceil_mode=ceil_mode, return_indices=return_indices)
    out, indices = max_pool2d_op(input, int_list(g.kernel), int_list(g.stride),
                                 int_list(g.pad_before), int_list(g.dilation), bool(ceil_mode))
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
    g = avg_pool_signature(input.shape, kernel_size, stride, padding, ceil_mode,
                           count_include_pad, divisor_override)
    kernels = _kernels("avg_pool2d", impl, input.device)
    if kernels is None:
        return F.avg_pool2d(input, g.kernel, g.stride, g.pad_before, ceil_mode=ceil_mode,
                            count_include_pad=count_include_pad,
                            divisor_override=divisor_override)
    return avg_pool2d_op(input, int_list(g.kernel), int_list(g.stride), int_list(g.pad_before),
                         bool(ceil_mode), bool(count_include_pad), divisor_override)
