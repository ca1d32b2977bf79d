"""``deform_conv2d`` as the custom op ``torch.ops.crossconv.deform_conv2d``.

Deformable convolution v1 (no mask) and v2 (mask), ``torchvision.ops.deform_conv2d``
semantics (docs/deform.md), except that bad arguments are ``ValueError``s and a NaN offset gives
NaN outputs instead of a crash. The forward and the backward
(``crossconv::deform_conv2d_backward``) are custom ops calling the contract functions of
:mod:`torch_impl.native.deform` or ``torch_impl.kernels.deform`` (:func:`_implementation`
chooses).
"""

from __future__ import annotations

import torch
from torch import Tensor

from reference.common import deform_signature, shape_of

from .common import check_impl, check_tensors, implementation, int_list, owned

OP = "deform_conv2d"


def _implementation(impl: str, device: torch.device):
    """Where ``impl`` resolves for this op (the only place)."""
    return implementation(OP, "deform", impl, device)


def _signature(input, offset, weight, bias, mask, stride, padding, dilation):
    return deform_signature(input.shape, offset.shape, weight.shape, shape_of(bias), stride,
                            padding, dilation, shape_of(mask))


def _contiguous(t):
    return None if t is None else t.contiguous()


@torch.library.custom_op("crossconv::deform_conv2d", mutates_args=())
def deform_conv2d_op(input: Tensor, offset: Tensor, weight: Tensor, bias: Tensor | None,
                     mask: Tensor | None, stride: list[int], padding: list[int],
                     dilation: list[int], impl: str) -> Tensor:
    sig = _signature(input, offset, weight, bias, mask, stride, padding, dilation)
    out = _implementation(impl, input.device).forward(
        input.contiguous(), offset.contiguous(), weight.contiguous(), _contiguous(mask),
        sig.geometry, sig.groups, sig.offset_groups,
    )
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return owned(out)


@deform_conv2d_op.register_fake
def _(input, offset, weight, bias, mask, stride, padding, dilation, impl):
    sig = _signature(input, offset, weight, bias, mask, stride, padding, dilation)
    return input.new_empty(sig.out_shape)


@torch.library.custom_op("crossconv::deform_conv2d_backward", mutates_args=())
def deform_conv2d_backward_op(
    grad: Tensor, input: Tensor, offset: Tensor, weight: Tensor, mask: Tensor | None,
    stride: list[int], padding: list[int], dilation: list[int], impl: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients w.r.t. input, offset, weight and mask (an empty tensor without a mask)."""
    sig = _signature(input, offset, weight, None, mask, stride, padding, dilation)
    grads = _implementation(impl, input.device).backward(
        grad.contiguous(), input.contiguous(), offset.contiguous(), weight.contiguous(),
        _contiguous(mask), sig.geometry, sig.groups, sig.offset_groups,
    )
    grad_input, grad_offset, grad_weight, grad_mask = grads
    grad_mask = input.new_empty(0) if mask is None else grad_mask
    return owned(grad_input), owned(grad_offset), owned(grad_weight), owned(grad_mask)


@deform_conv2d_backward_op.register_fake
def _(grad, input, offset, weight, mask, stride, padding, dilation, impl):
    grad_mask = input.new_empty(0) if mask is None else mask.new_empty(mask.shape)
    return (input.new_empty(input.shape), offset.new_empty(offset.shape),
            weight.new_empty(weight.shape), grad_mask)


def _setup_context(ctx, inputs, output):
    input, offset, weight, bias, mask, *arguments = inputs
    ctx.save_for_backward(input, offset, weight, mask)
    ctx.arguments = arguments
    ctx.has_bias = bias is not None


def _backward(ctx, grad):
    input, offset, weight, mask = ctx.saved_tensors
    grad_input, grad_offset, grad_weight, grad_mask = deform_conv2d_backward_op(
        grad, input, offset, weight, mask, *ctx.arguments
    )
    grad_bias = grad.sum((0, 2, 3)) if ctx.has_bias else None
    grad_mask = None if mask is None else grad_mask
    return grad_input, grad_offset, grad_weight, grad_bias, grad_mask, None, None, None, None


deform_conv2d_op.register_autograd(_backward, setup_context=_setup_context)


def deform_conv2d(input, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None,
                  *, impl="auto"):
    """Deformable convolution v1 (``mask=None``) or v2, torchvision semantics.

    Args:
        input: ``[N, C, H, W]`` floating tensor (float16/bfloat16 computed in float32).
        offset: ``[N, 2*Go*kh*kw, oh, ow]``: interleaved ``(dy, dx)`` per tap, Go offset
            groups (input channel c uses group ``c // (C/Go)``).
        weight: ``[O, C/G, kh, kw]`` with ``G = C // weight.shape[1]`` weight groups.
        bias: ``[O]`` or None.
        stride, padding, dilation: int or a sequence of one or two ints.
        mask: ``[N, Go*kh*kw, oh, ow]`` modulation, or None.
        impl: ``"auto"``, ``"native"`` or ``"triton"``.

    Returns:
        ``[N, O, oh, ow]`` in the input dtype; NaN where a sample point has a NaN
        coordinate.
    """
    check_tensors(OP, input=input, offset=offset, weight=weight, bias=bias, mask=mask)
    check_impl(OP, impl)
    g = _signature(input, offset, weight, bias, mask, stride, padding, dilation).geometry
    return deform_conv2d_op(input, offset, weight, bias, mask, int_list(g.stride),
                            int_list(g.pad_before), int_list(g.dilation), impl)
