"""Implementations that ``crossconv verify`` must pass or fail, besides the planted mistakes."""

import numpy as np

import reference


def conv2d_float64(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """The reference itself: float64 out for float32 in, which a NumPy implementation may do."""
    return reference.conv2d(input, weight, bias, stride=stride, padding=padding, dilation=dilation,
                            groups=groups)


def conv2d_without_dilation(input, weight, bias=None, stride=1, padding=0, groups=1):
    """A kernel without dilation: it passes only with ``--limit max_dilation=1``."""
    return reference.conv2d(input, weight, bias, stride=stride, padding=padding, groups=groups)


def conv2d_refusing_groups(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Raises on a valid call (groups > 1): a failure, with the call shown."""
    if groups > 1:
        raise NotImplementedError("groups > 1")
    return reference.conv2d(input, weight, bias, stride=stride, padding=padding, dilation=dilation)


def conv2d_wrong_for_two_groups(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Wrong only for groups == 2, which no boundary case has: a drawn case must catch it."""
    out = reference.conv2d(input, weight, bias, stride=stride, padding=padding, dilation=dilation,
                           groups=groups)
    return out + 1.0 if groups == 2 else out


def conv2d_vjp_doubling_input(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1,
                              groups=1):
    grads = reference.conv2d_vjp(grad_output, input, weight, bias, stride=stride, padding=padding,
                                 dilation=dilation, groups=groups)
    return {**grads, "input": 2 * grads["input"]}


def jax_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """conv2d with ``jax.lax.conv_general_dilated`` (torch's "same": the extra row at the end)."""
    import jax

    pair = lambda v: (v, v) if np.ndim(v) == 0 else (tuple(v) * 2)[:2]  # noqa: E731
    kernel = weight.shape[2:]
    if padding == "valid":
        pads = [(0, 0), (0, 0)]
    elif padding == "same":
        totals = [d * (k - 1) for d, k in zip(pair(dilation), kernel)]
        pads = [(t // 2, t - t // 2) for t in totals]
    else:
        pads = [(p, p) for p in pair(padding)]
    out = jax.lax.conv_general_dilated(input, weight, pair(stride), pads, rhs_dilation=pair(dilation),
                                       feature_group_count=groups,
                                       precision=jax.lax.Precision.HIGHEST)
    return out if bias is None else out + bias[None, :, None, None]


def max_pool2d_returning_a_list(input, kernel_size, stride=None, padding=0, dilation=1,
                                ceil_mode=False, return_indices=False):
    """Right values, wrong container: a list where torch returns a tuple (values, indices)."""
    out = reference.max_pool2d(input, kernel_size, stride=stride, padding=padding,
                               dilation=dilation, ceil_mode=ceil_mode, return_indices=return_indices)
    return list(out) if return_indices else out
