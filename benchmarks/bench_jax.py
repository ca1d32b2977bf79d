"""The JAX backend (jit-compiled, CPU, float32) against the torch backend.

deform_conv2d (with a mask) and conv2_5d (3 depth bins) at N=8, C=O=64, 56x56, 3x3,
padding 1, forward and forward+backward (the gradients of every tensor argument), side by
side in one run with torch_impl's native version when torch_impl has the op, else with
what it stands in for: torchvision.ops.deform_conv2d, and three F.conv2d (one per bin:
the same multiply-adds as conv2_5d, without the masks). torch runs on 2 threads; XLA uses
the machine's cores. Compile time (trace + XLA compile, once per shape) is reported
separately from the run time of the compiled function.

depthaware_conv2d (same shapes, alpha 1, with bias) has a table of its own: against
F.conv2d (a convolution without the depth weights, the floor) and torch_impl's native
version where torch_impl has the op, all three timed in one round-robin.
"""

import importlib
import importlib.util
import time

import numpy as np

from crossconv.bench import Bar, Section, ratio, seconds, side_by_side

TITLE = "JAX backend (XLA, float32) against the torch backend"

N, C, O, H, W, BINS = 8, 64, 64, 56, 56, 3
#: Each timed call starts with this pause, subtracted again from the medians: XLA's and
#: torch's thread pools spin for a while after their work, and a call started at once
#: competes with the other framework's spinning threads (measured here: torch's conv2_5d
#: 10x slower right after an XLA call than alone).
SETTLE = 0.25


def _settled(fn):
    def call():
        time.sleep(SETTLE)
        return fn()

    return call


def _inputs(rng):
    f32 = lambda *shape, scale=1.0: (rng.standard_normal(shape) * scale).astype(np.float32)  # noqa: E731
    return {
        "input": f32(N, C, H, W),
        "offset": rng.uniform(-2, 2, (N, 18, H, W)).astype(np.float32),
        "mask": rng.uniform(0, 1, (N, 9, H, W)).astype(np.float32),
        "deform_weight": f32(O, C, 3, 3, scale=0.05),
        "depth": rng.uniform(0.5, 3.0, (N, 1, H, W)).astype(np.float32),
        "bins_weight": f32(BINS, O, C, 3, 3, scale=0.05),
        "grad": f32(N, O, H, W),
        "bias": f32(O),
    }


def _torch_candidates(torch, data):
    """name -> (label, forward, forward+backward) for the torch side."""
    import torch.nn.functional as F

    t = {k: torch.from_numpy(v) for k, v in data.items()}
    try:
        torch_impl = importlib.import_module("torch_impl")
    except ImportError:
        torch_impl = None

    def fwd_bwd(fn, *args, fixed=()):
        """Gradients of every argument but the positions in ``fixed`` (conv2_5d's depth)."""
        leaves = [a if i in fixed else a.detach().requires_grad_() for i, a in enumerate(args)]
        out = fn(*leaves)
        return torch.autograd.grad(out, [a for i, a in enumerate(leaves) if i not in fixed],
                                   t["grad"])

    if hasattr(torch_impl, "deform_conv2d"):
        label = "torch_impl (native)"
        deform = lambda x, off, w, m: torch_impl.deform_conv2d(x, off, w, padding=1, mask=m,  # noqa: E731
                                                               impl="native")
    else:
        import torchvision.ops

        label = "torchvision.ops"
        deform = lambda x, off, w, m: torchvision.ops.deform_conv2d(x, off, w, padding=1,  # noqa: E731
                                                                    mask=m)
    deform_args = (t["input"], t["offset"], t["deform_weight"], t["mask"])
    candidates = {"deform_conv2d": (
        label, lambda: deform(*deform_args), lambda: fwd_bwd(deform, *deform_args))}

    if hasattr(torch_impl, "conv2_5d"):
        label = "torch_impl (native)"
        conv = lambda x, d, w: torch_impl.conv2_5d(x, d, w, padding=1, impl="native")  # noqa: E731
        conv_args, fixed = (t["input"], t["depth"], t["bins_weight"]), (1,)
    else:
        label = "3 x F.conv2d"

        def conv(x, w):
            return sum(F.conv2d(x, w[b], padding=1) for b in range(BINS))

        conv_args, fixed = (t["input"], t["bins_weight"]), ()
    candidates["conv2_5d"] = (label, lambda: conv(*conv_args),
                              lambda: fwd_bwd(conv, *conv_args, fixed=fixed))
    return candidates


