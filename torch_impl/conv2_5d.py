"""``conv2_5d`` as the custom op ``torch.ops.crossconv.conv2_5d``.

2.5D convolution (Xing et al., ICIP 2019; docs/conv2_5d.md): each output position splits
its window's taps into ``B = weight.shape[0]`` depth bins around the depth at the window
centre, and bin l has its own kernel ``weight[l]``.
:func:`torch_impl.custom_op.contract_op` makes the forward and the backward
(``crossconv::conv2_5d_backward``) custom ops over the contract functions of
:mod:`torch_impl.native.conv2_5d` or ``torch_impl.kernels.conv2_5d``.

Depth is not differentiable (the bins are piecewise constant in it): it may require
grad, as a depth predicted by a network does, and then gets no gradient (None).
"""

from __future__ import annotations

from reference.conv2_5d import conv2_5d_signature

from .common import check_impl, check_tensors, int_list, shape
from .custom_op import contract_op

OP = "conv2_5d"

conv2_5d_op = contract_op(
    OP, "conv2_5d",
    "Tensor input, Tensor depth, Tensor weight, Tensor? bias, int[] stride, int[] padding, "
    "int[] dilation, float focal, float pixel_size, str impl",
    check=conv2_5d_signature,
    contract_args=lambda sig: (sig.geometry, sig.focal, sig.pixel_size),
    grads=("input", "weight"),
    per_sample=("input", "depth"),
)


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
    sig = conv2_5d_signature(shape(input), shape(depth), shape(weight), shape(bias), stride,
                             padding, dilation, focal, pixel_size)
    g = sig.geometry
    return conv2_5d_op(input, depth, weight, bias, int_list(g.stride), int_list(g.pad_before),
                       int_list(g.dilation), sig.focal, sig.pixel_size, impl)
