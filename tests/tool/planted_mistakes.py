"""Implementations with one planted mistake each, for ``crossconv verify`` to catch.

Each has the op's signature (docs/) and is right except for one classic slip (``docs/verify.md``
shows verify's output on several):

- :func:`deform_conv2d_swapped_offsets`: reads each offset pair as (dx, dy).
- :func:`max_pool2d_ignoring_ceil_mode`: always floors the output size.
- :func:`conv2_5d_closed_bins`: bin intervals ``[e_l, e_l+1]`` closed on both ends (the
  official 2.5D code's choice), so a tap on an edge counts in two bins.
- :func:`conv2d_same_padding_off_by_one`: ``padding="same"`` with the odd extra row and
  column on the top/left instead of the bottom/right.

One per kind of failure verify must survive or find beyond plain arithmetic:

- :func:`conv2d_segfaulting_on_nan`: kills its process (SIGSEGV) when the input holds a NaN.
- :func:`avg_pool2d_hanging_on_nan`: iterates to a fixed point that a NaN never reaches.
- :func:`conv2d_in_batch_chunks`: a batch loop in steps of ``min(2, N)`` that leaves an odd
  last sample at zero (wrong only for N = 3, 5, ...).
- :func:`max_pool2d_dropping_the_last_tile`: a grid of ``W_out // 32`` column tiles, so the
  partial tile past 32 is never written (wrong only for output widths 33-63, 65-95, ...).
- :func:`xcorr2d_fft_path_for_large_templates`: past 16 it switches to a path that
  convolves (flipped template) instead of correlating.
- :func:`conv2d_assuming_contiguous_input` (torch): reads the input's storage as if it were
  contiguous (wrong for views and channels_last).
- :func:`conv2d_accumulating_in_half_precision` (torch): sums the taps in the input dtype.
- :func:`conv2d_with_nondeterministic_weight_gradient` (torch): the weight gradient's last
  bits change from call to call, as with atomic adds in a racing order.
- :func:`conv2d_scaled_by_the_batch_maximum` (torch): scales by the whole batch's
  largest value, so a sample's last bits depend on the other samples.
"""

import ctypes

import numpy as np

import reference
from reference.common import float_arrays, shape_of
from reference.conv2_5d import conv2_5d_signature


