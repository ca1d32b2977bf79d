"""The depth-aware reference against the original CUDA kernels, re-expressed in NumPy.

The anchor is the released code of "Depth-aware CNN for RGB-D Segmentation" (Wang &
Neumann, ECCV 2018; laughtervv/DepthAwareCNN, ``models/ops/depthconv`` and
``models/ops/depthavgpooling``). It cannot be built today (it needs ``torch.utils.ffi``,
gone since PyTorch 1.0), so each kernel is restated below: one Python loop body per CUDA
thread, float32 where the kernel computes in float and float64 where it accumulates in
double. The anchor has no ``alpha``: its model multiplies the depth map by a scale
before the call, which is ``alpha`` for a finite depth.

What is shown:

- Both forwards equal the reference on float32 data within their domain (finite depth,
  square dilation, input at least as large as the kernel, stride given explicitly).
- The convolution's input and weight gradients equal the reference VJP's (it returns no
  depth gradient).
- The pooling backward is the plain average's: its depth weights sit behind a test of a
  per-centre buffer against zero that never holds for a finite depth. Its input gradient
  is compared with the true one on two depth maps; the numbers are quoted in
  docs/depthaware.md.
"""

import math

import numpy as np
import pytest

import reference
from crossconv.compare import assert_close
from crossconv.registry import FP32

F32 = np.float32


# ----------------------------------------------------------------------------- depthconv


def _conv_out(size, k, s, p, d):
    return (size + 2 * p - (d * (k - 1) + 1)) // s + 1


def _anchor_columns(x, depth, kh, kw, sh, sw, ph, pw, dh, dw):
    """``depthconv_im2col`` for one sample: ``[C*kh*kw, oh*ow]`` float32 columns, each tap
    multiplied by its depth similarity, and the similarities themselves (the backward
    recomputes them the same way)."""
    c_in, h, w = x.shape
    oh, ow = _conv_out(h, kh, sh, ph, dh), _conv_out(w, kw, sw, pw, dw)
    columns = np.zeros((c_in * kh * kw, oh * ow), F32)
    weights = np.ones((kh * kw, oh * ow), F32)
    for c in range(c_in):
        for yo in range(oh):
            for xo in range(ow):
                h_in, w_in = yo * sh - ph, xo * sw - pw
                # C evaluates `dilation * (kernel - 1) / 2` left to right: (d*(k-1)) / 2
                ch, cw = h_in + (dh * (kh - 1)) // 2, w_in + (dw * (kw - 1)) // 2
                valid = 0 <= ch < h and 0 <= cw < w
                d_centre = depth[ch, cw] if valid else F32(0)
                for i in range(kh):
                    for j in range(kw):
                        hh, ww = h_in + i * dh, w_in + j * dw
                        value = F32(0)
                        if 0 <= hh < h and 0 <= ww < w:
                            d_tap = depth[hh, ww] if valid else F32(0)
                            f = np.exp(-np.abs(d_centre - d_tap))  # float32 throughout
                            weights[i * kw + j, yo * ow + xo] = f
                            value = x[c, hh, ww] * f
                        columns[(c * kh + i) * kw + j, yo * ow + xo] = value
    return columns, weights, (oh, ow)


def anchor_depthconv_forward(x, depth, weight, bias, stride, padding, dilation):
    """``depthconv_forward_cuda``: per sample, output = bias, then += weight @ columns
    (cuBLAS sgemm, float32)."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    o, _, kh, kw = weight.shape
    outs = []
    for n in range(x.shape[0]):
        columns, _, (oh, ow) = _anchor_columns(x[n], depth[n, 0], kh, kw, sh, sw, ph, pw, dh, dw)
        out = np.repeat(bias[:, None], oh * ow, axis=1).astype(F32)
        out += weight.reshape(o, -1) @ columns
        outs.append(out.reshape(o, oh, ow))
    return np.stack(outs)


def anchor_depthconv_backward(x, depth, weight, grad_output, stride, padding, dilation):
    """``depthconv_backward_input_cuda`` (columns = weight^T @ g, then ``col2im`` scatters
    each column entry times its similarity) and ``depthconv_backward_parameters_cuda``
    (grad weight += g @ columns^T, grad bias += row sums of g). No depth gradient."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n_batch, c_in, h, w = x.shape
    o, _, kh, kw = weight.shape
    grad_x = np.zeros_like(x)
    grad_w = np.zeros((o, c_in * kh * kw), F32)
    grad_b = np.zeros(o, F32)
    for n in range(n_batch):
        columns, weights, (oh, ow) = _anchor_columns(x[n], depth[n, 0], kh, kw, sh, sw, ph, pw,
                                                     dh, dw)
        g = grad_output[n].reshape(o, -1)
        grad_columns = weight.reshape(o, -1).T @ g
        for c in range(c_in):
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    for yo in range(oh):
                        for xo in range(ow):
                            hh, ww = yo * sh - ph + i * dh, xo * sw - pw + j * dw
                            if 0 <= hh < h and 0 <= ww < w:
                                grad_x[n, c, hh, ww] += (grad_columns[row, yo * ow + xo]
                                                         * weights[i * kw + j, yo * ow + xo])
        grad_w += g @ columns.T
        grad_b += g.sum(axis=1)
    return {"input": grad_x, "weight": grad_w.reshape(weight.shape), "bias": grad_b}