def _jax_candidates(jax, data):
    """name -> (compile seconds, forward, forward+backward), compiled once."""
    import jax_impl

    a = {k: jax.device_put(v) for k, v in data.items()}
    ops = {  # (op, its tensors, positions of the differentiable ones)
        "deform_conv2d": (lambda x, off, w, m: jax_impl.deform_conv2d(x, off, w, padding=1, mask=m),
                          (a["input"], a["offset"], a["deform_weight"], a["mask"]), (0, 1, 2, 3)),
        "conv2_5d": (lambda x, d, w: jax_impl.conv2_5d(x, d, w, padding=1),
                     (a["input"], a["depth"], a["bins_weight"]), (0, 2)),
    }
    candidates = {}
    for name, (op, args, wrt) in ops.items():
        def fwd_bwd(*args, op=op, wrt=wrt):
            """The output and the gradients, as a training step needs both (XLA would
            drop an unused forward)."""
            def of_wrt(*diff):
                full = list(args)
                for i, d in zip(wrt, diff):
                    full[i] = d
                return op(*full)

            out, pullback = jax.vjp(of_wrt, *(args[i] for i in wrt))
            return out, pullback(a["grad"])

        start = time.perf_counter()
        forward = jax.jit(op).lower(*args).compile()
        backward = jax.jit(fwd_bwd).lower(*args).compile()
        compile_time = time.perf_counter() - start
        candidates[name] = (
            compile_time,
            lambda f=forward, args=args: jax.block_until_ready(f(*args)),
            lambda f=backward, args=args: jax.block_until_ready(f(*args)),
        )
    return candidates


def sections(repeats):
    import jax
    import torch

    torch.set_num_threads(2)
    data = _inputs(np.random.default_rng(0))
    jax_side = _jax_candidates(jax, data)
    torch_side = _torch_candidates(torch, data)
    section = Section(
        f"N={N}, C=O={C}, {H}x{W}, 3x3, padding 1 (float32, CPU)",
        ["op", "pass", "jax", "torch side", "torch", "jax / torch", "jax compile"],
    )
    for name in ("deform_conv2d", "conv2_5d"):
        compile_time, jax_fwd, jax_bwd = jax_side[name]
        label, torch_fwd, torch_bwd = torch_side[name]
        for what, jax_fn, torch_fn in (("forward", jax_fwd, torch_fwd),
                                       ("forward+backward", jax_bwd, torch_bwd)):
            with torch.no_grad() if what == "forward" else torch.enable_grad():
                t = side_by_side({"jax": _settled(jax_fn), "torch": _settled(torch_fn)},
                                 repeats=repeats)
                t = {k: v - SETTLE for k, v in t.items()}
            section.rows.append([name, what, seconds(t["jax"]), label, seconds(t["torch"]),
                                 ratio(t["jax"], t["torch"]),
                                 seconds(compile_time) if what == "forward" else ""])
            section.bars += [Bar(f"{name} {what}, jax vs torch", label, t["torch"], True),
                             Bar(f"{name} {what}, jax vs torch", "jax_impl", t["jax"], True)]
    section.notes += [
        "medians of round-robin runs, each call after a 0.25 s pause (not counted) that lets "
        "the other framework's thread pool go idle; torch with 2 threads, XLA with the "
        "machine's cores",
        "forward+backward: the output and the gradients of every differentiable tensor "
        "argument (deform: input, offset, weight, mask; conv2_5d: input and weight) for a "
        "fixed output cotangent; every tensor is an argument of the compiled function (a "
        "captured constant would let XLA precompute conv2_5d's masks)",
        "jax compile: tracing and XLA compilation of both jitted functions, once per shape",
        "3 x F.conv2d (when torch_impl has no conv2_5d) is a floor, not conv2_5d: the same "
        "multiply-adds through oneDNN without computing or applying the depth masks",
    ]
    return [section, _depthaware_section(jax, torch, data, repeats)]


