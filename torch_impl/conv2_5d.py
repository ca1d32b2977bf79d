"""``conv2_5d`` as the custom op ``torch.ops.crossconv.conv2_5d``.

2.5D convolution (Xing et al., ICIP 2019; docs/conv2_5d.md): each output position splits its
window's taps into ``B = weight.shape[0]`` depth bins around the depth at the window
centre, and bin l has its own kernel ``weight[l]``. The forward and the backward
(``crossconv::conv2_5d_backward``) are custom ops calling the contract functions of
:mod:`torch_impl.native.conv2_5d` or ``torch_impl.kernels.conv2_5d``
(:func:`_implementation` chooses).

Depth is not differentiable (the bins are piecewise constant in it): it may require
grad, as a depth predicted by a network does, and then gets no gradient (None).
"""

from __future__ import annotations

import torch
from torch import Tensor

from reference.common import conv2_5d_signature, shape_of

from .common import check_impl, check_tensors, implementation, int_list, owned

OP = "conv2_5d"


def _implementation(impl: str, device: torch.device):
    """Where ``impl`` resolves for this op (the only place)."""
    return implementation(OP, "conv2_5d", impl, device)


def _signature(input, depth, weight, bias, stride, padding, dilation, focal, pixel_size):
    return conv2_5d_signature(input.shape, depth.shape, weight.shape, shape_of(bias), stride,
                              padding, dilation, focal, pixel_size)


@torch.library.custom_op("crossconv::conv2_5d", mutates_args=())
def conv2_5d_op(input: Tensor, depth: Tensor, weight: Tensor, bias: Tensor | None,
                stride: list[int], padding: list[int], dilation: list[int], focal: float,
                pixel_size: float, impl: str) -> Tensor:
    sig = _signature(input, depth, weight, bias, stride, padding, dilation, focal, pixel_size)
    out = _implementation(impl, input.device).forward(
        input.contiguous(), depth.contiguous(), weight.contiguous(), sig.geometry, sig.focal,
        sig.pixel_size,
    )
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return owned(out)


@conv2_5d_op.register_fake
def _(input, depth, weight, bias, stride, padding, dilation, focal, pixel_size, impl):
    sig = _signature(input, depth, weight, bias, stride, padding, dilation, focal, pixel_size)
    return input.new_empty(sig.out_shape)


@torch.library.custom_op("crossconv::conv2_5d_backward", mutates_args=())
def conv2_5d_backward_op(grad: Tensor, input: Tensor, depth: Tensor, weight: Tensor,
                         stride: list[int], padding: list[int], dilation: list[int],
                         focal: float, pixel_size: float, impl: str) -> tuple[Tensor, Tensor]:
    sig = _signature(input, depth, weight, None, stride, padding, dilation, focal, pixel_size)
    grads = _implementation(impl, input.device).backward(
        grad.contiguous(), input.contiguous(), depth.contiguous(), weight.contiguous(),
        sig.geometry, sig.focal, sig.pixel_size,
    )
    return tuple(owned(g) for g in grads)


@conv2_5d_backward_op.register_fake
def _(grad, input, depth, weight, stride, padding, dilation, focal, pixel_size, impl):
    return input.new_empty(input.shape), weight.new_empty(weight.shape)


def _setup_context(ctx, inputs, output):
    input, depth, weight, bias, *arguments = inputs
    ctx.save_for_backward(input, depth, weight)
    ctx.arguments = arguments
    ctx.has_bias = bias is not None


def _backward(ctx, grad):
    input, depth, weight = ctx.saved_tensors
    grad_input, grad_weight = conv2_5d_backward_op(grad, input, depth, weight, *ctx.arguments)
    grad_bias = grad.sum((0, 2, 3)) if ctx.has_bias else None
    return grad_input, None, grad_weight, grad_bias, None, None, None, None, None, None


conv2_5d_op.register_autograd(_backward, setup_context=_setup_context)


def conv2_5d(input, depth, weight, bias=None, stride=1, padding=0, dilation=1, focal=1.0,
             pixel_size=1.0, *, impl="auto"):
    """2.5D convolution.

    Args:
        input: ``[N, C, H, W]`` floating tensor (float16/bfloat16 computed in float32).
        depth: ``[N, 1, H, W]``, same dtype and device; not differentiable (gets no
            gradient even when it requires one).
        weight: ``[B, O, C, kh, kw]``: one kernel per depth bin, kh and kw odd.
        bias: ``[O]`` or None.
        stride, padding, dilation: int or a sequence of one or two ints.
        focal: focal length in pixels (> 0).
        pixel_size: feature stride x dilation (> 0); the bins are ``d * pixel_size /
            focal`` wide around the centre depth ``d``.
        impl: ``"auto"``, ``"native"`` or ``"triton"``.

    Returns:
        ``[N, O, oh, ow]`` in the input dtype.
    """
    check_tensors(OP, input=input, depth=depth, weight=weight, bias=bias)
    check_impl(OP, impl)
    sig = _signature(input, depth, weight, bias, stride, padding, dilation, focal, pixel_size)
    g = sig.geometry
    return conv2_5d_op(input, depth, weight, bias, int_list(g.stride), int_list(g.pad_before),
                       int_list(g.dilation), sig.focal, sig.pixel_size, impl)