CONV_CONFIGS = [
    # (kernel, stride, padding, dilation, alpha, size)
    ((3, 3), (1, 1), (1, 1), (1, 1), 1.0, (7, 8)),
    ((3, 3), (2, 1), (0, 1), (1, 1), 0.5, (7, 6)),
    ((2, 2), (1, 1), (0, 0), (1, 1), 1.0, (5, 6)),  # even kernel: centre at the origin
    ((4, 3), (1, 2), (1, 1), (1, 1), 2.0, (6, 7)),  # upper-left of the middle
    ((3, 3), (1, 1), (2, 2), (2, 2), 1.0, (7, 7)),  # dilation 2, as the model's conv5_1
    ((2, 2), (1, 1), (1, 1), (2, 2), 1.0, (6, 5)),  # dilated even kernel: centre no tap
    ((3, 3), (1, 1), (2, 2), (1, 1), 1.0, (5, 6)),  # padding 2: border centres outside
]


def _conv_case(seed, kernel, size, channels=3, out_channels=2, batch=2):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, channels, *size)).astype(F32)
    depth = rng.uniform(0.5, 4.0, (batch, 1, *size)).astype(F32)  # metres, as NYUv2
    weight = rng.standard_normal((out_channels, channels, *kernel)).astype(F32)
    bias = rng.standard_normal(out_channels).astype(F32)
    return x, depth, weight, bias


@pytest.mark.parametrize("kernel, stride, padding, dilation, alpha, size", CONV_CONFIGS)
def test_anchor_depthconv_forward_is_the_reference(kernel, stride, padding, dilation, alpha, size):
    x, depth, weight, bias = _conv_case(1, kernel, size)
    scaled = (depth * F32(alpha)).astype(F32)  # the model scales depth; exact for these alphas
    anchor = anchor_depthconv_forward(x, scaled, weight, bias, stride, padding, dilation)
    ours = reference.depthaware_conv2d(x, depth, weight, bias, stride=stride, padding=padding,
                                       dilation=dilation, alpha=alpha)
    assert_close(anchor, ours, FP32, f"anchor depthconv forward, kernel {kernel}")
    # and depth matters: the plain convolution is far off
    plain = reference.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)
    assert np.abs(plain - ours).max() > 0.1


@pytest.mark.parametrize("kernel, stride, padding, dilation, alpha, size", CONV_CONFIGS[:6:2])
def test_anchor_depthconv_backward_is_the_reference_without_depth(kernel, stride, padding,
                                                                  dilation, alpha, size):
    x, depth, weight, bias = _conv_case(2, kernel, size)
    out = reference.depthaware_conv2d(x, depth, weight, bias, stride=stride, padding=padding,
                                      dilation=dilation)
    g = np.random.default_rng(3).standard_normal(out.shape).astype(F32)
    anchor = anchor_depthconv_backward(x, depth, weight, g, stride, padding, dilation)
    ours = reference.depthaware_conv2d_vjp(g, x, depth, weight, bias, stride=stride,
                                           padding=padding, dilation=dilation)
    for name, value in anchor.items():
        assert_close(value, ours[name], FP32, f"anchor depthconv d/d{name}")
    assert np.abs(ours["depth"]).max() > 0.1  # what the anchor leaves out


# ----------------------------------------------------------------------------- depthavgpooling


