"""torch_impl.nn: torch conventions, torchvision state dicts, unbatched input, the
deformable-convolution article's block starting as a plain convolution, and the 2.5D
convolution tutorial's network learning."""

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision

import torch_impl
from torch_impl import nn as tnn

F64 = torch.float64


def _rand(*shape, seed=0, low=-1.0, high=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=F64) * (high - low) + low


@pytest.mark.parametrize("groups, bias, with_mask", [(1, True, True), (2, False, False),
                                                     (2, True, True)])
def test_deform_conv2d_state_dicts_round_trip_with_torchvision(groups, bias, with_mask):
    ours = tnn.DeformConv2d(4, 6, 3, stride=(1, 2), padding=1, dilation=(2, 1), groups=groups,
                            bias=bias, dtype=F64)
    theirs = torchvision.ops.DeformConv2d(4, 6, 3, stride=(1, 2), padding=1, dilation=(2, 1),
                                          groups=groups, bias=bias).to(F64)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    x = _rand(2, 4, 7, 8)
    offset = _rand(2, 18, 5, 4, seed=1, low=-2, high=2)
    mask = _rand(2, 9, 5, 4, seed=2, low=0, high=1) if with_mask else None
    theirs.load_state_dict(ours.state_dict())
    expected = theirs(x, offset, mask)
    assert expected.abs().max() > 0
    torch.testing.assert_close(ours(x, offset, mask), expected, rtol=1e-12, atol=1e-12)
    fresh = torchvision.ops.DeformConv2d(4, 6, 3, stride=(1, 2), padding=1, dilation=(2, 1),
                                         groups=groups, bias=bias).to(F64)
    ours.load_state_dict(fresh.state_dict())
    torch.testing.assert_close(ours(x, offset, mask), fresh(x, offset, mask), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("with_mask, offset_groups, stride, dilation",
                         [(False, 1, 1, 1), (True, 2, 2, 1), (True, 4, 1, 2)])
def test_deformable_conv2d_starts_as_a_plain_convolution(with_mask, offset_groups, stride,
                                                         dilation):
    layer = tnn.DeformableConv2d(4, 6, 3, stride=stride, padding=1, dilation=dilation,
                                 offset_groups=offset_groups, with_mask=with_mask, dtype=F64)
    x = _rand(2, 4, 9, 8).requires_grad_()
    out = layer(x)
    plain = F.conv2d(x, layer.weight, layer.bias, stride=stride, padding=1, dilation=dilation)
    torch.testing.assert_close(out, plain, rtol=1e-12, atol=1e-12)
    out.square().sum().backward()
    # Learning moves the offsets (and the mask) away from the plain convolution.
    assert layer.offset_conv.weight.grad.abs().max() > 0


def test_unbatched_input_is_a_batch_of_one():
    x, depth = _rand(3, 7, 6), _rand(1, 7, 6, seed=1, low=0.5, high=2)
    cases = [
        (tnn.TanProdConv2d(3, 2, 3, padding=1, dtype=F64), (0.4 * x,)),
        (tnn.Conv2_5d(3, 2, 3, padding=1, dtype=F64), (x, depth)),
        (tnn.DeformConv2d(3, 2, 3, padding=1, dtype=F64),
         (x, _rand(18, 7, 6, seed=2), _rand(9, 7, 6, seed=3, low=0, high=1))),
        (tnn.DeformableConv2d(3, 2, 3, padding=1, with_mask=True, dtype=F64), (x,)),
    ]
    for module, args in cases:
        unbatched = module(*args)
        batched = module(*(a.unsqueeze(0) for a in args))
        assert unbatched.shape == batched.shape[1:]
        torch.testing.assert_close(unbatched, batched[0], rtol=0, atol=0)


def test_conv2_5d_takes_a_focal_length_per_call():
    layer = tnn.Conv2_5d(2, 3, 3, padding=1, focal=2.0, pixel_size=0.5, dtype=F64)
    x, depth = _rand(1, 2, 6, 6), _rand(1, 1, 6, 6, seed=1, low=0.5, high=3)
    default = layer(x, depth)
    torch.testing.assert_close(default, torch_impl.conv2_5d(
        x, depth, layer.weight, layer.bias, padding=1, focal=2.0, pixel_size=0.5))
    other = layer(x, depth, focal=0.5)
    torch.testing.assert_close(other, torch_impl.conv2_5d(
        x, depth, layer.weight, layer.bias, padding=1, focal=0.5, pixel_size=0.5))
    assert not torch.allclose(default, other)


@pytest.mark.parametrize("make, fan_in", [
    (lambda **f: tnn.TanProdConv2d(3, 8, (3, 5), **f), 3 * 15),
    (lambda **f: tnn.Conv2_5d(3, 8, 3, bins=2, **f), 3 * 9),
    (lambda **f: tnn.DeformConv2d(4, 8, 3, groups=2, **f), 2 * 9),
    (lambda **f: tnn.DeformableConv2d(4, 8, 3, **f), 4 * 9),
])
def test_parameters_follow_nn_conv2d(make, fan_in):
    module = make(dtype=F64)
    assert all(p.dtype == F64 for p in module.parameters())
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) and the bias bound
    for p in (module.weight, module.bias):
        assert p.abs().max() <= bound and p.std() > bound / 4  # kaiming-uniform spread
    before = module.weight.detach().clone()
    module.reset_parameters()
    assert not torch.equal(before, module.weight)
    meta = make(device="meta")
    assert all(p.device.type == "meta" for p in meta.parameters())


