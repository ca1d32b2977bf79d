"""``make gpu-check``: the GPU kernels on a GPU, as one table.

Run as ``python -m crossconv.gpu_check`` on a machine with one NVIDIA GPU and the
project's environment. It checks its prerequisites first and exits 2 with one line where
there is no CUDA device. Then:

1. ``crosscheck --device cuda`` over every column that can use a GPU (``torch``,
   ``torch-triton``, ``torch-anchor``, ``jax``, ``jax-pallas``): each op against the
   float64 reference, forward and gradients, on the GPU.
2. For every kernel in :data:`KERNELS` (each Triton and Pallas kernel; adding an op is
   one entry): forward and forward+backward time against its anchor on the same GPU
   (torchvision's CUDA ``deform_conv2d``, cuDNN's ``F.conv2d`` for conv2_5d's B
   convolutions, ``F.max_pool2d``/``F.avg_pool2d``, ``tan`` over as many factors for
   tanprod, which has no framework primitive), each as a fraction of its roofline: the
   FLOPs and HBM bytes the kernel files state per output (the estimates of
   docs/kernels.md) at the card's peak FP32 rate and memory bandwidth (:data:`CARDS`,
   found from the device name).
3. Determinism of every backward: run twice on the same inputs, compared bitwise, with
   torch's default algorithms and under ``torch.use_deterministic_algorithms(True)``.

Everything lands in one table, printed and written as Markdown (``build/gpu-check.md`` by
default) to be pasted into docs/kernels.md. Exit 0: every check passed and every kernel
ran; 1: something failed (the table says what); 2: no GPU or a bad option.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "build" / "gpu-check.md"

#: The columns of the crosscheck that can run on a GPU.
GPU_COLUMNS = ("torch", "torch-triton", "torch-anchor", "jax", "jax-pallas")


# ----------------------------------------------------------------------------- cards


@dataclass(frozen=True)
class Card:
    """Peak numbers of a GPU: HBM bandwidth (bytes/s) and FP32 CUDA-core rate (FLOP/s),
    from the vendor's data sheets."""

    name: str
    bandwidth: float
    fp32: float


#: Device-name fragments (first match wins; checked in this order) -> peak numbers.
CARDS: tuple[tuple[tuple[str, ...], Card], ...] = (
    (("H200", "NVL"), Card("H200 NVL", 4.8e12, 60e12)),
    (("H200",), Card("H200 SXM", 4.8e12, 67e12)),
    (("H100", "PCIE"), Card("H100 PCIe", 2.0e12, 51e12)),
    (("H100", "NVL"), Card("H100 NVL", 3.9e12, 60e12)),
    (("H100",), Card("H100 SXM", 3.35e12, 67e12)),
    (("A100", "40GB"), Card("A100 40GB", 1.555e12, 19.5e12)),
    (("A100", "PCIE"), Card("A100 80GB PCIe", 1.935e12, 19.5e12)),
    (("A100",), Card("A100 80GB SXM", 2.039e12, 19.5e12)),
)


def card_for(device_name: str) -> Card | None:
    """The :data:`CARDS` entry for a CUDA device name (e.g. "NVIDIA H100 80GB HBM3"), or
    None for a card the table does not know (the roofline column is then empty)."""
    name = device_name.upper().replace("-", " ")
    for fragments, card in CARDS:
        if all(fragment in name for fragment in fragments):
            return card
    return None


def roofline_seconds(flops: float, nbytes: float, card: Card) -> float:
    """The roofline time: the slower of computing ``flops`` and moving ``nbytes``."""
    return max(flops / card.fp32, nbytes / card.bandwidth)


# ----------------------------------------------------------------------------- kernels


@dataclass
class Runs:
    """What a kernel entry builds on the device: callables for our kernel and the anchor,
    forward and forward+backward, and ``grads()``: one backward of ours, its gradients."""

    ours_forward: Callable[[], object]
    ours_both: Callable[[], object]
    anchor_forward: Callable[[], object]
    anchor_both: Callable[[], object]
    grads: Callable[[], list]
    sync: Callable[[], None]
    #: Switches the framework's deterministic mode (torch only): f(bool).
    deterministic: Callable[[bool], None] | None = None


@dataclass(frozen=True)
class Kernel:
    """One GPU kernel against its anchor, as data.

    ``build(device)`` returns :class:`Runs`; ``flops`` and ``nbytes`` are the forward and
    backward (FLOPs, HBM bytes) of the shape, from the kernel file's per-output counts."""

    op: str
    column: str
    shape: str
    anchor: str
    build: Callable[[str], Runs]
    flops: tuple[float, float]
    nbytes: tuple[float, float]


