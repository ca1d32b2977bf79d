"""The PyTorch backend's custom ops against torch / torchvision (CPU, float32, 2 threads).

- deform_conv2d forward and forward+backward at N=8, C=O=64, 56x56, 3x3, padding 1, one
  offset group, with mask, against ``torchvision.ops.deform_conv2d`` (targets: >= 2x
  faster forward, >= 4x faster forward+backward) and against ``F.conv2d`` at the same
  shape (targets: forward within 2x, forward+backward within 4x, aim 2.5x).
- The same under load: processes spinning on every core (:class:`crossconv.bench.Competitor`,
  started by the benchmark, switched on every other round and stopped at the end);
  target: torch_impl's loaded median within 3x of its quiet one and below torchvision's.
- Where torch_impl's deform_conv2d spends its time: its phases on one thread, in process
  CPU time, beside F.conv2d's forward and backward.
- conv2_5d forward+backward, same shape, 3 bins: against 3 x ``F.conv2d``
  forward+backward (target <= 1.5x), and its peak memory against an unfold-style
  implementation (unfold, multiply by the bins x kh x kw masks, einsum; target <= 1/3).
- tanprod_conv2d forward+backward at N=4, C=O=16, 32x32, 3x3, padding 1 against
  ``torch.tan(out=)`` over as many elements as the op has factors (N*O*oh*ow*C*kh*kw,
  about 9.4 million; target <= 3x), with factors of order 1 (:data:`TANPROD_RANGE`), and
  its compiled and eager paths on one thread in units of one such tan pass.
- depthaware_conv2d forward+backward at N=8, C=O=64, 56x56, 3x3, padding 1 against
  ``F.conv2d`` forward+backward (target <= 1.5x), quiet and under load, and on one thread
  in CPU time.

A last table repeats the time ratios on one thread in process CPU time (round-robin
medians too): on a shared machine, other processes' load stalls every multi-threaded op
at its barrier, and wall time with 2 threads then says more about the neighbours than
about the code; one thread's CPU time does not.

Peak memory is measured by the operating system: each candidate runs in a fresh Python
process that builds its inputs, runs once (lazy initialisation), returns freed heap
memory to the system (``malloc_trim``), resets the process's peak resident size
(``/proc/self/clear_refs``), then runs forward+backward once; the figure is the peak
resident size (``VmHWM``) minus the resident size just before that run (``VmRSS``), so
it counts everything the run touched (tensors, autograd's saved tensors, library
buffers), not only tensors torch accounts for. Linux only; elsewhere that table is skipped.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from crossconv.bench import Bar, Competitor, Section, quiet_and_loaded, ratio, seconds, side_by_side

TITLE = "PyTorch backend (torch_impl) against torch / torchvision"
THREADS = 2
ROOT = Path(__file__).resolve().parents[1]


def _torch():
    import torch

    return torch


def _fwd_bwd(fn, *tensors):
    """A callable running ``fn`` forward, then backward with a ones cotangent."""

    def run():
        for t in tensors:
            t.grad = None
        out = fn()
        out.backward(_torch().ones_like(out))

    return run


def _no_grad(fn):
    def run():
        with _torch().no_grad():
            fn()

    return run


# ----------------------------------------------------------------------------- deform


def deform_inputs(seed=0):
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    n, c, o, size = 8, 64, 64, 56
    x = torch.randn(n, c, size, size, generator=g).requires_grad_()
    offset = (torch.rand(n, 18, size, size, generator=g) * 2 - 1).requires_grad_()
    mask = torch.rand(n, 9, size, size, generator=g).requires_grad_()
    weight = (torch.randn(o, c, 3, 3, generator=g) / 24).requires_grad_()
    return x, offset, weight, mask


def _deform_candidates():
    import torch.nn.functional as F
    import torchvision

    import torch_impl

    x, offset, weight, mask = deform_inputs()
    tensors = (x, offset, weight, mask)

    def ours():
        return torch_impl.deform_conv2d(x, offset, weight, padding=1, mask=mask)

    def theirs():
        return torchvision.ops.deform_conv2d(x, offset, weight, padding=1, mask=mask)

    def conv():
        return F.conv2d(x, weight, padding=1)

    forward = {"ours": _no_grad(ours), "tv": _no_grad(theirs), "conv": _no_grad(conv)}
    both = {"ours": _fwd_bwd(ours, *tensors), "tv": _fwd_bwd(theirs, *tensors),
            "conv": _fwd_bwd(conv, *tensors)}
    return forward, both


NAMES = {"ours": "torch_impl", "tv": "torchvision", "conv": "F.conv2d"}


def deform_section(repeats):
    forward, both = _deform_candidates()
    fwd = side_by_side(forward, repeats)
    both = side_by_side(both, repeats)
    section = Section(
        "deform_conv2d, N=8, C=O=64, 56x56, 3x3, padding 1, one offset group, with mask",
        ["pass", "torch_impl", "torchvision", "F.conv2d", "torchvision / torch_impl (target)",
         "torch_impl / F.conv2d (target)"],
    )
    section.rows.append(["forward", seconds(fwd["ours"]), seconds(fwd["tv"]), seconds(fwd["conv"]),
                         f"{ratio(fwd['tv'], fwd['ours'])} (>= 2x)",
                         f"{ratio(fwd['ours'], fwd['conv'])} (<= 2x)"])
    section.rows.append(["forward+backward", seconds(both["ours"]), seconds(both["tv"]),
                         seconds(both["conv"]), f"{ratio(both['tv'], both['ours'])} (>= 4x)",
                         f"{ratio(both['ours'], both['conv'])} (<= 4x, aim 2.5x)"])
    section.notes.append("offsets uniform in [-1, 1), mask uniform in [0, 1); float32, "
                         f"{THREADS} threads; medians of {repeats} round-robin rounds")
    for group, times in (("deform forward", fwd), ("deform forward+backward", both)):
        section.bars += [Bar(group, NAMES[key], times[key], key == "ours")
                         for key in ("conv", "tv", "ours")]
    return section


#: Extra rounds of the under-load table: a loaded round's time depends on where the
#: scheduler puts the spinning processes, and medians of 5 moved by half from run to run.
LOAD_EXTRA_ROUNDS = 4


def deform_load_section(repeats):
    repeats += LOAD_EXTRA_ROUNDS
    forward, both = _deform_candidates()
    candidates = {"torch_impl forward": forward["ours"], "torchvision forward": forward["tv"],
                  "torch_impl forward+backward": both["ours"],
                  "torchvision forward+backward": both["tv"],
                  "F.conv2d forward+backward": both["conv"]}
    # Bounded: the spinners stop by themselves after this long, whatever happens here.
    with Competitor(seconds=1200) as competitor:
        times = quiet_and_loaded(candidates, competitor, repeats)
    section = Section(
        "deform_conv2d under load (same shape; processes spinning on every core)",
        ["candidate", "quiet", "under load", "load / quiet (target for torch_impl <= 3x)",
         "torchvision / torch_impl under load"],
    )
    for name in candidates:
        quiet, loaded = times[name, False], times[name, True]
        versus = ""
        if name.startswith("torch_impl"):
            versus = ratio(times[name.replace("torch_impl", "torchvision"), True], loaded)
        section.rows.append([name, seconds(quiet), seconds(loaded), ratio(loaded, quiet), versus])
    section.notes.append(f"the benchmark starts {Competitor().processes} spinning processes (one "
                         "per core) and switches them on every other round, so quiet and loaded "
                         f"rounds alternate and share whatever else runs on the machine; medians "
                         f"of {repeats} rounds each; {THREADS} torch threads")
    for label in ("torch_impl", "torchvision"):
        for load, key in (("quiet", False), ("loaded", True)):
            section.bars.append(Bar("deform forward+backward, quiet / under load",
                                    f"{label} {load}", times[f"{label} forward+backward", key],
                                    label == "torch_impl"))
    return section


def deform_profile(repeats):
    """torch_impl's deform_conv2d forward+backward split into its phases: median process
    CPU seconds of each on one thread, and F.conv2d's forward and backward beside them.
    Calls the native module's internals the way its forward and backward do."""
    import torch.nn.functional as F

    from reference.deform import deform_conv2d_signature
    from torch_impl.native import deform as native

    torch = _torch()
    x, offset, weight, mask = (t.detach() for t in deform_inputs())
    grad_out = torch.randn(8, 64, 56, 56, generator=torch.Generator().manual_seed(1))
    sig = deform_conv2d_signature(x.shape, offset.shape, weight.shape, None, 1, 1, 1, mask.shape)
    n, c, h, w = x.shape
    phases = {}

    def lap(name, start):
        now = time.process_time()
        phases.setdefault(name, [0.0])[-1] += now - start
        return now

    def run():
        for times in phases.values():
            times.append(0.0)
        plan = native._Plan(x, offset, weight, sig.geometry, 1, 1)
        out = torch.empty(n, 64, plan.positions)
        grad_offset, grad_mask = torch.empty_like(offset), torch.empty_like(mask)
        grad_input = torch.empty_like(x)
        for n0, n1 in plan.chunks:  # forward, then backward, of each chunk
            for backward in (False, True):
                t = time.process_time()
                rows = plan.rows(x, n0, n1)
                t = lap("layout: input to padded rows, gradient back", t)
                points = plan.points(offset, n0, n1)
                modulation = plan.modulation(mask, n0, n1)
                t = lap("sample coordinates and weights", t)
                values, weights = native._sampled(rows, points, modulation, plan.size)
                cols = plan.columns(values, n1 - n0)
                t = lap("gather: bilinear samples (embedding_bag)", t)
                if not backward:
                    plan.kernel.apply(cols, out[n0:n1])
                    lap("matmul: forward", t)
                    continue
                g = grad_out[n0:n1].reshape(n1 - n0, 64, plan.positions)
                grad_cols, _ = plan.kernel.backward(g, cols)
                t = lap("matmul: column and weight gradients", t)
                point_grads = plan.point_rows(grad_cols)
                q = point_grads.shape[0]
                products = torch.ops.aten._embedding_bag_per_sample_weights_backward(
                    point_grads, rows, points.corners.view(-1), torch.arange(0, 4 * q, 4),
                    torch.arange(q).repeat_interleave(4), 0, -1)
                products = torch.empty((4, q), dtype=points.fractions.dtype).copy_(products.view(q, 4).t())
                native._offset_and_mask_grads(points, products, modulation.reshape(-1), False, plan,
                                              grad_offset[n0:n1], grad_mask[n0:n1])
                t = lap("offset and mask gradients (corner products)", t)
                grad_rows = native._scatter_sorted(point_grads, points, weights, rows.shape[0],
                                                   plan.width)
                t = lap("input gradient: scatter as a sorted gather", t)
                grad_rows = plan.interior(grad_rows.view(n1 - n0, 1, -1, plan.width, c))
                grad_input[n0:n1] = grad_rows.permute(0, 1, 4, 2, 3).reshape(n1 - n0, c, h, w)
                lap("layout: input to padded rows, gradient back", t)

    xc, wc = x.clone().requires_grad_(), weight.clone().requires_grad_()

    def conv():
        xc.grad = wc.grad = None
        start = time.process_time()
        out = F.conv2d(xc, wc, padding=1)
        middle = time.process_time()
        out.backward(grad_out)
        return middle - start, time.process_time() - middle

    torch.set_num_threads(1)
    try:
        conv_times = []
        for round_ in range(repeats + 1):
            run()
            conv_times.append(conv())
            if round_ == 0:  # warm-up
                phases = {name: [] for name in phases}
                conv_times = []
    finally:
        torch.set_num_threads(THREADS)
    medians = {name: statistics.median(times) for name, times in phases.items()}
    conv_forward = statistics.median(t[0] for t in conv_times)
    conv_backward = statistics.median(t[1] for t in conv_times)
    return medians, conv_forward, conv_backward


