"""``tanprod_conv2d`` as the custom op ``torch.ops.crossconv.tanprod_conv2d``.

``out[n,o,y,x] = bias[o] + prod_{c,i,j} tan(xpad[n, c, y*sh + i*dh, x*sw + j*dw] + w[o,c,i,j])``
(docs/tanprod.md). The forward and its backward (``crossconv::tanprod_conv2d_backward``) are
custom ops with fake (meta) implementations, so autograd, ``torch.compile`` and
``torch.library.opcheck`` see them as single operations; both call the contract
functions of :mod:`torch_impl.native.tanprod` or ``torch_impl.kernels.tanprod``, chosen by
:func:`_implementation`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from reference.common import shape_of, tanprod_signature

from .common import check_impl, check_tensors, implementation, int_list, owned

OP = "tanprod_conv2d"


def _implementation(impl: str, device: torch.device):
    """Where ``impl`` resolves for this op (the only place)."""
    return implementation(OP, "tanprod", impl, device)


def _geometry(input, weight, bias, stride, padding, dilation):
    return tanprod_signature(input.shape, weight.shape, shape_of(bias), stride, padding,
                             dilation).geometry


@torch.library.custom_op("crossconv::tanprod_conv2d", mutates_args=())
def tanprod_conv2d_op(input: Tensor, weight: Tensor, bias: Tensor | None, stride: list[int],
                      padding: list[int], dilation: list[int], impl: str) -> Tensor:
    geometry = _geometry(input, weight, bias, stride, padding, dilation)
    out = _implementation(impl, input.device).forward(input.contiguous(), weight.contiguous(),
                                                      geometry)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return owned(out)


@tanprod_conv2d_op.register_fake
def _(input, weight, bias, stride, padding, dilation, impl):
    geometry = _geometry(input, weight, bias, stride, padding, dilation)
    return input.new_empty((input.shape[0], weight.shape[0], *geometry.out_size))


@torch.library.custom_op("crossconv::tanprod_conv2d_backward", mutates_args=())
def tanprod_conv2d_backward_op(grad: Tensor, input: Tensor, weight: Tensor, stride: list[int],
                               padding: list[int], dilation: list[int],
                               impl: str) -> tuple[Tensor, Tensor]:
    geometry = _geometry(input, weight, None, stride, padding, dilation)
    grads = _implementation(impl, input.device).backward(
        grad.contiguous(), input.contiguous(), weight.contiguous(), geometry
    )
    return tuple(owned(g) for g in grads)


@tanprod_conv2d_backward_op.register_fake
def _(grad, input, weight, stride, padding, dilation, impl):
    return input.new_empty(input.shape), weight.new_empty(weight.shape)


def _setup_context(ctx, inputs, output):
    input, weight, bias, stride, padding, dilation, impl = inputs
    ctx.save_for_backward(input, weight)
    ctx.arguments = (stride, padding, dilation, impl)
    ctx.has_bias = bias is not None


def _backward(ctx, grad):
    input, weight = ctx.saved_tensors
    grad_input, grad_weight = tanprod_conv2d_backward_op(grad, input, weight, *ctx.arguments)
    grad_bias = grad.sum((0, 2, 3)) if ctx.has_bias else None
    return grad_input, grad_weight, grad_bias, None, None, None, None


tanprod_conv2d_op.register_autograd(_backward, setup_context=_setup_context)


def tanprod_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, *, impl="auto"):
    """Product of ``tan(input + weight)`` over each window, plus bias.

    Args:
        input: ``[N, C, H, W]`` floating tensor (float16/bfloat16 computed in float32).
        weight: ``[O, C, kh, kw]``, same dtype and device.
        bias: ``[O]`` or None, added after the product.
        stride, padding, dilation: int or a sequence of one or two ints; zero padding,
            so a padded tap contributes the factor ``tan(w)``.
        impl: ``"auto"``, ``"native"`` or ``"triton"``.

    Returns:
        ``[N, O, oh, ow]`` in the input dtype. The gradient is exact where a factor is 0.
    """
    check_tensors(OP, input=input, weight=weight, bias=bias)
    check_impl(OP, impl)
    geometry = _geometry(input, weight, bias, stride, padding, dilation)
    return tanprod_conv2d_op(input, weight, bias, int_list(geometry.stride),
                             int_list(geometry.pad_before), int_list(geometry.dilation), impl)