# Shapes: those of docs/kernels.md's estimates (N=8, 56x56 outputs, 3x3, padding 1).
N, C, O, HW, K = 8, 64, 64, 56, 9
M = N * HW * HW  # output positions
F32 = 4


def _torch_runs(ours, anchor, inputs) -> Runs:
    """Runs for torch callables ``ours()``/``anchor()`` of the tensors ``inputs`` (those
    requiring gradients get them)."""
    import torch

    on_gpu = inputs[0].device.type == "cuda"

    with_grad = [t for t in inputs if t.requires_grad]

    def both(fn):
        cotangent = []  # one fixed random cotangent per callable

        def run():
            for t in with_grad:
                t.grad = None
            out = fn()
            if not cotangent:
                cotangent.append(torch.randn_like(out))
            out.backward(cotangent[0])
        return run

    def no_grad(fn):
        def run():
            with torch.no_grad():
                return fn()
        return run

    ours_both = both(ours)

    def grads():
        ours_both()
        return [t.grad.clone() for t in with_grad if t.grad is not None]

    return Runs(no_grad(ours), ours_both, no_grad(anchor), both(anchor), grads,
                torch.cuda.synchronize if on_gpu else (lambda: None),
                torch.use_deterministic_algorithms)


def _deform_torch(device) -> Runs:
    import torch
    import torchvision

    import torch_impl

    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(N, C, HW, HW, device=device, generator=g).requires_grad_()
    offset = (torch.rand(N, 2 * K, HW, HW, device=device, generator=g) * 2 - 1).requires_grad_()
    mask = torch.rand(N, K, HW, HW, device=device, generator=g).requires_grad_()
    weight = (torch.randn(O, C, 3, 3, device=device, generator=g) / 24).requires_grad_()
    return _torch_runs(
        lambda: torch_impl.deform_conv2d(x, offset, weight, padding=1, mask=mask, impl="triton"),
        lambda: torchvision.ops.deform_conv2d(x, offset, weight, padding=1, mask=mask),
        (x, offset, weight, mask))


def _conv2_5d_torch(device, bins=3) -> Runs:
    import torch
    import torch.nn.functional as F

    import torch_impl

    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(N, C, HW, HW, device=device, generator=g).requires_grad_()
    depth = torch.rand(N, 1, HW, HW, device=device, generator=g) + 0.5
    weight = (torch.randn(bins, O, C, 3, 3, device=device, generator=g) / 24).requires_grad_()
    return _torch_runs(
        lambda: torch_impl.conv2_5d(x, depth, weight, padding=1, impl="triton"),
        lambda: sum(F.conv2d(x, weight[b], padding=1) for b in range(bins)),
        (x, weight))


def _tanprod_torch(device, channels=4) -> Runs:
    import torch

    import torch_impl

    g = torch.Generator(device=device).manual_seed(0)
    x = (torch.rand(N, channels, HW, HW, device=device, generator=g) * 1.2 - 0.6).requires_grad_()
    weight = (torch.rand(O, channels, 3, 3, device=device, generator=g) * 1.2 - 0.6).requires_grad_()
    values = (torch.rand(M * O * channels * K, device=device, generator=g) * 2.4 - 1.2).requires_grad_()
    return _torch_runs(
        lambda: torch_impl.tanprod_conv2d(x, weight, padding=1, impl="triton"),
        lambda: torch.tan(values),  # tan over as many factors (and its backward)
        (x, weight, values))


def _pool_torch(device, op) -> Runs:
    import torch
    import torch.nn.functional as F

    import torch_impl

    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(N, C, 2 * HW, 2 * HW, device=device, generator=g).requires_grad_()
    if op == "max_pool2d":
        ours = lambda: torch_impl.max_pool2d(x, 3, stride=2, padding=1, impl="triton")  # noqa: E731
        anchor = lambda: F.max_pool2d(x, 3, stride=2, padding=1)  # noqa: E731
    else:
        ours = lambda: torch_impl.avg_pool2d(x, 2, impl="triton")  # noqa: E731
        anchor = lambda: F.avg_pool2d(x, 2)  # noqa: E731
    return _torch_runs(ours, anchor, (x,))