# ----------------------------------------------------------------------------- depth-aware


def _depthaware_section(jax, torch, data, repeats):
    """depthaware_conv2d (alpha 1, bias) against F.conv2d and, where it exists, torch_impl's
    native version, all timed in one round-robin per pass."""
    import torch.nn.functional as F

    import jax_impl

    names = ("input", "depth", "deform_weight")
    a = [jax.device_put(data[k]) for k in names] + [jax.device_put(data["bias"])]
    g = jax.device_put(data["grad"])

    def op(x, d, w, b):
        return jax_impl.depthaware_conv2d(x, d, w, b, padding=1, impl="native")

    def fwd_bwd(x, d, w, b):
        out, pullback = jax.vjp(op, x, d, w, b)
        return out, pullback(g)

    start = time.perf_counter()
    forward = jax.jit(op).lower(*a).compile()
    backward = jax.jit(fwd_bwd).lower(*a).compile()
    compile_time = time.perf_counter() - start
    jax_side = {"forward": lambda: jax.block_until_ready(forward(*a)),
                "forward+backward": lambda: jax.block_until_ready(backward(*a))}

    t = {k: torch.from_numpy(data[k]) for k in (*names, "bias", "grad")}

    def torch_pass(fn, args):
        def forward():
            with torch.no_grad():
                return fn(*args)

        def both():
            leaves = [x.detach().requires_grad_() for x in args]
            return torch.autograd.grad(fn(*leaves), leaves, t["grad"])

        return {"forward": forward, "forward+backward": both}

    conv = lambda x, w, b: F.conv2d(x, w, b, padding=1)  # noqa: E731
    torch_side = {"F.conv2d": torch_pass(conv, (t["input"], t["deform_weight"], t["bias"]))}
    torch_impl = importlib.util.find_spec("torch_impl") and importlib.import_module("torch_impl")
    if hasattr(torch_impl, "depthaware_conv2d"):
        native = lambda x, d, w, b: torch_impl.depthaware_conv2d(x, d, w, b, padding=1,  # noqa: E731
                                                                 impl="native")
        torch_side["torch_impl"] = torch_pass(native, [t[k] for k in (*names, "bias")])

    section = Section(
        f"depthaware_conv2d, N={N}, C=O={C}, {H}x{W}, 3x3, padding 1, alpha 1 (float32, CPU)",
        ["pass", "jax", "torch side", "torch", "jax / torch", "jax compile"])
    for what in ("forward", "forward+backward"):
        candidates = {"jax": _settled(jax_side[what])}
        candidates.update({name: _settled(side[what]) for name, side in torch_side.items()})
        times = {k: v - SETTLE for k, v in side_by_side(candidates, repeats=repeats).items()}
        for name in torch_side:
            section.rows.append([what, seconds(times["jax"]), name, seconds(times[name]),
                                 ratio(times["jax"], times[name]),
                                 seconds(compile_time) if what == "forward" and
                                 name == "F.conv2d" else ""])
        if "torch_impl" in times:
            section.rows.append([what, "", "torch_impl / F.conv2d", "",
                                 ratio(times["torch_impl"], times["F.conv2d"]), ""])
    section.notes += [
        "jax_impl.depthaware_conv2d (impl='native') with every gradient (input, depth, "
        "weight, bias) against F.conv2d's forward+backward (input, weight, bias: the floor, "
        "a convolution without the depth weights) and, where torch_impl has the op, its "
        "native version; the targets: torch_impl within 1.5x of F.conv2d, jax within 1.5x "
        "of torch_impl",
    ]
    return section
