"""The NumPy reference against the anchors (torch / torchvision).

- The SiamFC correlation shapes (search 1x256x255x255, template 1x256x127x127):
  the reference's FFT correlation, whose goal is "seconds, not hours" (< 30 s here),
  against torch's grouped convolution on the same data in float32 (torch's float64 CPU
  convolution asks for ~550 GB on these shapes).
- Mid-size conv2d and deform_conv2d: the reference against torch / torchvision, float64.
"""

import numpy as np

import reference
from crossconv.bench import Bar, Section, ratio, seconds, side_by_side

TITLE = "Reference (NumPy, float64) against the anchors"


def sections(repeats):
    from crossconv import anchors

    torch = anchors.torch
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    section = Section("reference vs anchor", ["case", "reference", "anchor", "reference / anchor"])

    def row(name, ref_fn, anchor_fn, rounds):
        t = side_by_side({"ref": ref_fn, "anchor": anchor_fn}, repeats=rounds)
        section.rows.append([name, seconds(t["ref"]), seconds(t["anchor"]),
                             ratio(t["ref"], t["anchor"])])
        group = "reference: " + name.split(" (")[0].split(",")[0]
        section.bars += [Bar(group, "anchor", t["anchor"], False),
                         Bar(group, "reference", t["ref"], True)]

    search = rng.standard_normal((1, 256, 255, 255))
    template = rng.standard_normal((1, 256, 127, 127))
    search32, template32 = (torch.from_numpy(a.astype(np.float32)) for a in (search, template))
    # The tracking shapes take seconds per call: a single timed round each.
    row("xcorr2d SiamFC 1x256x255x255 * 127x127 (ref f64, torch f32)",
        lambda: reference.xcorr2d(search, template),
        lambda: anchors.xcorr2d(search32, template32), 1)
    row("xcorr2d_depthwise, same shapes (ref f64, torch f32)",
        lambda: reference.xcorr2d_depthwise(search, template),
        lambda: anchors.xcorr2d_depthwise(search32, template32), 1)

    x, w = rng.standard_normal((4, 32, 48, 48)), rng.standard_normal((64, 32, 3, 3))
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    row("conv2d 4x32x48x48, 64x32x3x3, pad 1 (f64)",
        lambda: reference.conv2d(x, w, padding=1), lambda: anchors.conv2d(xt, wt, padding=1),
        repeats)

    xd, wd = rng.standard_normal((2, 16, 32, 32)), rng.standard_normal((32, 16, 3, 3))
    off = rng.uniform(-2, 2, (2, 18, 32, 32))
    xdt, offt, wdt = (torch.from_numpy(a) for a in (xd, off, wd))
    row("deform_conv2d 2x16x32x32, 32x16x3x3, pad 1 (f64)",
        lambda: reference.deform_conv2d(xd, off, wd, padding=1),
        lambda: anchors.deform_conv2d(xdt, offt, wdt, padding=1), repeats)
    section.notes.append("torch with 2 threads; medians of round-robin runs")
    return [section]