def _jax_runs(ours, anchor, args, differentiable, torch_anchor=None) -> Runs:
    """Runs for JAX functions of ``args``: jitted forward, and forward+backward as a
    jitted VJP w.r.t. the arguments at positions ``differentiable``. ``torch_anchor``:
    (forward, both) torch callables when the anchor is not a JAX function."""
    import jax
    import jax.numpy as jnp

    def vjp_of(fn):
        def loss(*diff):
            full = list(args)
            for i, value in zip(differentiable, diff):
                full[i] = value
            out = fn(*full)
            return jnp.vdot(out, jnp.ones_like(out)) if out.ndim else out
        return jax.jit(jax.grad(loss, argnums=tuple(range(len(differentiable)))))

    forward = jax.jit(ours)
    both = vjp_of(ours)
    diff = [args[i] for i in differentiable]

    def block(value):
        return jax.block_until_ready(value)

    if torch_anchor is None:
        anchor_forward, anchor_both = jax.jit(anchor), vjp_of(anchor)
        anchor_f = lambda: block(anchor_forward(*args))  # noqa: E731
        anchor_b = lambda: block(anchor_both(*diff))  # noqa: E731
    else:
        anchor_f, anchor_b = torch_anchor
    return Runs(lambda: block(forward(*args)), lambda: block(both(*diff)), anchor_f, anchor_b,
                lambda: list(block(both(*diff))), lambda: None)


def _jax_device_arrays(device, seed=0):
    import jax

    gpu = jax.devices("gpu")[0]
    key = jax.random.PRNGKey(seed)
    return gpu, key, lambda value: jax.device_put(value, gpu)


def _deform_jax(device) -> Runs:
    import jax

    import jax_impl

    _, key, put = _jax_device_arrays(device)
    k = jax.random.split(key, 4)
    x = put(jax.random.normal(k[0], (N, C, HW, HW)))
    offset = put(jax.random.uniform(k[1], (N, 2 * K, HW, HW), minval=-1, maxval=1))
    mask = put(jax.random.uniform(k[2], (N, K, HW, HW)))
    weight = put(jax.random.normal(k[3], (O, C, 3, 3)) / 24)
    torch_runs = _deform_torch(device)  # torchvision's CUDA kernel on the same GPU
    return _jax_runs(
        lambda x, o, w, m: jax_impl.deform_conv2d(x, o, w, padding=1, mask=m, impl="pallas"),
        None, (x, offset, weight, mask), (0, 1, 2, 3),
        torch_anchor=(torch_runs.anchor_forward, torch_runs.anchor_both))


def _conv2_5d_jax(device, bins=3) -> Runs:
    import jax
    from jax import lax

    import jax_impl

    _, key, put = _jax_device_arrays(device)
    k = jax.random.split(key, 3)
    x = put(jax.random.normal(k[0], (N, C, HW, HW)))
    depth = put(jax.random.uniform(k[1], (N, 1, HW, HW)) + 0.5)
    weight = put(jax.random.normal(k[2], (bins, O, C, 3, 3)) / 24)

    def convs(x, d, w):
        return sum(lax.conv_general_dilated(x, w[b], (1, 1), ((1, 1), (1, 1)),
                                            precision=lax.Precision.HIGHEST) for b in range(bins))

    return _jax_runs(lambda x, d, w: jax_impl.conv2_5d(x, d, w, padding=1, impl="pallas"), convs,
                     (x, depth, weight), (0, 2))


def _tanprod_jax(device, channels=4) -> Runs:
    import jax
    import jax.numpy as jnp

    import jax_impl

    _, key, put = _jax_device_arrays(device)
    k = jax.random.split(key, 3)
    x = put(jax.random.uniform(k[0], (N, channels, HW, HW), minval=-0.6, maxval=0.6))
    weight = put(jax.random.uniform(k[1], (O, channels, 3, 3), minval=-0.6, maxval=0.6))
    values = put(jax.random.uniform(k[2], (M * O * channels * K,), minval=-1.2, maxval=1.2))
    return _jax_runs(lambda x, w, v: jax_impl.tanprod_conv2d(x, w, padding=1, impl="pallas"),
                     lambda x, w, v: jnp.tan(v).sum(), (x, weight, values), (0, 1))