def deform_conv2d_swapped_offsets(input, offset, weight, bias=None, stride=1, padding=0, dilation=1,
                                  mask=None):
    n, channels, oh, ow = np.shape(offset)
    pairs = np.asarray(offset).reshape(n, channels // 2, 2, oh, ow)
    swapped = pairs[:, :, ::-1].reshape(n, channels, oh, ow)  # the mistake: (dx, dy)
    return reference.deform_conv2d(input, swapped, weight, bias, stride=stride, padding=padding,
                                   dilation=dilation, mask=mask)


def max_pool2d_ignoring_ceil_mode(input, kernel_size, stride=None, padding=0, dilation=1,
                                  ceil_mode=False, return_indices=False):
    return reference.max_pool2d(input, kernel_size, stride=stride, padding=padding,
                                dilation=dilation, ceil_mode=False,  # the mistake
                                return_indices=return_indices)


def conv2_5d_closed_bins(input, depth, weight, bias=None, stride=1, padding=0, dilation=1,
                         focal=1.0, pixel_size=1.0):
    x, z, w, b = float_arrays("conv2_5d", input=input, depth=depth, weight=weight, bias=bias)
    geometry = conv2_5d_signature(x.shape, z.shape, w.shape, shape_of(b), stride, padding, dilation,
                                  focal, pixel_size).geometry
    xpad, zpad = geometry.pad(x), geometry.pad(z)
    kh, kw = geometry.kernel
    bins = w.shape[0]
    centre = geometry.tap(zpad, kh // 2, kw // 2)[:, 0]
    s = centre * pixel_size / focal
    out = np.zeros((x.shape[0], w.shape[1], *geometry.out_size))
    for i, j in geometry.taps():
        tap_depth = geometry.tap(zpad, i, j)[:, 0]
        for l in range(bins):
            lower = centre + (l - bins / 2) * s
            upper = centre + (l + 1 - bins / 2) * s
            m = (lower <= tap_depth) & (tap_depth <= upper)  # the mistake: closed on the right
            out += np.einsum("ncyx,oc->noyx", geometry.tap(xpad, i, j) * m[:, None], w[l, :, :, i, j])
    return out if b is None else out + b[None, :, None, None]


def conv2d_same_padding_off_by_one(input, weight, bias=None, stride=1, padding=0, dilation=1,
                                   groups=1):
    if padding == "same":
        kh, kw = np.shape(weight)[2:]
        dh, dw = (dilation, dilation) if np.ndim(dilation) == 0 else tuple(dilation)[-2:]
        total_h, total_w = dh * (kh - 1), dw * (kw - 1)
        top, left = total_h - total_h // 2, total_w - total_w // 2  # the mistake: extra on top/left
        widths = ((0, 0), (0, 0), (top, total_h - top), (left, total_w - left))
        input, padding = np.pad(np.asarray(input), widths), 0
    return reference.conv2d(input, weight, bias, stride=stride, padding=padding, dilation=dilation,
                            groups=groups)


# ----------------------------------------------------------------------------- crash, hang


def conv2d_segfaulting_on_nan(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Like a kernel that turns floor(NaN) into an index: reads address 0 on a NaN input."""
    if np.isnan(input).any():
        ctypes.string_at(0)  # the mistake: a wild read, SIGSEGV
    return reference.conv2d(input, weight, bias, stride=stride, padding=padding, dilation=dilation,
                            groups=groups)


def avg_pool2d_hanging_on_nan(input, kernel_size, stride=None, padding=0, ceil_mode=False,
                              count_include_pad=True, divisor_override=None):
    """Recomputes until two iterates agree: NaN never equals NaN, so a NaN input never ends."""
    def once():
        return reference.avg_pool2d(input, kernel_size, stride=stride, padding=padding,
                                    ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                                    divisor_override=divisor_override)

    previous, out = None, once()
    while previous is None or not np.array_equal(previous, out):  # the mistake: NaN != NaN
        previous, out = out, once()
    return out


# ----------------------------------------------------------------------------- sizes


def conv2d_in_batch_chunks(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Processes the batch ``step = min(2, N)`` samples at a time (an im2col step)."""
    input = np.asarray(input)
    n = input.shape[0]
    step = min(2, n)
    chunks = [reference.conv2d(input[start:start + step], weight, bias, stride=stride,
                               padding=padding, dilation=dilation, groups=groups)
              for start in range(0, n - n % step, step)]  # the mistake: the remainder is skipped
    whole = reference.conv2d(input[:1], weight, bias, stride=stride, padding=padding,
                             dilation=dilation, groups=groups)
    out = np.zeros((n, *whole.shape[1:]))
    if chunks:
        out[:len(chunks) * step] = np.concatenate(chunks)
    return out


def max_pool2d_dropping_the_last_tile(input, kernel_size, stride=None, padding=0, dilation=1,
                                      ceil_mode=False, return_indices=False):
    """Writes the output in column tiles of 32, launched as ``W_out // 32`` programs."""
    values, indices = reference.max_pool2d(input, kernel_size, stride=stride, padding=padding,
                                           dilation=dilation, ceil_mode=ceil_mode,
                                           return_indices=True)
    width = values.shape[-1]
    tiles = 1 if width <= 32 else width // 32  # the mistake: floor, not ceil
    out, out_indices = np.zeros_like(values), np.zeros_like(indices)
    for tile in range(tiles):
        columns = slice(tile * 32, (tile + 1) * 32)
        out[..., columns], out_indices[..., columns] = values[..., columns], indices[..., columns]
    return (out, out_indices) if return_indices else out


def xcorr2d_fft_path_for_large_templates(search, template):
    """A direct path for small templates; for large ones an FFT path that forgets that
    correlation conjugates the template's spectrum (so it convolves)."""
    template = np.asarray(template)
    if max(template.shape[-2:]) > 16:
        template = template[..., ::-1, ::-1]  # the mistake: a convolution
    return reference.xcorr2d(search, template)


# ----------------------------------------------------------------------------- torch


def conv2d_assuming_contiguous_input(input, weight, bias=None, stride=1, padding=0, dilation=1,
                                     groups=1):
    """Reads ``input`` straight from its storage, as a kernel handed ``data_ptr()`` does."""
    import torch
    import torch.nn.functional as F

    raw = torch.as_strided(input, input.shape, _contiguous_strides(input.shape),
                           0)  # the mistake: ignores the strides and the storage offset
    return F.conv2d(raw, weight, bias, stride, padding, dilation, groups)


def _contiguous_strides(shape):
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def conv2d_accumulating_in_half_precision(input, weight, bias=None, stride=1, padding=0,
                                          dilation=1, groups=1):
    """A tap-by-tap convolution whose running sum is kept in the input's dtype."""
    import torch
    import torch.nn.functional as F

    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    stride, dilation = pair(stride), pair(dilation)
    kernel = weight.shape[2:]
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":
        totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
        input = F.pad(input, (totals[1] // 2, totals[1] - totals[1] // 2,
                              totals[0] // 2, totals[0] - totals[0] // 2))
        padding = (0, 0)
    padding = pair(padding)
    n, c, h, w = input.shape
    out_h = (h + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    out_w = (w + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    columns = F.unfold(input.double(), kernel, dilation=dilation, padding=padding,
                       stride=stride).to(input.dtype)
    columns = columns.reshape(n, groups, c // groups * kernel[0] * kernel[1], out_h * out_w)
    taps = weight.reshape(groups, weight.shape[0] // groups, -1)
    out = torch.zeros(n, groups, taps.shape[1], out_h * out_w, dtype=input.dtype)
    for k in range(columns.shape[2]):  # the mistake: every partial sum rounded to the dtype
        out = out + columns[:, :, None, k, :] * taps[None, :, :, k, None]
    out = out.reshape(n, weight.shape[0], out_h, out_w)
    return out if bias is None else out + bias[None, :, None, None]


def conv2d_with_nondeterministic_weight_gradient(input, weight, bias=None, stride=1, padding=0,
                                                 dilation=1, groups=1):
    """F.conv2d whose weight gradient is summed in a different order on every call, as
    atomic adds racing on a GPU are (here: the same sum with a random term added and
    taken away again, which changes only its last bits)."""
    import torch
    import torch.nn.functional as F

    class Conv(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return F.conv2d(x, w, None, stride, padding, dilation, groups)

        @staticmethod
        def backward(ctx, grad):
            x, w = ctx.saved_tensors
            with torch.enable_grad():
                x_, w_ = x.detach().requires_grad_(), w.detach().requires_grad_()
                gx, gw = torch.autograd.grad(F.conv2d(x_, w_, None, stride, padding, dilation,
                                                      groups), (x_, w_), grad)
            jitter = torch.where(torch.isfinite(gw), torch.rand_like(gw) * gw.abs(), 0.0)
            return gx, (gw + jitter) - jitter  # the mistake: order-dependent rounding

    out = Conv.apply(input, weight)
    return out if bias is None else out + bias[None, :, None, None]


def conv2d_scaled_by_the_batch_maximum(input, weight, bias=None, stride=1, padding=0, dilation=1,
                                       groups=1):
    """Scales the whole batch by its largest finite magnitude (as per-tensor quantisation
    does) and back: each sample's last bits depend on the others."""
    import torch
    import torch.nn.functional as F

    wide = torch.promote_types(input.dtype, torch.float32)  # float32 at least: accurate
    x, w = input.to(wide), weight.to(wide)
    finite = torch.where(torch.isfinite(x), x.abs(), torch.zeros_like(x))
    scale = finite.amax().detach() if finite.numel() else torch.ones((), dtype=wide)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # the mistake: a batch statistic
    out = F.conv2d(x / scale, w, None, stride, padding, dilation, groups) * scale
    out = out if bias is None else out + bias.to(wide)[None, :, None, None]
    return out.to(input.dtype)
