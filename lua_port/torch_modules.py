"""torch.nn modules with Torch7 semantics that torch.nn lacks, for :func:`lua_port.to_torch`.

Each mirrors one Torch7 module (the name says which): nn.View's batch rule, nn.Reshape's,
nn.SoftMax's choice of dimension, the table containers (their outputs are lists),
nn.CAddTable, Dropout's v1 variant, and the one-map form of nn.CustomConv.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _feature_dim(x: torch.Tensor) -> int:
    """nn.SoftMax / nn.LogSoftMax's dimension: 1-D and 3-D input: the first, 2-D and
    4-D: the second (0-based 0 and 1)."""
    if x.dim() not in (1, 2, 3, 4):
        raise ValueError(f"1D, 2D, 3D or 4D tensor expected, got a {x.dim()}D tensor")
    return 0 if x.dim() in (1, 3) else 1


class SoftMax(nn.Module):
    """nn.SoftMax: softmax over the feature dimension (see :func:`_feature_dim`)."""

    def forward(self, x):
        return torch.softmax(x, _feature_dim(x))


class LogSoftMax(nn.Module):
    """nn.LogSoftMax: log-softmax over the feature dimension."""

    def forward(self, x):
        return torch.log_softmax(x, _feature_dim(x))


class View(nn.Module):
    """nn.View(sizes): the leading dimensions beyond one sample's element count are the
    batch; with a -1 the whole input is viewed unless ``num_input_dims`` is set."""

    def __init__(self, sizes, num_input_dims=None):
        super().__init__()
        self.sizes = tuple(int(s) for s in sizes)
        self.num_input_dims = None if num_input_dims is None else int(num_input_dims)
        self.num_elements = math.prod(s for s in self.sizes if s >= 0)

    def forward(self, x):
        dims = x.dim() if self.num_input_dims is None else self.num_input_dims
        sample = math.prod(x.shape[x.dim() - dims:])
        if sample % self.num_elements:
            raise ValueError(f"input view ({'x'.join(map(str, x.shape))}) and desired view "
                             f"({'x'.join(map(str, self.sizes))}) do not match")
        batch = 1 if -1 in self.sizes else sample // self.num_elements
        batch *= math.prod(x.shape[:x.dim() - dims])
        if batch == 1 and (self.num_input_dims is None or x.dim() <= self.num_input_dims):
            return x.reshape(self.sizes)
        return x.reshape((batch, *self.sizes))

    def extra_repr(self):
        return ", ".join(map(str, self.sizes))


class Reshape(nn.Module):
    """nn.Reshape(sizes, [batch_mode]): an input with exactly the sizes' element count
    and a first size other than 1 is one sample; otherwise the first dimension is kept
    as the batch (``batch_mode`` True / False forces either)."""

    def __init__(self, sizes, batch_mode=None):
        super().__init__()
        self.sizes = tuple(int(s) for s in sizes)
        self.batch_mode = batch_mode

    def forward(self, x):
        count = math.prod(self.sizes)
        if self.batch_mode is False or (self.batch_mode is None and x.numel() == count and x.shape[0] != 1):
            return x.reshape(self.sizes)
        return x.reshape((x.shape[0], *self.sizes))

    def extra_repr(self):
        return "x".join(map(str, self.sizes))


class Concat(nn.Module):
    """nn.Concat(dimension): every module on the same input, outputs concatenated along
    ``dim`` (0-based here: Torch7's dimension - 1)."""

    def __init__(self, dim, modules):
        super().__init__()
        self.dim = int(dim)
        self.branches = nn.ModuleList(modules)

    def forward(self, x):
        return torch.cat([m(x) for m in self.branches], self.dim)


class ConcatTable(nn.Module):
    """nn.ConcatTable: every module on the same input; the output is the list of results."""

    def __init__(self, modules):
        super().__init__()
        self.branches = nn.ModuleList(modules)

    def forward(self, x):
        return [m(x) for m in self.branches]


class ParallelTable(nn.Module):
    """nn.ParallelTable: module i on input[i]; the output is the list of results."""

    def __init__(self, modules):
        super().__init__()
        self.branches = nn.ModuleList(modules)

    def forward(self, xs):
        return [m(x) for m, x in zip(self.branches, xs, strict=True)]


class CAddTable(nn.Module):
    """nn.CAddTable: the sum of a list of tensors."""

    def forward(self, xs):
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return total


class DropoutV1(nn.Module):
    """nn.Dropout(p, true) (Torch7's first variant): in training, drop without scaling;
    in evaluation, scale by (1 - p)."""

    def __init__(self, p):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        if self.training:
            return x * torch.bernoulli(torch.full_like(x, 1 - self.p))
        return x * (1 - self.p)


class Scaled(nn.Module):
    """``module``'s output times ``factor`` (nn.SpatialAveragePooling without divide)."""

    def __init__(self, module, factor):
        super().__init__()
        self.module, self.factor = module, float(factor)

    def forward(self, x):
        return self.module(x) * self.factor


class OneMap(nn.Module):
    """The one-map form of nn.CustomConv(k): a [H, W] map in, a map out (batched
    [N, 1, H, W] and [1, H, W] inputs pass through as they are)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        if x.dim() == 2:
            return self.module(x[None, None])[0, 0]
        return self.module(x)
