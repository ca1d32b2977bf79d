"""onnxruntime's DeformConv forward against torchvision and torch_impl (CPU, float32).

deform_conv2d forward at N=8, C=O=64, 56x56, 3x3, padding 1, one offset group, with mask,
four ways in one process, timed round-robin:

- ``DeformConv``: a one-node ONNX graph run by onnxruntime, what an exporter emits;
- ``onnx_impl``: onnx_impl.deform_conv2d's graph, that node with the nodes around it that
  make it follow the definition (NaN offsets, samples off the image; see docs/onnx.md),
  so the difference is their cost;
- ``torchvision.ops.deform_conv2d`` and ``torch_impl.deform_conv2d`` under ``no_grad``.

Each framework gets 2 threads (onnxruntime: 2 intra-op threads per session, no spinning;
torch: ``torch.set_num_threads(2)``). A second table repeats the comparison on one thread
in process CPU time, which a busy shared machine disturbs far less than wall time.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from crossconv.bench import Section, ratio, seconds, side_by_side

TITLE = "ONNX backend (onnxruntime's DeformConv) against torchvision and torch_impl"
THREADS = 2
SHAPE = "N=8, C=O=64, 56x56, 3x3, padding 1, one offset group, with mask, float32"


def deform_inputs(seed=0):
    rng = np.random.default_rng(seed)
    n, c, o, size = 8, 64, 64, 56
    x = rng.standard_normal((n, c, size, size), dtype=np.float32)
    offset = rng.uniform(-1, 1, (n, 18, size, size)).astype(np.float32)
    mask = rng.uniform(0, 1, (n, 9, size, size)).astype(np.float32)
    weight = (rng.standard_normal((o, c, 3, 3)) / 24).astype(np.float32)
    return x, offset, weight, mask


def _deform_conv_session(shapes, threads):
    """A session running one DeformConv node (padding 1) with ``threads`` threads."""
    import onnxruntime
    from onnx import TensorProto, helper

    names = ("X", "offset", "W", "mask")
    node = helper.make_node("DeformConv", ["X", "W", "offset", "", "mask"], ["Y"],
                            kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node], "deform",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in zip(names, shapes)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    return lambda *arrays: session.run(None, dict(zip(names, arrays)))


def _candidates(threads):
    import torch
    import torchvision

    import onnx_impl
    import torch_impl

    torch.set_num_threads(threads)
    onnx_impl.configure(threads=threads)
    x, offset, weight, mask = deform_inputs()
    deform_conv = _deform_conv_session([a.shape for a in (x, offset, weight, mask)], threads)
    tx, toff, tw, tm = (torch.from_numpy(a) for a in (x, offset, weight, mask))

    def torch_call(fn):
        def run():
            with torch.no_grad():
                return fn(tx, toff, tw, padding=1, mask=tm).numpy()

        return run

    return {
        "DeformConv": lambda: deform_conv(x, offset, weight, mask)[0],
        "onnx_impl": lambda: onnx_impl.deform_conv2d(x, offset, weight, padding=1, mask=mask),
        "torchvision": torch_call(torchvision.ops.deform_conv2d),
        "torch_impl": torch_call(torch_impl.deform_conv2d),
    }


def _disagreement(candidates) -> float:
    """The largest difference between any candidate's output and torchvision's."""
    outputs = {name: np.asarray(fn()) for name, fn in candidates.items()}
    return max(float(np.abs(out - outputs["torchvision"]).max()) for out in outputs.values())


def cpu_side_by_side(candidates, repeats, warmup=1):
    """As :func:`crossconv.bench.side_by_side`, in this process's CPU time."""
    times = {name: [] for name in candidates}
    for round_ in range(warmup + repeats):
        for name, fn in candidates.items():
            start = time.process_time()
            fn()
            if round_ >= warmup:
                times[name].append(time.process_time() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _section(title, times, note):
    section = Section(title, ["candidate", "forward", "candidate / DeformConv"])
    for name, t in times.items():
        section.rows.append([name, seconds(t), ratio(t, times["DeformConv"])])
    section.notes.append(note)
    return section


def sections(repeats):
    import onnx_impl

    try:
        candidates = _candidates(THREADS)
        differ = _disagreement(candidates)
        wall = side_by_side(candidates, repeats)
        cpu = cpu_side_by_side(_candidates(1), repeats)
    finally:
        onnx_impl.configure(threads=None)
    return [
        _section(f"deform_conv2d forward, {SHAPE}", wall,
                 f"offsets uniform in [-1, 1), mask uniform in [0, 1); {THREADS} threads each; "
                 f"medians of {repeats} round-robin rounds of wall time; the four outputs "
                 f"agree to {differ:.1e} (max abs difference)"),
        _section("The same on one thread, in process CPU time", cpu,
                 "same inputs; CPU time counts only this process's own work, so it holds on a "
                 "busy machine"),
    ]
