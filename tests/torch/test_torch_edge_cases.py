"""Where torch's own operators depart from the contract and torch_impl does not follow:
non-finite weights on zero padding, zero-size channels (a ValueError), missing tensors."""

import numpy as np
import pytest
import torch

import reference
import torch_impl


def _reference(op, *tensors, **params):
    with np.errstate(invalid="ignore"):  # 0 * inf, on purpose
        out = getattr(reference, op)(*(t.detach().numpy() for t in tensors), **params)
    return torch.from_numpy(np.asarray(out))


@pytest.mark.parametrize("batch", [1, 2, 3])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_non_finite_weight_on_the_zero_padding_gives_nan(batch, value, dtype):
    """``0 * NaN`` and ``0 * inf`` are NaN: torch's CPU convolution skips the padded taps
    for batches of two or more and returns a finite number there."""
    weight = torch.ones(2, 1, 3, 3, dtype=dtype)
    weight[0, 0, 0, 0] = value
    x = torch.ones(batch, 1, 4, 4, dtype=dtype)
    out = torch_impl.conv2d(x, weight, padding=1)
    assert out[:, 0, 0, 0].isnan().all()
    torch.testing.assert_close(out, _reference("conv2d", x, weight, padding=1).to(dtype),
                               equal_nan=True)


def test_non_finite_weights_with_groups_bias_and_stride_match_the_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 4, 6, 5, generator=g, dtype=torch.float64)
    weight = torch.rand(6, 2, 3, 2, generator=g, dtype=torch.float64)
    weight[1, 0, 2, 1], weight[4, 1, 0, 0] = float("inf"), float("nan")
    bias = torch.rand(6, generator=g, dtype=torch.float64)
    params = {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2), "groups": 2}
    out = torch_impl.conv2d(x, weight, bias, **params)
    expected = _reference("conv2d", x, weight, bias, **params)
    assert expected.isnan().any() and expected.isfinite().any()
    torch.testing.assert_close(out, expected, equal_nan=True, rtol=1e-12, atol=1e-12)


ZERO_CHANNELS = [
    ("conv2d", lambda: (torch.rand(2, 0, 4, 4), torch.rand(3, 0, 3, 3), torch.rand(3))),
    ("conv2d", lambda: (torch.rand(2, 3, 4, 4), torch.rand(0, 3, 3, 3), torch.rand(0))),
    ("tanprod_conv2d", lambda: (torch.rand(2, 0, 4, 4), torch.rand(3, 0, 3, 3), torch.rand(3))),
    ("xcorr2d", lambda: (torch.rand(2, 0, 5, 5), torch.rand(2, 0, 3, 3))),
    ("xcorr2d_depthwise", lambda: (torch.rand(2, 0, 5, 5), torch.rand(2, 0, 3, 3))),
    ("max_pool2d", lambda: (torch.rand(2, 0, 4, 4), 2)),
    ("avg_pool2d", lambda: (torch.rand(2, 0, 4, 4), 2)),
]


@pytest.mark.parametrize("op, make", ZERO_CHANNELS, ids=[f"{o}-{i}" for i, (o, _) in
                                                        enumerate(ZERO_CHANNELS)])
def test_zero_channels_are_the_reference_value_error(op, make):
    """No channels is a ValueError naming the empty tensor, word for word the reference's,
    where torch raises from inside its kernel or drops the output channels."""
    args = make()
    with pytest.raises(ValueError) as expected:
        getattr(reference, op)(*(a.numpy() if isinstance(a, torch.Tensor) else a
                                 for a in args))
    assert "has an empty axis" in str(expected.value)
    with pytest.raises(ValueError) as error:
        getattr(torch_impl, op)(*args)
    assert str(error.value) == str(expected.value)


@pytest.mark.parametrize("op, name, args", [
    ("max_pool2d", "input", (None, 2)),
    ("avg_pool2d", "input", (None, 2)),
    ("conv2d", "input", (None, torch.rand(2, 3, 3, 3))),
    ("deform_conv2d", "offset", (torch.rand(1, 3, 5, 5), None, torch.rand(2, 3, 3, 3))),
    ("xcorr2d", "template", (torch.rand(1, 3, 5, 5), None)),
])
def test_a_missing_tensor_is_a_type_error_naming_it(op, name, args):
    with pytest.raises(TypeError, match=f"{op}: {name} must be a torch.Tensor, got NoneType"):
        getattr(torch_impl, op)(*args)


@pytest.mark.parametrize("bad", ["weight", "mask"])
def test_deform_offset_and_mask_gradients_of_an_infinite_weight_or_mask(bad):
    """An infinite weight (infinite column gradients) or mask: the offset and mask
    gradients are the reference's, inf where its per-channel corner sums are finite,
    not the NaN of inf - inf that summing the channels per corner first gives."""
    rng = np.random.default_rng(5)
    args = {"input": rng.uniform(-1, 1, (2, 4, 5, 5)), "offset": rng.uniform(-1.5, 1.5, (2, 18, 5, 5)),
            "weight": rng.uniform(-0.5, 0.5, (3, 4, 3, 3)), "mask": rng.uniform(0, 1, (2, 9, 5, 5))}
    args[bad].reshape(-1)[7] = np.inf
    with np.errstate(invalid="ignore"):
        out = reference.deform_conv2d(**args, padding=1)
        g = np.cos(np.arange(out.size)).reshape(out.shape)
        expected = reference.deform_conv2d_vjp(g, **args, padding=1)
    assert not np.isfinite(expected["offset"]).all()
    tensors = {k: torch.from_numpy(v).requires_grad_() for k, v in args.items()}
    torch_impl.deform_conv2d(**tensors, padding=1, impl="native").backward(torch.from_numpy(g))
    for name in ("offset", "mask", "input", "weight"):
        torch.testing.assert_close(tensors[name].grad, torch.from_numpy(expected[name]),
                                   equal_nan=True, rtol=1e-10, atol=1e-10, msg=name)