def deform_profile_section(repeats):
    medians, conv_forward, conv_backward = deform_profile(repeats)
    total, conv = sum(medians.values()), conv_forward + conv_backward
    section = Section(
        "Where torch_impl's deform_conv2d forward+backward spends its time (same shape, one "
        "thread, CPU time)",
        ["phase", "time", "share", "in units of F.conv2d forward+backward"],
    )
    for name, t in medians.items():
        section.rows.append([name, seconds(t), f"{t / total:.0%}", f"{t / conv:.2f}"])
    section.rows.append(["total", seconds(total), "100%", f"{total / conv:.2f}"])
    section.rows.append(["F.conv2d forward / backward (oneDNN)",
                         f"{seconds(conv_forward)} / {seconds(conv_backward)}", "",
                         f"{conv_forward / conv:.2f} / {conv_backward / conv:.2f}"])
    section.notes += [
        "the native module's own steps run one by one on one thread (the op runs them per "
        "sample on worker threads); the gather and the coordinates run twice, in the forward "
        "and again in the backward (the contract functions share nothing), both counted",
        f"medians of {repeats} rounds after a warm-up round, each beside one F.conv2d "
        "forward+backward",
    ]
    return section


# ----------------------------------------------------------------------------- conv2_5d


def unfold_style_conv2_5d(input, depth, weight, padding, focal=1.0, pixel_size=1.0):
    """The 2.5D tutorial's way, with docs/conv2_5d.md's bins: unfold the input and the
    depth, build the ``[B, N, 1, K, P]`` masks, multiply, einsum with the weight. Autograd
    keeps the unfolded and masked tensors."""
    torch = _torch()
    import torch.nn.functional as F

    n, c, h, w = input.shape
    bins, o, _, kh, kw = weight.shape
    taps = kh * kw
    cols = F.unfold(input, (kh, kw), padding=padding)  # [N, C*K, P]
    depths = F.unfold(depth, (kh, kw), padding=padding)  # [N, K, P]
    centre = depths[:, taps // 2]
    s = centre * pixel_size / focal
    k = torch.arange(bins + 1, dtype=input.dtype) - bins / 2
    edges = centre[None] + k[:, None, None] * s[None]  # [B+1, N, P]
    masks = (edges[:-1, :, None] <= depths[None]) & (depths[None] < edges[1:, :, None])
    masked = cols.view(1, n, c, taps, -1) * masks[:, :, None].to(input.dtype)  # [B, N, C, K, P]
    out = torch.einsum("bnckp,bock->nop", masked, weight.reshape(bins, o, c, taps))
    oh = h + 2 * padding - kh + 1
    return out.reshape(n, o, oh, -1)


def conv2_5d_inputs(seed=0):
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    n, c, o, size, bins = 8, 64, 64, 56, 3
    x = torch.randn(n, c, size, size, generator=g).requires_grad_()
    depth = torch.rand(n, 1, size, size, generator=g)  # the 2.5D tutorial's depth: uniform [0, 1)
    weight = (torch.randn(bins, o, c, 3, 3, generator=g) / 24).requires_grad_()
    return x, depth, weight


def _conv2_5d_candidates():
    import torch.nn.functional as F

    import torch_impl

    x, depth, weight = conv2_5d_inputs()
    plain = [weight[b].detach().clone().requires_grad_() for b in range(weight.shape[0])]

    def ours():
        return torch_impl.conv2_5d(x, depth, weight, padding=1)

    def unfolded():
        return unfold_style_conv2_5d(x, depth, weight, padding=1)

    def three_convs():
        return sum(F.conv2d(x, w, padding=1) for w in plain)

    return {
        "torch_impl": _fwd_bwd(ours, x, weight),
        "3 x F.conv2d": _fwd_bwd(three_convs, x, *plain),
        "unfold-style": _fwd_bwd(unfolded, x, weight),
    }


def peak_memory(candidate: str) -> float:
    """MB of peak resident memory above the starting point for one forward+backward of a
    conv2_5d candidate, in this (fresh) process; see the module docstring."""
    import ctypes

    run = _conv2_5d_candidates()[candidate]
    run()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")

    def status(key):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
        raise KeyError(key)

    before = status("VmRSS")
    run()
    return (status("VmHWM") - before) / 1024


def _peak_in_subprocess(candidate: str) -> float:
    code = ("import json, benchmarks.bench_torch as b; "
            f"print(json.dumps(b.peak_memory({candidate!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def conv2_5d_section(repeats):
    times = side_by_side(_conv2_5d_candidates(), repeats)
    section = Section(
        "conv2_5d forward+backward, N=8, C=O=64, 56x56, 3x3, padding 1, 3 bins",
        ["implementation", "time", "vs 3 x F.conv2d (target <= 1.5x)", "peak memory",
         "memory vs unfold-style (target <= 1/3)"],
    )
    section.bars += [Bar("conv2_5d forward+backward", name, t, name == "torch_impl")
                     for name, t in sorted(times.items(), key=lambda item: item[0] != "3 x F.conv2d")]
    memory = {}
    if sys.platform.startswith("linux") and Path("/proc/self/clear_refs").exists():
        memory = {name: _peak_in_subprocess(name) for name in times}
    for name, t in times.items():
        mem = memory.get(name)
        section.rows.append([
            name, seconds(t), ratio(t, times["3 x F.conv2d"]),
            "" if mem is None else f"{mem:.0f} MB",
            "" if mem is None else f"{mem / memory['unfold-style']:.3f}",
        ])
    section.notes.append("depth uniform in [0, 1) with focal = pixel_size = 1 (the 2.5D "
                         "tutorial's setting): almost every tap falls in a bin, the most work for torch_impl")
    section.notes.append("peak memory: resident-set high-water mark of a fresh process over one "
                         "forward+backward, after a warm-up run and malloc_trim (see the module "
                         "docstring)")
    return section


# ----------------------------------------------------------------------------- tanprod


#: tanprod benchmark inputs: x and w uniform in [0.2, 0.6], so x + w lies in [0.4, 1.2] and
#: the 144 factors of an output (|tan| between 0.4 and 2.6) multiply to about 1e2 (1e0 to
#: 1e4). The earlier inputs, uniform in [-0.6, 0.6], made every float32 output underflow
#: to exactly 0 (the largest is 4e-54): a benchmark of subnormal arithmetic, kept as a row.
TANPROD_RANGE = (0.2, 0.6)
TANPROD_UNDERFLOW_RANGE = (-0.6, 0.6)


def tanprod_inputs(low=TANPROD_RANGE[0], high=TANPROD_RANGE[1], seed=0):
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    n, c, o, size = 4, 16, 16, 32
    x = (torch.rand(n, c, size, size, generator=g) * (high - low) + low).requires_grad_()
    weight = (torch.rand(o, c, 3, 3, generator=g) * (high - low) + low).requires_grad_()
    factors = n * o * size * size * c * 9
    values = torch.rand(factors, generator=g) * 2.4 - 1.2
    return x, weight, values


def _tanprod_candidates():
    torch = _torch()

    import torch_impl

    x, weight, values = tanprod_inputs()
    xu, wu, _ = tanprod_inputs(*TANPROD_UNDERFLOW_RANGE)
    out = torch.empty_like(values)
    return {
        "torch_impl": _fwd_bwd(lambda: torch_impl.tanprod_conv2d(x, weight, padding=1), x, weight),
        "torch_impl, outputs underflowing": _fwd_bwd(
            lambda: torch_impl.tanprod_conv2d(xu, wu, padding=1), xu, wu),
        "torch_impl forward": _no_grad(lambda: torch_impl.tanprod_conv2d(x, weight, padding=1)),
        "torch.tan": lambda: torch.tan(values),
        "torch.tan(out=)": lambda: torch.tan(values, out=out),
    }, values.numel()


def tanprod_section(repeats):
    candidates, factors = _tanprod_candidates()
    times = side_by_side(candidates, repeats)
    section = Section(
        f"tanprod_conv2d forward+backward, N=4, C=O=16, 32x32, 3x3, padding 1 ({factors:,} "
        "factors)",
        ["candidate", "time", "candidate / torch.tan(out=) (target for forward+backward <= 3x)"],
    )
    for name, t in times.items():
        section.rows.append([name, seconds(t), ratio(t, times["torch.tan(out=)"])])
    section.bars += [Bar("tanprod forward+backward", name, times[name], name == "torch_impl")
                     for name in ("torch.tan(out=)", "torch.tan", "torch_impl")]
    low, high = TANPROD_RANGE
    section.notes += [
        f"x and w uniform in [{low}, {high}]: the factors' product is of order 1e2; the "
        "underflowing row uses the earlier inputs (uniform in [-0.6, 0.6]), whose float32 "
        "outputs and gradients are all exactly 0",
        f"{THREADS} threads, wall time; torch.tan allocates its 38 MB result on every call, "
        "torch.tan(out=) writes into a preallocated tensor and shows the arithmetic alone",
    ]
    return section


def tanprod_profile(repeats):
    """The native tanprod's contract functions on one thread, in process CPU time, each as
    a fraction of one torch.tan(out=) pass over as many factors (timed beside them): the
    compiled loops and the eager torch path (the one a machine without a C compiler
    runs), forward and backward."""
    import os

    from reference.tanprod import tanprod_conv2d_signature as tanprod_signature
    from torch_impl.native import tanprod as native

    torch = _torch()
    x, weight, values = (t.detach() for t in tanprod_inputs())
    out = torch.empty_like(values)
    grad_out = torch.ones(4, 16, 32, 32)
    geometry = tanprod_signature(x.shape, weight.shape, None, 1, 1, 1).geometry
    paths = {"compiled loops": "", "eager torch": "1"}
    phases = {f"{path}: {step}": [] for path in paths for step in ("forward", "backward")}

    def timed(path, step, call):
        os.environ["CROSSCONV_NO_COMPILE"] = paths[path]
        start = time.process_time()
        call()
        phases[f"{path}: {step}"][-1] += time.process_time() - start

    def tan():
        start = time.process_time()
        torch.tan(values, out=out)
        return time.process_time() - start

    saved = os.environ.get("CROSSCONV_NO_COMPILE")
    torch.set_num_threads(1)
    try:
        tans = []
        for round_ in range(repeats + 1):
            for times in phases.values():
                times.append(0.0)
            for path in paths:
                timed(path, "forward", lambda: native.forward(x, weight, geometry))
                timed(path, "backward", lambda: native.backward(grad_out, x, weight, geometry))
            tans.append(tan())
            if round_ == 0:  # warm-up
                for times in phases.values():
                    times.clear()
                tans.clear()
    finally:
        torch.set_num_threads(THREADS)
        if saved is None:
            os.environ.pop("CROSSCONV_NO_COMPILE", None)
        else:
            os.environ["CROSSCONV_NO_COMPILE"] = saved
    if native._loops(torch.device("cpu")) is None:
        phases = {name: times for name, times in phases.items() if not name.startswith("compiled")}
    return {name: statistics.median(times) for name, times in phases.items()}, statistics.median(tans)


def tanprod_profile_section(repeats):
    medians, tan = tanprod_profile(repeats)
    section = Section(
        "torch_impl's tanprod_conv2d on one thread, compiled loops and eager torch (same "
        "shape, CPU time)",
        ["step", "time", "in units of one torch.tan(out=) pass"],
    )
    for path in ("compiled loops", "eager torch"):
        steps = {name: t for name, t in medians.items() if name.startswith(path)}
        for name, t in steps.items():
            section.rows.append([name, seconds(t), f"{t / tan:.2f}"])
        if steps:
            total = sum(steps.values())
            section.rows.append([f"{path}: forward+backward", seconds(total), f"{total / tan:.2f}"])
    section.rows.append(["torch.tan(out=) over as many factors", seconds(tan), "1.00"])
    section.notes += [
        "the native module's contract functions called directly on one thread; the "
        "forward and the backward each compute every factor (the contract functions "
        "share nothing); the eager path is what runs on a machine without a C compiler "
        "(CROSSCONV_NO_COMPILE=1)",
        f"medians of {repeats} rounds after a warm-up round, each beside one torch.tan(out=)",
    ]
    return section


# ----------------------------------------------------------------------------- depthaware


def depthaware_inputs(seed=0):
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    n, c, o, size = 8, 64, 64, 56
    x = torch.randn(n, c, size, size, generator=g).requires_grad_()
    depth = (torch.rand(n, 1, size, size, generator=g) * 3 + 0.5).requires_grad_()
    weight = (torch.randn(o, c, 3, 3, generator=g) / 24).requires_grad_()
    return x, depth, weight


def depthaware_section(repeats):
    """depthaware_conv2d forward+backward (input, depth and weight gradients) against
    F.conv2d forward+backward at the same shape: 2 threads in wall time, quiet and with
    processes spinning on every core (:class:`crossconv.bench.Competitor`), and 1 thread
    in process CPU time (which holds on a busy machine)."""
    import torch.nn.functional as F

    import torch_impl

    torch = _torch()
    x, depth, weight = depthaware_inputs()

    def candidates():
        ours = _fwd_bwd(lambda: torch_impl.depthaware_conv2d(x, depth, weight, padding=1),
                        x, depth, weight)
        conv = _fwd_bwd(lambda: F.conv2d(x, weight, padding=1), x, weight)
        forward = _no_grad(lambda: torch_impl.depthaware_conv2d(x, depth, weight, padding=1))
        conv_forward = _no_grad(lambda: F.conv2d(x, weight, padding=1))
        return {"ours": ours, "conv": conv, "ours forward": forward, "conv forward": conv_forward}

    # Bounded: the spinners stop by themselves after this long, whatever happens here.
    with Competitor(seconds=1200) as competitor:
        wall = quiet_and_loaded(candidates(), competitor, repeats)
    torch.set_num_threads(1)
    try:
        cpu = cpu_side_by_side(candidates(), repeats)
    finally:
        torch.set_num_threads(THREADS)
    section = Section(
        "depthaware_conv2d, N=8, C=O=64, 56x56, 3x3, padding 1, alpha 1",
        ["pass", "threads, clock", "torch_impl", "F.conv2d", "torch_impl / F.conv2d (target)"],
    )
    runs = [(f"{THREADS}, wall", {k: wall[k, False] for k in ("ours", "conv", "ours forward",
                                                              "conv forward")}),
            (f"{THREADS}, wall, under load", {k: wall[k, True] for k in ("ours", "conv",
                                                                        "ours forward",
                                                                        "conv forward")}),
            ("1, process CPU", cpu)]
    for label, times in runs:
        section.rows.append(["forward+backward", label, seconds(times["ours"]),
                             seconds(times["conv"]),
                             f"{ratio(times['ours'], times['conv'])} (<= 1.5x)"])
        section.rows.append(["forward", label, seconds(times["ours forward"]),
                             seconds(times["conv forward"]),
                             ratio(times["ours forward"], times["conv forward"])])
    section.notes.append("depth uniform in [0.5, 3.5); backward: gradients of input, depth and "
                         "weight (F.conv2d: input and weight); float32; medians of "
                         f"{repeats} round-robin rounds")
    section.notes.append(f"under load: {Competitor().processes} spinning processes (one per "
                         "core), switched on every other round, so quiet and loaded rounds "
                         "alternate and share whatever else runs on the machine; torch_impl "
                         "forward+backward loaded / quiet: "
                         f"{ratio(wall['ours', True], wall['ours', False])}, F.conv2d: "
                         f"{ratio(wall['conv', True], wall['conv', False])}")
    section.notes.append("F.conv2d runs oneDNN's direct convolution; torch_impl builds the "
                         "depth-weighted columns 1 MiB at a time, multiplies them with MKL and "
                         "runs whole samples on single-threaded workers (docs/depthaware.md)")
    for label, key in (("quiet", False), ("loaded", True)):
        for name, ours in (("torch_impl", "ours"), ("F.conv2d", "conv")):
            section.bars.append(Bar("depthaware_conv2d forward+backward, quiet / under load",
                                    f"{name} {label}", wall[ours, key], name == "torch_impl"))
    return section


# ----------------------------------------------------------------------------- CPU time


def cpu_side_by_side(candidates, repeats, warmup=1):
    """Like :func:`crossconv.bench.side_by_side`, in process CPU time."""
    times = {name: [] for name in candidates}
    for round_ in range(warmup + repeats):
        for name, fn in candidates.items():
            start = time.process_time()
            fn()
            if round_ >= warmup:
                times[name].append(time.process_time() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def single_thread_section(repeats):
    import torch.nn.functional as F
    import torchvision

    import torch_impl

    torch = _torch()
    torch.set_num_threads(1)
    try:
        x, offset, weight, mask = deform_inputs()
        tensors = (x, offset, weight, mask)
        ours = lambda: torch_impl.deform_conv2d(x, offset, weight, padding=1, mask=mask)  # noqa: E731
        tv = lambda: torchvision.ops.deform_conv2d(x, offset, weight, padding=1, mask=mask)  # noqa: E731
        fwd = cpu_side_by_side({"ours": _no_grad(ours), "tv": _no_grad(tv)}, repeats)
        both = cpu_side_by_side({
            "ours": _fwd_bwd(ours, *tensors), "tv": _fwd_bwd(tv, *tensors),
            "conv": _fwd_bwd(lambda: F.conv2d(x, weight, padding=1), *tensors),
        }, repeats)
        depth = cpu_side_by_side({k: v for k, v in _conv2_5d_candidates().items()
                                  if k != "unfold-style"}, repeats)
        xt, wt, values = tanprod_inputs()
        out = torch.empty_like(values)
        tan = cpu_side_by_side({
            "ours": _fwd_bwd(lambda: torch_impl.tanprod_conv2d(xt, wt, padding=1), xt, wt),
            "forward": _no_grad(lambda: torch_impl.tanprod_conv2d(xt, wt, padding=1)),
            "tan": lambda: torch.tan(values, out=out),
        }, repeats)
        conv_fwd = cpu_side_by_side({
            "ours": _no_grad(ours), "conv": _no_grad(lambda: F.conv2d(x, weight, padding=1)),
        }, repeats)
    finally:
        torch.set_num_threads(THREADS)
    section = Section("The same ratios on one thread, in process CPU time",
                      ["comparison", "torch_impl", "other", "ratio (target)"])
    section.rows += [
        ["deform forward vs torchvision", seconds(fwd["ours"]), seconds(fwd["tv"]),
         f"{ratio(fwd['tv'], fwd['ours'])} faster (>= 2x)"],
        ["deform forward+backward vs torchvision", seconds(both["ours"]), seconds(both["tv"]),
         f"{ratio(both['tv'], both['ours'])} faster (>= 4x)"],
        ["deform forward vs F.conv2d forward", seconds(conv_fwd["ours"]), seconds(conv_fwd["conv"]),
         f"{ratio(conv_fwd['ours'], conv_fwd['conv'])} (<= 2x)"],
        ["deform forward+backward vs F.conv2d", seconds(both["ours"]), seconds(both["conv"]),
         f"{ratio(both['ours'], both['conv'])} (<= 4x, aim 2.5x)"],
        ["conv2_5d forward+backward vs 3 x F.conv2d", seconds(depth["torch_impl"]),
         seconds(depth["3 x F.conv2d"]),
         f"{ratio(depth['torch_impl'], depth['3 x F.conv2d'])} (<= 1.5x)"],
        ["tanprod forward+backward vs torch.tan(out=)", seconds(tan["ours"]), seconds(tan["tan"]),
         f"{ratio(tan['ours'], tan['tan'])} (<= 3x)"],
        ["tanprod forward vs torch.tan(out=)", seconds(tan["forward"]), seconds(tan["tan"]),
         ratio(tan["forward"], tan["tan"])],
    ]
    section.notes.append("same shapes and inputs as above; CPU time counts only this process's "
                         "own work, so it holds on a busy machine")
    return section


def sections(repeats):
    _torch().set_num_threads(THREADS)
    return [deform_section(repeats), deform_load_section(repeats), deform_profile_section(repeats),
            conv2_5d_section(repeats), tanprod_section(repeats), tanprod_profile_section(repeats),
            single_thread_section(repeats), depthaware_section(repeats)]
