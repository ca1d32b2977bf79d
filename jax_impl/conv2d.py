"""Standard 2-D convolution (torch semantics) and per-sample correlation (SiamFC,
SiamRPN++), through XLA's convolution ``lax.conv_general_dilated``.

conv2d maps onto it directly (``feature_group_count`` = groups, explicit padding pairs
from the shared geometry, so ``"same"`` puts the odd extra row/column bottom/right as
torch does). The correlations use the per-sample trick: the batch is folded into the
channels of a single image and every sample's template becomes its own group, so one
convolution correlates each sample with its own template::

    xcorr2d:           search [1, N*C, H, W]  *  template [N, C, h, w],      groups N
    xcorr2d_depthwise: search [1, N*C, H, W]  *  template [N*C, 1, h, w],    groups N*C

Templates larger than 16x16 (SiamFC's tracking shapes: 127x127 over 255x255, C=256)
are correlated through the FFT instead, as the reference does: exact up to rounding,
with NaN and infinities placed where the direct sum puts them (counted by correlating
indicator maps, a path taken only when the inputs are not all finite).

Gradients are JAX's own (the convolution's or the FFT's transposes), forward and reverse
mode, except that a kernel with a NaN or an infinity differentiates in the input through
a scan over its taps (:func:`_valid_conv`: XLA's transposed convolution multiplies its
zero padding by the kernel). float64 grouped convolutions run one dense convolution per
group (see :func:`_convolve`: XLA:CPU leaks ``inf * 0 = NaN`` across groups otherwise).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from reference.common import output_length, shape_of
from reference.conv2d import conv2d_signature, xcorr_signature

from . import common

_NCHW = ("NCHW", "OIHW", "NCHW")


def _convolve(x, w, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    """XLA's convolution; float64 with several groups as one dense convolution per group.

    XLA:CPU computes a float64 grouped convolution as a dense one with a block-diagonal
    kernel, so an infinite input meets the zero blocks of the other groups and ``inf * 0``
    puts NaN into their outputs (float32 is computed per group and is exact). Found by
    crosscheck's non-finite cases; splitting the groups keeps docs/conv2d.md's NaN rule."""
    if groups > 1 and x.dtype == jnp.float64:
        xs = jnp.split(x, groups, axis=1)
        ws = jnp.split(w, groups, axis=0)
        return jnp.concatenate([_convolve(xg, wg, stride, padding, dilation)
                                for xg, wg in zip(xs, ws)], axis=1)
    return lax.conv_general_dilated(x, w, stride, padding, rhs_dilation=dilation,
                                    dimension_numbers=_NCHW, feature_group_count=groups,
                                    precision=common.PRECISION)


def _tapwise(x, w, stride, dilation, groups):
    """The valid convolution of :func:`_convolve` as a scan over the kernel taps: each
    tap's strided view of ``x`` times the tap's weight slice, summed. Its transpose adds
    ``w * cotangent`` back into each tap's view, so it forms exactly the products of the
    definition: no zero padding of the cotangent meets a weight."""
    n, c, h, w_ = x.shape
    out_channels, group_in, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    oh, ow = output_length(h, kh, sh, 0, dh), output_length(w_, kw, sw, 0, dw)
    taps = common.kernel_taps(w).reshape(kh * kw, groups, out_channels // groups, group_in)

    def step(out, tap):
        t, w_tap = tap
        zero = jnp.zeros((), jnp.int32)
        start = (zero, zero, (t // kw) * dh, (t % kw) * dw)
        view = lax.dynamic_slice(x, start, (n, c, sh * (oh - 1) + 1, sw * (ow - 1) + 1))
        view = view[:, :, ::sh, ::sw].reshape(n, groups, group_in, oh, ow)
        product = jnp.einsum("ngcyx,goc->ngoyx", view, w_tap, precision=common.PRECISION)
        return out + product.reshape(n, out_channels, oh, ow), None

    start = jnp.zeros((n, out_channels, oh, ow), x.dtype)
    return lax.scan(step, start, (jnp.arange(kh * kw, dtype=jnp.int32), taps))[0]


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def _valid_conv(x, w, stride, dilation, groups):
    """``_convolve`` without padding, differentiable with the NaN rule of docs/index.md.

    XLA's own transpose (the input gradient) correlates the cotangent, zero padded by
    the kernel's extent, with the flipped kernel; XLA:CPU's float32 convolution then
    multiplies those padding zeros by the weights, and a NaN or infinite weight made
    the whole input gradient NaN where the reference has numbers. So the tangent in
    ``x`` goes through :func:`_tapwise` when the kernel is not all finite (XLA's
    convolution, and its transpose, otherwise)."""
    return _convolve(x, w, stride, ((0, 0), (0, 0)), dilation, groups)


@_valid_conv.defjvp
def _valid_conv_jvp(stride, dilation, groups, primals, tangents):
    x, w = primals
    dx, dw = tangents
    out = _valid_conv(x, w, stride, dilation, groups)
    d_input = lax.cond(jnp.all(jnp.isfinite(w)),
                       lambda t: _convolve(t, w, stride, ((0, 0), (0, 0)), dilation, groups),
                       lambda t: _tapwise(t, w, stride, dilation, groups), dx)
    return out, d_input + _convolve(x, dw, stride, ((0, 0), (0, 0)), dilation, groups)


def _window_region(x, geometry):
    """``x`` zero padded, then cropped to exactly the rows and columns the windows read.

    With padding passed to the convolution instead, the input gradient of a strided
    convolution whose last rows no window reads needs a negative (cropping) padding, and
    XLA's algebraic simplifier folds that crop into the transposed convolution's window
    padding: it aborted the process (a failed check in AlgebraicSimplifier) on some
    shapes, and openxla/xla#48715 reports wrong results from the same fold. Padded and
    cropped here, every padding in the forward and in both transposes is non-negative.
    """
    (top, left), (bottom, right) = geometry.pad_before, geometry.pad_after
    x = jnp.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    used = geometry.used_size()
    return x[:, :, :used[0], :used[1]]


@functools.partial(jax.jit, static_argnames=("geometry", "groups"))
def _conv2d(input, weight, bias, geometry, groups):
    dtype = common.compute_dtype(input.dtype)
    region = _window_region(input.astype(dtype), geometry)
    out = _valid_conv(region, weight.astype(dtype), geometry.stride, geometry.dilation, groups)
    return common.add_bias(out, bias).astype(input.dtype)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, impl="auto"):
    """2-D cross-correlation, ``torch.nn.functional.conv2d`` semantics.

    Args:
        input: ``[N, C, H, W]``.
        weight: ``[O, C/groups, kh, kw]``.
        bias: ``[O]`` or None.
        stride, dilation: int or ``(h, w)``, positive (static).
        padding: int or ``(h, w)``, or ``"valid"`` / ``"same"`` (stride 1 only).
        groups: int (static).
        impl: ``"auto"`` or ``"native"`` (XLA's convolution on every device; there is no
            Pallas kernel for it).

    Returns:
        ``[N, O, oh, ow]`` in the input's dtype.
    """
    input, weight, bias = common.as_arrays("conv2d", input=input, weight=weight, bias=bias)
    common.check_static("conv2d", stride=stride, padding=padding, dilation=dilation,
                        groups=groups, impl=impl)
    common.check_dtypes("conv2d", input=input, weight=weight, bias=bias)
    sig = conv2d_signature(input.shape, weight.shape, shape_of(bias), stride, padding, dilation,
                           groups)
    common.resolve_impl("conv2d", impl, None)
    return _conv2d(input, weight, bias, sig.geometry, sig.groups)


#: Templates larger than this many cells (16x16) are correlated through the FFT: XLA's
#: direct convolution costs C*h*w per output and, on SiamFC's tracking shapes (search
#: 255x255, template 127x127, C=256), asks for tens of GB and fails.
FFT_TEMPLATE_CELLS = 256


def _correlate_fft(search, template, sum_channels):
    """``out[n, c, y, x] = sum_{i,j} search[n, c, y+i, x+j] * template[n, c, i, j]`` (the
    valid part; summed over c, kept as one channel, if ``sum_channels``) via the FFT: the
    circular correlation does not wrap for ``y <= H - h``, so the valid part is exact up
    to rounding."""
    (h, w), (th, tw) = search.shape[-2:], template.shape[-2:]
    spectrum = jnp.fft.rfft2(search, s=(h, w)) * jnp.conj(jnp.fft.rfft2(template, s=(h, w)))
    if sum_channels:
        spectrum = jnp.sum(spectrum, axis=1, keepdims=True)
    out = jnp.fft.irfft2(spectrum, s=(h, w))[..., :h - th + 1, :w - tw + 1]
    return out.astype(search.dtype)


def _classes(x):
    """Indicator maps of x's values (1.0 / 0.0): NaN, +inf, -inf, zero, finite > 0, < 0."""
    finite = jnp.isfinite(x)
    return {"nan": jnp.isnan(x), "pinf": x == jnp.inf, "ninf": x == -jnp.inf, "zero": x == 0,
            "pos": finite & (x > 0), "neg": finite & (x < 0)}


