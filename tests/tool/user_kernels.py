"""Kernels as people write them in tutorials, re-expressed as functions for verify's tests
and docs/verify.md's worked examples (each follows what the cited post's code computes).

- :func:`pool2d_max`: the hand-written ``Pool2D(size, mode="max", stride)`` of the
  hand-written Conv2D/Pool2D and edge-detection post. Its window takes ``size[1]`` rows
  and ``size[0]`` columns, and every sample and channel gets the maximum of sample 0,
  channel 0 (the post indexes ``[0][0]`` out of the per-window maxima). No padding,
  dilation, ceil_mode or indices.
- :func:`conv2d_loops`: the same post's multi-channel ``Conv2D``: Python loops over output
  channels, input channels and output positions, a zero-padded float32 copy of each
  input plane, an int stride and padding, a bias always added, float32 out.
- :func:`deform_conv2d_planar_offsets`: a deformable convolution written around the
  deformable-convolution article's ``offset = torch.cat([oh, ow], dim=1)``: it reads the
  first half of the offset channels as row offsets and the second half as column offsets,
  where torchvision (and the reference) interleave one (dy, dx) pair per tap.
"""

import torch


def pool2d_max(input, kernel_size, stride=None):
    size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    step = size[0] if stride is None else (stride if isinstance(stride, int) else stride[0])
    rows_in, cols_in = size[1], size[0]  # as the post: its window uses size[1] for rows
    out_rows = (input.shape[2] - rows_in) // step + 1
    out_cols = (input.shape[3] - cols_in) // step + 1
    output = torch.zeros([input.shape[0], input.shape[1], out_rows, out_cols])
    for i in range(out_rows):
        for j in range(out_cols):
            window = input[:, :, step * i:step * i + rows_in, step * j:step * j + cols_in]
            per_row = torch.max(window, dim=3).values  # [N, C, rows]
            output[:, :, i, j] = max(per_row[0][0])  # sample 0, channel 0, for everyone
    return output


def _plane_conv(plane, kernel, stride, padding):
    """One input plane [N, H, W] with one kernel [kh, kw]: zero-padded float32 copy, loops."""
    padded = torch.zeros([plane.shape[0], plane.shape[1] + 2 * padding,
                          plane.shape[2] + 2 * padding])
    padded[:, padding:plane.shape[1] + padding, padding:plane.shape[2] + padding] = plane
    kh, kw = kernel.shape
    out_h = (padded.shape[1] - kh) // stride + 1
    out_w = (padded.shape[2] - kw) // stride + 1
    output = torch.zeros([plane.shape[0], out_h, out_w])
    for i in range(out_h):
        for j in range(out_w):
            window = padded[:, stride * i:stride * i + kh, stride * j:stride * j + kw]
            output[:, i, j] = torch.sum(window * kernel, dim=[1, 2])
    return output


def conv2d_loops(input, weight, bias, stride=1, padding=0):
    maps = []
    for kernels, b in zip(weight, bias):  # one output channel at a time
        planes = [_plane_conv(input[:, c], kernels[c], stride, padding)
                  for c in range(input.shape[1])]
        maps.append(torch.sum(torch.stack(planes), dim=0) + b)
    return torch.stack(maps, 1)


def deform_conv2d_planar_offsets(input, offset, weight, bias=None, stride=1, padding=0,
                                 dilation=1, mask=None):
    import torchvision

    rows, cols = offset.chunk(2, dim=1)  # [all dy; all dx], as torch.cat([oh, ow]) builds them
    pairs = torch.stack([rows, cols], dim=2).flatten(1, 2)  # torchvision's (dy, dx) per tap
    return torchvision.ops.deform_conv2d(input, pairs, weight, bias, stride=stride,
                                         padding=padding, dilation=dilation, mask=mask)
