"""``deform_conv2d`` as the custom op ``torch.ops.crossconv.deform_conv2d``.

Deformable convolution v1 (no mask) and v2 (mask), ``torchvision.ops.deform_conv2d``
semantics (docs/deform.md), except that bad arguments are ``ValueError``s and a NaN
offset gives NaN outputs instead of a crash. :func:`torch_impl.custom_op.contract_op`
makes the forward and the backward (``crossconv::deform_conv2d_backward``) custom ops
over the contract functions of :mod:`torch_impl.native.deform` or
``torch_impl.kernels.deform``.
"""

from __future__ import annotations

from reference.deform import deform_conv2d_signature

from .common import check_impl, check_tensors, int_list, shape
from .custom_op import contract_op

OP = "deform_conv2d"

deform_conv2d_op = contract_op(
    OP, "deform",
    "Tensor input, Tensor offset, Tensor weight, Tensor? bias, Tensor? mask, int[] stride, "
    "int[] padding, int[] dilation, str impl",
    check=deform_conv2d_signature,
    contract_args=lambda sig: (sig.geometry, sig.groups, sig.offset_groups),
    grads=("input", "offset", "weight", "mask"),
    per_sample=("input", "offset", "mask"),
)


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
    g = deform_conv2d_signature(shape(input), shape(offset), shape(weight), shape(bias), stride,
                                padding, dilation, shape(mask)).geometry
    return deform_conv2d_op(input, offset, weight, bias, mask, int_list(g.stride),
                            int_list(g.pad_before), int_list(g.dilation), impl)