def _pool_out(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def anchor_depthavgpool_forward(x, depth, kernel, stride, padding):
    """``AvePoolForward_kernel``, one loop body per (n, c, y, x) thread. Returns the
    float32 output and the per-sample ``depth_weight_count`` buffer ``[N, H*W]`` as the
    threads leave it: each writes its divisor at its window's centre, so windows that
    share a centre (and every channel) overwrite one another; the last one in this loop
    order stands here, an unspecified one on a GPU."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n_batch, c_in, h, w = x.shape
    oh, ow = _pool_out(h, kh, sh, ph), _pool_out(w, kw, sw, pw)
    out = np.zeros((n_batch, c_in, oh, ow), F32)
    buffer = np.zeros((n_batch, h * w), F32)  # zeroed by the Python wrapper
    for n in range(n_batch):
        d = depth[n, 0].ravel()
        for c in range(c_in):
            for yo in range(oh):
                for xo in range(ow):
                    hs, ws = yo * sh - ph, xo * sw - pw
                    he, we = min(hs + kh, h + ph), min(ws + kw, w + pw)
                    pool_size = F32((he - hs) * (we - ws))
                    hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
                    centre = ((hs + he) // 2) * w + (ws + we) // 2
                    d_centre = float(d[centre])  # Acctype: double
                    total = 0.0
                    for hh in range(hs, he):
                        for ww in range(ws, we):
                            f = math.exp(-abs(d_centre - float(d[hh * w + ww])))
                            pool_size = F32(float(pool_size) - (1.0 - f))  # float -= double
                            total += float(x[n, c, hh, ww]) * f
                    buffer[n, centre] = pool_size
                    out[n, c, yo, xo] = F32(total / float(pool_size))
    return out, buffer


def anchor_depthavgpool_backward(grad_output, depth, buffer, kernel, stride, padding,
                                 input_shape, depth_weights_when="buffer == 0"):
    """``AvePoolBackward_kernel``, one loop body per input cell (n, c, h, w).

    Each cell walks the windows that cover it (Caffe's plain average backward, in padded
    coordinates ``h + pad``) and adds ``g * weight_val / weight_count`` with
    ``weight_val = 1`` and ``weight_count`` the padded window size, unless the cell is
    "valid" and ``buffer[centre] == 0``: only then are the depth similarity and the
    buffered divisor used. For a finite depth the buffer at a centre is at least 1 (the
    centre's own F), so the kernel as written is the plain average's backward.
    ``depth_weights_when="buffer != 0"`` runs the evidently intended comparison; it still
    reads the cell's depth at its padded coordinates (``(h + ph) * W + (w + pw)``, past
    the map near the bottom edge: NaN here) and a buffer overwritten by other windows.
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n_batch, c_in, h, w = input_shape
    oh, ow = grad_output.shape[2:]
    grad_x = np.zeros(input_shape, F32)
    for n in range(n_batch):
        d = np.concatenate([depth[n, 0].ravel(), np.full(2 * w + 2, np.nan, F32)])
        for c in range(c_in):
            for hh in range(h):
                for ww in range(w):
                    hp, wp = hh + ph, ww + pw
                    y0 = 0 if hp < kh else (hp - kh) // sh + 1
                    y1 = min(hp // sh + 1, oh)
                    x0 = 0 if wp < kw else (wp - kw) // sw + 1
                    x1 = min(wp // sw + 1, ow)
                    valid = not (hp < 0 or hp > h or wp < 0 or wp > w)
                    d_cell = float(d[hp * w + wp]) if valid else 0.0
                    total = 0.0
                    for yo in range(y0, y1):
                        for xo in range(x0, x1):
                            hs, ws = yo * sh - ph, xo * sw - pw
                            he, we = min(hs + kh, h + ph), min(ws + kw, w + pw)
                            count = float((he - hs) * (we - ws))
                            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
                            centre = ((hs + he) // 2) * w + (ws + we) // 2
                            stored = float(buffer[n, centre])
                            use = stored == 0 if depth_weights_when == "buffer == 0" else stored != 0
                            weight_val = 1.0
                            if valid and use:
                                weight_val = math.exp(-abs(float(d[centre]) - d_cell))
                                count = stored
                            total += float(grad_output[n, c, yo, xo]) * weight_val / count
                    grad_x[n, c, hh, ww] = F32(total)
    return grad_x


POOL_CONFIGS = [
    # (kernel, stride, padding, size)
    ((3, 3), (1, 1), (1, 1), (7, 8)),  # the model's pool5a_d
    ((2, 2), (2, 2), (0, 0), (6, 8)),
    ((3, 3), (2, 2), (1, 1), (7, 6)),
    ((3, 2), (1, 2), (1, 0), (5, 7)),
]


def _pool_case(seed, size, channels=3, batch=2):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, channels, *size)).astype(F32)
    depth = rng.uniform(0.5, 4.0, (batch, 1, *size)).astype(F32)
    return x, depth


@pytest.mark.parametrize("kernel, stride, padding, size", POOL_CONFIGS)
def test_anchor_depthavgpool_forward_is_the_reference(kernel, stride, padding, size):
    x, depth = _pool_case(4, size)
    anchor, _ = anchor_depthavgpool_forward(x, depth, kernel, stride, padding)
    ours = reference.depthaware_avg_pool2d(x, depth, kernel, stride=stride, padding=padding)
    assert_close(anchor, ours, FP32, f"anchor depthavgpooling forward, kernel {kernel}")
    plain = reference.avg_pool2d(x, kernel, stride=stride, padding=padding)
    assert np.abs(plain - ours).max() > 0.1


def _scene(h=16, w=16):
    """A small room (metres): a wall at 4 m, a floor coming from 3.7 m below the horizon to
    1.5 m at the bottom row, and a box whose front face stands at 2 m."""
    depth = np.full((h, w), 4.0)
    rows = np.arange(h // 2, h)
    depth[h // 2:, :] = (4.0 - 2.5 * (rows - h // 2 + 1) / (h - h // 2))[:, None]
    depth[5:13, 4:10] = 2.0
    return depth[None, None].astype(F32)


def _pool_gradient_error(depth, seed=5, channels=4):
    """Input gradients of the model's 3x3 / stride 1 / padding 1 depth-aware pooling:
    the anchor as written, the anchor with ``!= 0``, and the true one."""
    kernel, stride, padding = (3, 3), (1, 1), (1, 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, channels, *depth.shape[2:])).astype(F32)
    _, buffer = anchor_depthavgpool_forward(x, depth, kernel, stride, padding)
    out = reference.depthaware_avg_pool2d(x, depth, kernel, stride=stride, padding=padding)
    g = rng.standard_normal(out.shape).astype(F32)
    true = reference.depthaware_avg_pool2d_vjp(g, x, depth, kernel, stride=stride,
                                               padding=padding)
    as_written = anchor_depthavgpool_backward(g, depth, buffer, kernel, stride, padding, x.shape)
    as_meant = anchor_depthavgpool_backward(g, depth, buffer, kernel, stride, padding, x.shape,
                                            depth_weights_when="buffer != 0")
    plain = reference.avg_pool2d_vjp(g, x, kernel, stride=stride, padding=padding)["input"]
    return true, as_written, as_meant, plain


def _errors(actual, true):
    """Over the cells where ``actual`` is finite: (relative L2 error, max |error| / max
    |true|, fraction of cells off by more than 1% of max |true|)."""
    finite = np.isfinite(actual)
    error, expected = np.abs(actual - true["input"])[finite], true["input"][finite]
    scale = np.abs(expected).max()
    return (np.linalg.norm(error) / np.linalg.norm(expected), error.max() / scale,
            np.mean(error > 0.01 * scale))


#: Measured by the test below and quoted in docs/depthaware.md, per depth map: the
#: anchor's input gradient against the true one (relative L2 error, max error / max
#: |true|, fraction of cells off by more than 1% of the largest), as written and with
#: ``!= 0`` (on the cells that read inside the depth map).
MEASURED = {
    "scene": {"as written": (0.2115, 0.3844, 0.5674), "with != 0": (0.3155, 0.7248, 0.4289)},
    "uniform": {"as written": (0.5794, 0.6064, 0.9355), "with != 0": (0.9083, 0.9956, 0.9226)},
}


@pytest.mark.parametrize("name", MEASURED)
def test_anchor_depthavgpool_backward_is_the_plain_average_and_wrong(name):
    if name == "scene":
        depth = _scene()
    else:
        depth = np.random.default_rng(6).uniform(0.5, 4.0, (1, 1, 16, 16)).astype(F32)
    true, as_written, as_meant, plain = _pool_gradient_error(depth)
    # As written, the kernel computes the plain average's gradient exactly.
    assert_close(as_written, plain, FP32, "anchor depthavgpooling backward vs avg_pool2d's")
    measured = {"as written": _errors(as_written, true), "with != 0": _errors(as_meant, true)}
    print(f"\n{name}: " + "; ".join(f"{k}: relative L2 {v[0]:.4f}, max {v[1]:.4f}, off by >1%: "
                                    f"{v[2]:.4f}" for k, v in measured.items())
          + f"; reads past the map: {np.isnan(as_meant).mean():.4f}"
          + f"; true |d depth| max {np.abs(true['depth']).max():.3f}")
    for variant, numbers in MEASURED[name].items():
        np.testing.assert_allclose(measured[variant], numbers, rtol=1e-3, err_msg=variant)
    # The anchor returns no depth gradient at all; the true one is not small.
    assert np.abs(true["depth"]).max() > 1.0


def test_anchor_pooling_buffer_is_overwritten_by_windows_sharing_a_centre():
    """In the model's 3x3 / stride 1 / padding 1 pooling, the first two windows of a row
    are both centred on column 1 with different divisors; the buffer keeps one."""
    depth = np.array([[[[1.0, 2.0, 4.0, 1.0]]]], F32)
    x = np.ones((1, 1, 1, 4), F32)
    _, buffer = anchor_depthavgpool_forward(x, depth, (1, 3), (1, 1), (0, 1))
    # window 0 covers columns -1..1 (clipped 0..1), window 1 columns 0..2: centre 1 both
    divisor_0 = 3 - (1 - math.exp(-1.0))
    divisor_1 = 3 - (1 - math.exp(-1.0)) - (1 - math.exp(-2.0))
    assert buffer[0, 1] == pytest.approx(divisor_1, rel=1e-6)  # the later window's
    assert abs(divisor_0 - divisor_1) > 0.8