def test_extra_repr_reads_like_torch():
    assert repr(tnn.TanProdConv2d(3, 4, 3, bias=False)) == (
        "TanProdConv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), bias=False)")
    assert repr(tnn.Conv2_5d(3, 4, 5, padding=2, focal=500.0, pixel_size=4.0)) == (
        "Conv2_5d(3, 4, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2), bins=5, "
        "focal=500.0, pixel_size=4.0)")
    assert repr(tnn.DeformConv2d(4, 8, 3, padding=1, dilation=2, groups=2)) == (
        "DeformConv2d(4, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), "
        "dilation=(2, 2), groups=2)")


@pytest.mark.parametrize("make, message", [
    (lambda: tnn.Conv2_5d(3, 4, 2), "kernel_size must be odd"),
    (lambda: tnn.Conv2_5d(3, 4, 3, focal=0.0), "focal must be finite and > 0"),
    (lambda: tnn.DeformConv2d(3, 4, 3, groups=2), "in_channels must be divisible by groups"),
    (lambda: tnn.DeformConv2d(4, 3, 3, groups=2), "out_channels must be divisible by groups"),
    (lambda: tnn.DeformableConv2d(4, 4, 3, offset_groups=3), "divisible by offset_groups"),
    (lambda: tnn.TanProdConv2d(3, 4, 3, stride=0), "stride must be positive"),
    (lambda: tnn.TanProdConv2d(0, 4, 3), "in_channels must be positive"),
])
def test_bad_module_arguments_are_value_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


class SeedNet(torch.nn.Module):
    """The 2.5D tutorial's test network: Conv2_5d 3->32 (k5, pad 2) -> Conv2d 32->2 -> BatchNorm2d."""

    def __init__(self):
        super().__init__()
        self.head = tnn.Conv2_5d(3, 32, 5, padding=2, bias=False)
        self.pred = torch.nn.Conv2d(32, 2, 3, padding=1, bias=False)
        self.norm = torch.nn.BatchNorm2d(2)

    def forward(self, x, depth):
        return self.norm(self.pred(self.head(x, depth)))


def test_seed_000_network_lowers_its_loss():
    torch.manual_seed(0)
    net = SeedNet()
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(4):  # fixed random RGB-D batches; the label is which of R, G is larger
        images = torch.rand(2, 3, 32, 32, generator=g)
        depth = torch.rand(2, 1, 32, 32, generator=g)
        batches.append((images, depth, (images[:, 0] > images[:, 1]).long()))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for step in range(100):
        images, depth, labels = batches[step % len(batches)]
        loss = F.cross_entropy(net(images, depth), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert last < 0.5 * first, (first, last)