def _pool_jax(device, op) -> Runs:
    import jax
    from jax import lax

    import jax_impl

    _, key, put = _jax_device_arrays(device)
    x = put(jax.random.normal(key, (N, C, 2 * HW, 2 * HW)))
    if op == "max_pool2d":
        ours = lambda x: jax_impl.max_pool2d(x, 3, stride=2, padding=1, impl="pallas")  # noqa: E731
        anchor = lambda x: lax.reduce_window(  # noqa: E731
            x, -float("inf"), lax.max, (1, 1, 3, 3), (1, 1, 2, 2), ((0, 0), (0, 0), (1, 1), (1, 1)))
    else:
        ours = lambda x: jax_impl.avg_pool2d(x, 2, impl="pallas")  # noqa: E731
        anchor = lambda x: lax.reduce_window(x, 0.0, lax.add, (1, 1, 2, 2), (1, 1, 2, 2),  # noqa: E731
                                             "VALID") / 4
    return _jax_runs(ours, anchor, (x,), (0,))


def _kernels() -> list[Kernel]:
    """Every GPU kernel against its anchor (one entry per op and kernel family)."""
    deform_flops = (M * O * 2 * K * C + M * K * C * 20, M * O * 4 * K * C + M * K * C * 40)
    deform_bytes = (F32 * (N * C * HW * HW + M * 3 * K + M * O),
                    F32 * (2 * N * C * HW * HW + 2 * M * 3 * K + M * O))
    conv25_flops = (M * O * 2 * 3 * C * K, 2 * M * O * 2 * 3 * C * K)
    conv25_bytes = (F32 * (N * C * HW * HW + M + M * O), F32 * (2 * N * C * HW * HW + M + M * O))
    tan_factors = M * O * 4 * K  # C = 4
    tan_flops = (33 * tan_factors, 50 * tan_factors)
    tan_bytes = (F32 * (N * 4 * HW * HW + M * O), F32 * (2 * N * 4 * HW * HW + M * O))
    pool_in = N * C * (2 * HW) ** 2
    pool_out = N * C * HW * HW
    max_flops = (2 * 9 * pool_out, 9 * pool_in)
    max_bytes = (F32 * pool_in + (F32 + 8) * pool_out, (8 + F32) * pool_out + F32 * pool_in)
    avg_flops = (5 * pool_out, 5 * pool_in)
    avg_bytes = (F32 * (pool_in + pool_out), F32 * (pool_in + pool_out))
    conv_shape = f"N={N}, C=O={C}, {HW}x{HW}, 3x3, pad 1"
    pool = f"N={N}, C={C}, {2 * HW}x{2 * HW}"
    entries = []
    for column, builders in (
        ("torch-triton", (_deform_torch, _conv2_5d_torch, _tanprod_torch, _pool_torch)),
        ("jax-pallas", (_deform_jax, _conv2_5d_jax, _tanprod_jax, _pool_jax)),
    ):
        deform, conv25, tanprod, pooling = builders
        entries += [
            Kernel("deform_conv2d", column, conv_shape + ", mask",
                   "torchvision.ops.deform_conv2d (CUDA)", deform, deform_flops, deform_bytes),
            Kernel("conv2_5d", column, conv_shape + ", 3 bins",
                   "3 x F.conv2d (cuDNN)" if column == "torch-triton" else "3 x lax.conv",
                   conv25, conv25_flops, conv25_bytes),
            Kernel("tanprod_conv2d", column, f"N={N}, C=4, O={O}, {HW}x{HW}, 3x3, pad 1",
                   "tan over as many factors", tanprod, tan_flops, tan_bytes),
            Kernel("max_pool2d", column, pool + ", 3x3 stride 2 pad 1",
                   "F.max_pool2d" if column == "torch-triton" else "lax.reduce_window",
                   lambda device, p=pooling: p(device, "max_pool2d"), max_flops, max_bytes),
            Kernel("avg_pool2d", column, pool + ", 2x2 stride 2",
                   "F.avg_pool2d" if column == "torch-triton" else "lax.reduce_window",
                   lambda device, p=pooling: p(device, "avg_pool2d"), avg_flops, avg_bytes),
        ]
    return entries


KERNELS: list[Kernel] = _kernels()


# ----------------------------------------------------------------------------- timing