def _correlate_nonfinite(search, template, sum_channels):
    """The FFT correlation with IEEE semantics for NaN and infinities, as the direct sum
    gives them: an output is NaN if one of its products is (a NaN factor, inf * 0) or if
    it has products of both infinite signs, else +-inf if one product is, else the sum of
    the finite products. Products of each kind are counted by correlating indicator
    maps, each count again through the FFT (rounding stays far below 0.5)."""
    a, b = _classes(search), _classes(template)
    one = lambda m: m.astype(search.dtype)  # noqa: E731
    a_any, b_any = jnp.ones_like(search), jnp.ones_like(template)
    a_inf, b_inf = a["pinf"] | a["ninf"], b["pinf"] | b["ninf"]
    pairs = {  # (search map, template map) whose products are of that kind
        "nan": [(one(a["nan"]), b_any), (a_any, one(b["nan"])), (one(a_inf), one(b["zero"])),
                (one(a["zero"]), one(b_inf))],
        "pinf": [(one(a["pinf"]), one(b["pos"] | b["pinf"])), (one(a["ninf"]), one(b["neg"] | b["ninf"])),
                 (one(a["pos"]), one(b["pinf"])), (one(a["neg"]), one(b["ninf"]))],
        "ninf": [(one(a["pinf"]), one(b["neg"] | b["ninf"])), (one(a["ninf"]), one(b["pos"] | b["pinf"])),
                 (one(a["pos"]), one(b["ninf"])), (one(a["neg"]), one(b["pinf"]))],
    }
    kinds = list(pairs)
    stacked_a = jnp.stack([x for kind in kinds for x, _ in pairs[kind]])
    stacked_b = jnp.stack([y for kind in kinds for _, y in pairs[kind]])
    counts = jax.vmap(lambda x, y: _correlate_fft(x, y, sum_channels))(stacked_a, stacked_b)
    present = {kind: jnp.sum(counts[4 * i:4 * i + 4], axis=0) > 0.5 for i, kind in enumerate(kinds)}
    finite = _correlate_fft(jnp.where(jnp.isfinite(search), search, 0),
                            jnp.where(jnp.isfinite(template), template, 0), sum_channels)
    out = jnp.where(present["ninf"], -jnp.inf, finite)
    out = jnp.where(present["pinf"], jnp.inf, out)
    return jnp.where(present["nan"] | (present["pinf"] & present["ninf"]), jnp.nan, out)


