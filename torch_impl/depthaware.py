"""``depthaware_conv2d`` and ``depthaware_avg_pool2d`` as the custom ops
``torch.ops.crossconv.depthaware_conv2d`` and ``torch.ops.crossconv.depthaware_avg_pool2d``.

Depth-aware convolution and average pooling (Wang & Neumann, ECCV 2018;
docs/depthaware.md): every window weighs each tap by ``F = exp(-alpha * |depth[centre] -
depth[tap]|)``. :func:`torch_impl.custom_op.contract_op` makes each forward and backward
custom op over the contract functions of :mod:`torch_impl.native.depthaware` or
``torch_impl.kernels.depthaware``.

Depth is differentiable (the original code returned no depth gradient):
``sign(0) = 0``, so a tap at its centre's depth passes none.
"""

from __future__ import annotations

from reference.depthaware import (
    depthaware_avg_pool2d_signature,
    depthaware_conv2d_signature,
)

from .common import check_impl, check_tensors, int_list, shape
from .custom_op import contract_op

CONV, POOL = "depthaware_conv2d", "depthaware_avg_pool2d"

depthaware_conv2d_op = contract_op(
    CONV, "depthaware",
    "Tensor input, Tensor depth, Tensor weight, Tensor? bias, int[] stride, int[] padding, "
    "int[] dilation, float alpha, str impl",
    check=depthaware_conv2d_signature,
    contract_args=lambda sig: (sig.geometry, sig.alpha),
    grads=("input", "depth", "weight"),
    per_sample=("input", "depth"),
    functions=("conv_forward", "conv_backward"),
)

depthaware_avg_pool2d_op = contract_op(
    POOL, "depthaware",
    "Tensor input, Tensor depth, int[] kernel_size, int[] stride, int[] padding, float alpha, "
    "bool count_include_pad, str impl",
    check=depthaware_avg_pool2d_signature,
    contract_args=lambda sig: (sig.geometry, sig.alpha, sig.count_include_pad),
    grads=("input", "depth"),
    per_sample=("input", "depth"),
    bias=None,
    functions=("pool_forward", "pool_backward"),
)


def depthaware_conv2d(input, depth, weight, bias=None, stride=1, padding=0, dilation=1,
                      alpha=1.0, *, impl="auto"):
    """Depth-aware convolution: ``out = bias + sum W * x * F`` over each window.

    Args:
        input: ``[N, C, H, W]`` floating tensor (float16/bfloat16 computed in float32).
        depth: ``[N, 1, H, W]``, same dtype and device; differentiable.
        weight: ``[O, C, kh, kw]`` (no groups; even kernels take the upper-left of the
            middle pixels as the centre).
        bias: ``[O]`` or None.
        stride, padding, dilation: int or a sequence of one or two ints.
        alpha: similarity scale, a finite float >= 0 (0: F = 1, plain conv2d).
        impl: ``"auto"``, ``"native"`` or ``"triton"``.

    Returns:
        ``[N, O, oh, ow]`` in the input dtype.
    """
    check_tensors(CONV, input=input, depth=depth, weight=weight, bias=bias)
    check_impl(CONV, impl)
    sig = depthaware_conv2d_signature(shape(input), shape(depth), shape(weight), shape(bias),
                                      stride, padding, dilation, alpha)
    g = sig.geometry
    return depthaware_conv2d_op(input, depth, weight, bias, int_list(g.stride),
                                int_list(g.pad_before), int_list(g.dilation), sig.alpha, impl)


def depthaware_avg_pool2d(input, depth, kernel_size, stride=None, padding=0, alpha=1.0,
                          count_include_pad=True, *, impl="auto"):
    """Depth-aware average pooling: ``sum F * x / divisor`` over each window.

    Args:
        input: ``[N, C, H, W]`` floating tensor (float16/bfloat16 computed in float32).
        depth: ``[N, 1, H, W]``, same dtype and device; differentiable.
        kernel_size: int or a sequence of one or two ints.
        stride: int, sequence, or None / ``()`` (= kernel_size).
        padding: at most half the kernel size.
        alpha: similarity scale, a finite float >= 0 (0: plain avg_pool2d).
        count_include_pad: divide by ``kh*kw - sum(1 - F)`` over the image's taps (padded
            cells count 1, the original's rule) or by ``sum F``.
        impl: ``"auto"``, ``"native"`` or ``"triton"``.

    Returns:
        ``[N, C, oh, ow]`` in the input dtype.
    """
    check_tensors(POOL, input=input, depth=depth)
    check_impl(POOL, impl)
    sig = depthaware_avg_pool2d_signature(shape(input), shape(depth), kernel_size, stride,
                                          padding, alpha, count_include_pad)
    g = sig.geometry
    return depthaware_avg_pool2d_op(input, depth, int_list(g.kernel), int_list(g.stride),
                                    int_list(g.pad_before), sig.alpha,
                                    sig.count_include_pad, impl)
