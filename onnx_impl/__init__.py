"""ONNX backend of crossconv: every operation of the contract as an ONNX graph.

Each op takes and returns NumPy arrays (float32 or float64; the result has the input
dtype), builds its graph from standard ai.onnx ops (opset 22) and runs it with
onnxruntime (``runtime="onnxruntime"``, the default: the CPU, or the CUDA execution
provider when this onnxruntime has one) or with the ONNX reference evaluator
(``runtime="reference"``). Forward only. Graphs are cached per op, static arguments,
sizes but the batch, and dtype: the batch axis of every graph is dynamic.

:func:`model` returns the ``onnx.ModelProto`` a call runs, to inspect (Netron) or ship;
:func:`export` exports a torch model built from ``torch_impl`` with a dynamic batch,
translating crossconv's custom ops into the same graphs. See docs/onnx.md.
"""

from __future__ import annotations

import onnx

from .conv2_5d import conv2_5d, conv2_5d_plan
from .conv2d import (
    conv2d,
    conv2d_plan,
    xcorr2d,
    xcorr2d_depthwise,
    xcorr2d_depthwise_plan,
    xcorr2d_plan,
)
from .deform import deform_conv2d, deform_conv2d_plan
from .depthaware import (
    depthaware_avg_pool2d,
    depthaware_avg_pool2d_plan,
    depthaware_conv2d,
    depthaware_conv2d_plan,
)
from .pool import avg_pool2d, avg_pool2d_plan, max_pool2d, max_pool2d_plan
from .runtime import configure
from .tanprod import tanprod_conv2d, tanprod_conv2d_plan

_PLANS = {
    "conv2d": conv2d_plan,
    "xcorr2d": xcorr2d_plan,
    "xcorr2d_depthwise": xcorr2d_depthwise_plan,
    "tanprod_conv2d": tanprod_conv2d_plan,
    "conv2_5d": conv2_5d_plan,
    "deform_conv2d": deform_conv2d_plan,
    "max_pool2d": max_pool2d_plan,
    "avg_pool2d": avg_pool2d_plan,
    "depthaware_conv2d": depthaware_conv2d_plan,
    "depthaware_avg_pool2d": depthaware_avg_pool2d_plan,
}


def model(op: str, **call) -> onnx.ModelProto:
    """The model that ``onnx_impl.<op>(**call)`` runs (a copy: yours to modify or save).

    ``call`` holds the op's arguments by name, arrays included (their shapes, all but
    the batch, and dtype pick the graph; their values are not stored in it: every
    tensor argument is a graph input). The model passes
    ``onnx.checker.check_model(model, full_check=True)``::

        m = onnx_impl.model("deform_conv2d", input=x, offset=offset, weight=w, padding=1)
        onnx.save(m, "deform.onnx")
    """
    from .runtime import model as build

    if op not in _PLANS:
        raise ValueError(f"model: unknown op {op!r}; ops: {', '.join(_PLANS)}")
    spec, _ = _PLANS[op](**call)
    copy = onnx.ModelProto()
    copy.CopyFrom(build(spec))
    return copy


def export(*args, **kwargs):
    """See :func:`onnx_impl.torch_export.export` (imports torch)."""
    from .torch_export import export as export_model

    return export_model(*args, **kwargs)


__all__ = [
    "avg_pool2d",
    "configure",
    "conv2_5d",
    "conv2d",
    "deform_conv2d",
    "depthaware_avg_pool2d",
    "depthaware_conv2d",
    "export",
    "max_pool2d",
    "model",
    "tanprod_conv2d",
    "xcorr2d",
    "xcorr2d_depthwise",
]