def _correlate_large(search, template, sum_channels):
    finite = jnp.all(jnp.isfinite(search)) & jnp.all(jnp.isfinite(template))
    return lax.cond(finite, functools.partial(_correlate_fft, sum_channels=sum_channels),
                    functools.partial(_correlate_nonfinite, sum_channels=sum_channels),
                    search, template)


@functools.partial(jax.jit, static_argnames=("depthwise",))
def _xcorr(search, template, depthwise):
    n, c, h, w = search.shape
    th, tw = template.shape[2:]
    oh, ow = h - th + 1, w - tw + 1
    if n == 0:  # no groups to fold into: nothing to correlate
        return jnp.zeros((0, c if depthwise else 1, oh, ow), search.dtype)
    result, dtype = search.dtype, common.compute_dtype(search.dtype)
    search, template = search.astype(dtype), template.astype(dtype)
    if th * tw > FFT_TEMPLATE_CELLS:
        out = _correlate_large(search, template, sum_channels=not depthwise)
    else:
        folded = search.reshape(1, n * c, h, w)
        if depthwise:
            out = _valid_conv(folded, template.reshape(n * c, 1, th, tw), (1, 1), (1, 1), n * c)
        else:
            out = _valid_conv(folded, template, (1, 1), (1, 1), n)
    return out.reshape(n, c if depthwise else 1, oh, ow).astype(result)


def xcorr2d(search, template, *, impl="auto"):
    """Per-sample cross-correlation summed over channels (SiamFC).

    Args:
        search: ``[N, C, H, W]``.
        template: ``[N, C, h, w]``, correlated with its own sample of ``search``.
        impl: ``"auto"`` or ``"native"``.

    Returns:
        ``[N, 1, H-h+1, W-w+1]`` in the input's dtype.
    """
    return _xcorr_op("xcorr2d", search, template, impl)


def xcorr2d_depthwise(search, template, *, impl="auto"):
    """Per-sample, per-channel cross-correlation (SiamRPN++ depth-wise xcorr).

    Args:
        search: ``[N, C, H, W]``.
        template: ``[N, C, h, w]``.
        impl: ``"auto"`` or ``"native"``.

    Returns:
        ``[N, C, H-h+1, W-w+1]`` in the input's dtype: channel c of sample n correlated
        with its own template channel.
    """
    return _xcorr_op("xcorr2d_depthwise", search, template, impl)


def _xcorr_op(op, search, template, impl):
    search, template = common.as_arrays(op, search=search, template=template)
    common.check_static(op, impl=impl)
    common.check_dtypes(op, search=search, template=template)
    xcorr_signature(search.shape, template.shape, op)
    common.resolve_impl(op, impl, None)
    return _xcorr(search, template, depthwise=op == "xcorr2d_depthwise")
