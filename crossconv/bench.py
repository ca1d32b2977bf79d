"""``make bench``: timings measured side by side in one run (the machines are shared and
noisy, so compare the ratios, not the absolute seconds).

- The seed's SiamFC correlation shapes (search 1x256x255x255, template 1x256x127x127):
  the reference's FFT correlation, whose goal is "seconds, not hours" (< 30 s here),
  against torch's grouped convolution (the anchor) on the same data in float32 (torch's
  float64 CPU convolution asks for ~550 GB on these shapes).
- Mid-size conv2d and deform_conv2d: the reference against torch / torchvision, float64.
"""

from __future__ import annotations

import time

import numpy as np
from rich.table import Table

import reference


def _best_of(repeats, fn):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _anchor():
    try:
        from . import anchors
    except ImportError:
        return None
    return anchors


def run_benchmarks(console, repeats: int = 3):
    rng = np.random.default_rng(0)
    anchors = _anchor()
    table = Table(title=f"benchmarks (best of {repeats})")
    for column in ("case", "reference s", "anchor s", "reference / anchor"):
        table.add_column(column, justify="right" if column != "case" else "left")

    def row(name, ref_fn, anchor_fn):
        ref = _best_of(repeats, ref_fn)
        anc = _best_of(repeats, anchor_fn) if anchors is not None and anchor_fn else None
        ratio = f"{ref / anc:.2f}" if anc else "n/a"
        table.add_row(name, f"{ref:.3f}", "n/a" if anc is None else f"{anc:.3f}", ratio)

    search = rng.standard_normal((1, 256, 255, 255))
    template = rng.standard_normal((1, 256, 127, 127))
    torch_args = None
    if anchors is not None:
        torch_args = [anchors.torch.from_numpy(a.astype(np.float32)) for a in (search, template)]
    row("xcorr2d SiamFC 1x256x255x255 * 127x127 (ref f64, torch f32)",
        lambda: reference.xcorr2d(search, template),
        torch_args and (lambda: anchors.xcorr2d(*torch_args)))
    row("xcorr2d_depthwise, same shapes (ref f64, torch f32)",
        lambda: reference.xcorr2d_depthwise(search, template),
        torch_args and (lambda: anchors.xcorr2d_depthwise(*torch_args)))

    x = rng.standard_normal((4, 32, 48, 48))
    w = rng.standard_normal((64, 32, 3, 3))
    conv_t = anchors and [anchors.torch.from_numpy(a) for a in (x, w)]
    row("conv2d 4x32x48x48, 64x32x3x3, pad 1 (f64)",
        lambda: reference.conv2d(x, w, padding=1),
        conv_t and (lambda: anchors.conv2d(*conv_t, padding=1)))

    xd = rng.standard_normal((2, 16, 32, 32))
    wd = rng.standard_normal((32, 16, 3, 3))
    off = rng.uniform(-2, 2, (2, 18, 32, 32))
    deform_t = anchors and [anchors.torch.from_numpy(a) for a in (xd, off, wd)]
    row("deform_conv2d 2x16x32x32, 32x16x3x3, pad 1 (f64)",
        lambda: reference.deform_conv2d(xd, off, wd, padding=1),
        deform_t and (lambda: anchors.deform_conv2d(*deform_t, padding=1)))
    console.print(table)