def event_timer(candidates: dict[str, Callable[[], object]], sync: Callable[[], None],
                rounds: int = 7, inner: int = 10, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each candidate: ``inner`` calls per timed block between
    two synchronisations (kernel launches are microseconds), ``rounds`` blocks,
    candidates interleaved round by round, after ``warmup`` untimed rounds (compilation)."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for round_ in range(warmup + rounds):
        for name, fn in candidates.items():
            sync()
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            sync()
            if round_ >= warmup:
                times[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(ts) for name, ts in times.items()}


# ----------------------------------------------------------------------------- the table


@dataclass
class Row:
    """One line of the table: an op in a GPU column."""

    op: str
    column: str
    crosscheck: str
    shape: str = ""
    anchor: str = ""
    times: dict[str, float] = field(default_factory=dict)  # ours/anchor x forward/both
    roofline: tuple[float, float] | None = None  # seconds: forward, forward+backward
    determinism: str = ""
    problem: str = ""


COLUMNS = ["op", "column", "crosscheck", "shape", "forward", "anchor", "forward vs anchor",
           "fwd+bwd", "anchor fwd+bwd", "fwd+bwd vs anchor", "roofline fwd / fwd+bwd",
           "of roofline fwd / fwd+bwd", "backward twice (default; deterministic mode)"]


def _ms(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return ""
    return f"{seconds * 1e3:.3f} ms" if seconds < 0.1 else f"{seconds * 1e3:.1f} ms"


def cells(row: Row) -> list[str]:
    """The row as the table's cell strings."""
    t = row.times
    ours_f, ours_b = t.get("ours forward"), t.get("ours both")
    anchor_f, anchor_b = t.get("anchor forward"), t.get("anchor both")

    def ratio(a, b):
        return f"{a / b:.2f}x" if a and b else ""

    roofline = fraction = ""
    if row.roofline and ours_f and ours_b:
        roofline = f"{row.roofline[0] * 1e6:.0f} / {row.roofline[1] * 1e6:.0f} us"
        fraction = f"{row.roofline[0] / ours_f:.0%} / {row.roofline[1] / ours_b:.0%}"
    timing = [_ms(ours_f), row.anchor, ratio(ours_f, anchor_f), _ms(ours_b), _ms(anchor_b),
              ratio(ours_b, anchor_b), roofline, fraction]
    if row.problem:
        timing = [row.problem] + [""] * (len(timing) - 1)
    return [row.op, row.column, row.crosscheck, row.shape, *timing, row.determinism]


def markdown(rows: list[Row], header: str, notes: list[str]) -> str:
    lines = [header, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


NOTES = [
    "crosscheck: `crosscheck --device cuda` of the column on the op (worst error in units of "
    "the tolerance; n/a: the column cannot run here, e.g. a jaxlib without CUDA)",
    "times: medians of interleaved rounds, each the mean of several calls between two "
    "synchronisations, after warm-up calls (compilation excluded); fwd+bwd: the forward and "
    "the gradients of every tensor that has one, for a fixed random cotangent",
    "roofline: FLOPs and HBM bytes per output as the kernel files state them (the estimates "
    "of docs/kernels.md), at the card's FP32 CUDA-core peak and memory bandwidth; "
    "\"of roofline\" is roofline time / measured time",
    "backward twice: the gradients of two backward passes on the same inputs, bitwise "
    "(\"differs\" names the first gradient that does), with the default algorithms and "
    "under torch.use_deterministic_algorithms(True)",
]


def _determinism(runs: Runs) -> str:
    def twice():
        first, second = runs.grads(), runs.grads()
        runs.sync()
        for i, (a, b) in enumerate(zip(first, second)):
            if not _bitwise_equal(a, b):
                return f"differs (gradient {i})"
        return "bitwise"

    default = twice()
    if runs.deterministic is None:
        return default
    runs.deterministic(True)
    try:
        strict = twice()
    finally:
        runs.deterministic(False)
    return f"{default}; {strict}"


def _bitwise_equal(a, b) -> bool:
    import numpy as np

    a, b = np.asarray(_host(a)), np.asarray(_host(b))
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def _host(value):
    to_cpu = getattr(value, "cpu", None)
    return to_cpu().detach().numpy() if callable(to_cpu) and hasattr(value, "detach") else value


def kernel_row(kernel: Kernel, device: str, card: Card | None, timer=event_timer) -> Row:
    """Time and check one kernel entry (a failure goes into the row, never raised)."""
    row = Row(kernel.op, kernel.column, "", kernel.shape, kernel.anchor)
    try:
        runs = kernel.build(device)
        row.times = timer({"ours forward": runs.ours_forward, "anchor forward": runs.anchor_forward,
                           "ours both": runs.ours_both, "anchor both": runs.anchor_both}, runs.sync)
        if card is not None:
            forward = roofline_seconds(kernel.flops[0], kernel.nbytes[0], card)
            backward = roofline_seconds(kernel.flops[1], kernel.nbytes[1], card)
            row.roofline = (forward, forward + backward)
        row.determinism = _determinism(runs)
    except Exception as error:  # noqa: BLE001 - one broken kernel must not hide the others
        first_line = str(error).splitlines()[0][:120] if str(error) else ""
        row.problem = f"FAILED: {type(error).__name__}: {first_line}"
    return row


def build_rows(report, kernels, device: str, card: Card | None, timer=event_timer,
               jax_gpu: str | None = None) -> list[Row]:
    """One row per op x GPU column the crosscheck ran (``report``), with the kernel
    timings of :data:`KERNELS` entries merged into their op's row. ``jax_gpu``: why JAX
    cannot use the GPU (its kernel rows then say so instead of running)."""
    rows: dict[tuple[str, str], Row] = {}
    for op, op_cells in report.cells.items():
        for cell in op_cells:
            if cell.status == "—":
                continue
            text = cell.text() if cell.status != "n/a" else f"n/a: {cell.reason}"
            rows[op, cell.column] = Row(op, cell.column, text)
    for kernel in kernels:
        if kernel.column.startswith("jax") and jax_gpu:
            row = Row(kernel.op, kernel.column, "", kernel.shape, kernel.anchor, problem=jax_gpu)
        else:
            row = kernel_row(kernel, device, card, timer)
        existing = rows.get((kernel.op, kernel.column))
        row.crosscheck = existing.crosscheck if existing else "not run"
        rows[kernel.op, kernel.column] = row
    return list(rows.values())


def failed(rows: list[Row]) -> bool:
    return any(r.crosscheck.startswith("FAIL") or r.problem.startswith("FAILED") for r in rows)


# ----------------------------------------------------------------------------- running


def prerequisites() -> tuple[str | None, str, str | None]:
    """``(problem, device name, why JAX has no GPU or None)``: ``problem`` is None when
    torch sees a CUDA device and Triton imports."""
    try:
        import torch
    except ImportError as error:
        return f"torch does not import ({error})", "", None
    if not torch.cuda.is_available():
        return ("no CUDA GPU here (torch.cuda.is_available() is False); run it on a machine "
                "with one NVIDIA GPU"), "", None
    try:
        import triton  # noqa: F401
    except ImportError as error:
        return f"triton does not import ({error})", "", None
    name = torch.cuda.get_device_name(0)
    try:
        import jax

        jax_gpu = None if jax.devices("gpu") else "n/a: JAX sees no GPU"
    except (ImportError, RuntimeError) as error:
        jax_gpu = (f"n/a: JAX cannot use the GPU ({str(error).splitlines()[0][:80]}); "
                   "a CUDA jaxlib runs the Pallas kernels")
    return None, name, jax_gpu


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m crossconv.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=8,
                   help="random cases per crosscheck cell (default 8; boundary cases always run)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"Markdown file for the table (default {DEFAULT_OUT.relative_to(ROOT)})")
    p.add_argument("--skip-crosscheck", action="store_true", help="timings and determinism only")
    return p


def main(argv=None) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=220)
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    # cuBLAS is deterministic under torch.use_deterministic_algorithms only with this set
    # before its first use (the determinism column switches that mode on).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    problem, device_name, jax_gpu = prerequisites()
    if problem:
        console.print(f"gpu-check: {problem}.", highlight=False)
        return 2
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from .crosscheck import Report, crosscheck

    started = time.perf_counter()
    card = card_for(device_name)
    if args.skip_crosscheck:
        report = Report(list(GPU_COLUMNS), {}, 0, 0, "cuda")
    else:
        console.print(f"crosscheck --device cuda on {device_name} ...", highlight=False)
        report = crosscheck(examples=args.examples, backends=list(GPU_COLUMNS), device="cuda")
    rows = build_rows(report, KERNELS, "cuda", card, jax_gpu=jax_gpu)
    seconds = time.perf_counter() - started
    today = datetime.date.today().isoformat()
    import torch
    import triton

    command = " ".join(["python -m crossconv.gpu_check", *(sys.argv[1:] if argv is None else argv)])
    header = (f"GPU check on {device_name} ({card.name if card else 'peak numbers unknown'}), "
              f"{today}: torch {torch.__version__}, triton {triton.__version__}; "
              f"`{command.strip()}`, {seconds:.0f} s.")
    table = Table(title=header, title_justify="left")
    for column in COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(*cells(row))
    console.print(table)
    for note in NOTES:
        console.print(f"  - {note}", highlight=False)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(rows, header, NOTES))
    console.print(f"written to {args.out}", highlight=False)
    return 1 if failed(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
