"""``tanprod_conv2d`` as the custom op ``torch.ops.crossconv.tanprod_conv2d``.

``out[n,o,y,x] = bias[o] + prod_{c,i,j} tan(xpad[n, c, y*sh + i*dh, x*sw + j*dw] + w[o,c,i,j])``
(docs/tanprod.md). :func:`torch_impl.custom_op.contract_op` makes the forward and its
backward (``crossconv::tanprod_conv2d_backward``) custom ops over the contract functions
of :mod:`torch_impl.native.tanprod` or ``torch_impl.kernels.tanprod``.
"""

from __future__ import annotations

from reference.tanprod import tanprod_conv2d_signature

from .common import check_impl, check_tensors, int_list, shape
from .custom_op import contract_op

OP = "tanprod_conv2d"

tanprod_conv2d_op = contract_op(
    OP, "tanprod",
    "Tensor input, Tensor weight, Tensor? bias, int[] stride, int[] padding, int[] dilation, "
    "str impl",
    check=tanprod_conv2d_signature,
    contract_args=lambda sig: (sig.geometry,),
    grads=("input", "weight"),
)


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
    weight_shape = shape(weight)
    sig = tanprod_conv2d_signature(shape(input), weight_shape, shape(bias), stride, padding, dilation)
    g = sig.geometry
    return tanprod_conv2d_op(input, weight, bias, int_list(g.stride), int_list(g.pad_before),
                             int_list(g.dilation), impl)
