"""Exporting torch models built from ``torch_impl`` to ONNX, with a dynamic batch.

:func:`export` wraps ``torch.onnx.export(..., dynamo=True)`` with a translation table
that maps crossconv's custom ops (``torch.ops.crossconv.*``) to onnx_impl's graphs: each
translation computes the same :class:`~onnx_impl.runtime.Spec` that the NumPy op would and
runs its ``build`` on the exporter's graph, so an exported op is node for node what
``onnx_impl`` runs (one definition of each graph). ``aten.avg_pool2d`` and
``aten.max_pool2d_with_indices`` get onnx_impl's pooling graphs too: onnxscript's
translation of ``avg_pool2d`` drops ``divisor_override``, and ONNX's ``MaxPool`` never lets
a NaN win and numbers its indices across the whole tensor.

This is the one place where onnx_impl imports torch and torch_impl (lazily, here only);
torch_impl never imports onnx_impl.
"""

from __future__ import annotations

import functools
import sys

import numpy as np

from reference.common import (
    avg_pool_signature,
    conv2_5d_signature,
    deform_signature,
    max_pool_signature,
    tanprod_signature,
)

from .graph import OPSET
from .runtime import DTYPES

# sys.modules: the package's names conv2d, ... are the op functions, not these modules.
_conv2_5d = sys.modules[__package__ + ".conv2_5d"]
_deform = sys.modules[__package__ + ".deform"]
_depthaware = sys.modules[__package__ + ".depthaware"]
_pool = sys.modules[__package__ + ".pool"]
_tanprod = sys.modules[__package__ + ".tanprod"]


class TracedGraph:
    """The graph interface of :mod:`onnx_impl.graph` on the torch exporter's tracer: each
    ``op`` is an onnxscript opset-22 call, recorded as a node of the exported model."""

    def __init__(self, dtype):
        import onnxscript
        from onnxscript import ir

        self.dtype = np.dtype(dtype)
        self._ops = onnxscript.values.Opset("", OPSET)
        self._ir = ir

    def op(self, op_type: str, *inputs, outputs: int = 1, **attributes):
        attributes = {k: v for k, v in attributes.items() if v is not None}
        return getattr(self._ops, op_type)(*inputs, **attributes)

    def const(self, value, dtype=None):
        array = np.asarray(value, dtype=dtype or self.dtype)
        return self._ops.Constant(value=self._ir.tensor(array))


# ----------------------------------------------------------------------------- translations


def _static_shape(value, name: str, op: str) -> tuple:
    """The value's shape with the batch as None; every other size must be static."""
    dims = tuple(value.shape)
    rest = dims[1:]
    if not all(isinstance(d, int) for d in rest):
        raise ValueError(f"export of {op}: {name} must have static sizes except the batch, "
                         f"got shape {dims}")
    return (None, *rest)


def _dtype(value, op: str) -> str:
    dtype = np.dtype(value.dtype.numpy()).name
    if dtype not in DTYPES:
        raise TypeError(f"export of {op}: onnx_impl's graphs are float32 or float64, got "
                        f"{dtype}; cast the model first")
    return dtype


def _one(shape) -> tuple:
    """A checkable shape: the batch as 1."""
    return (1, *shape[1:])


def _optional_shape(value, name, op):
    return None if value is None else _static_shape(value, name, op)


def _pair(value):
    return value if isinstance(value, int) else tuple(int(v) for v in value)


def _translate_deform_conv2d(input, offset, weight, bias=None, mask=None, stride=1,
                             padding=0, dilation=1, **_):
    op = "deform_conv2d"
    x, off = _static_shape(input, "input", op), _static_shape(offset, "offset", op)
    m = _optional_shape(mask, "mask", op)
    sig = deform_signature(_one(x), _one(off), tuple(weight.shape),
                           None if bias is None else tuple(bias.shape), _pair(stride),
                           _pair(padding), _pair(dilation), None if m is None else _one(m))
    spec = _deform.DeformSpec(_dtype(input, op), x, tuple(weight.shape), bias is not None,
                              mask is not None, sig.geometry, sig.groups, sig.offset_groups)
    return spec.build(TracedGraph(spec.dtype), input, offset, weight, bias, mask)[0]


def _translate_tanprod_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1,
                              **_):
    op = "tanprod_conv2d"
    x = _static_shape(input, "input", op)
    geometry = tanprod_signature(_one(x), tuple(weight.shape),
                                 None if bias is None else tuple(bias.shape), _pair(stride),
                                 _pair(padding), _pair(dilation)).geometry
    spec = _tanprod.TanprodSpec(_dtype(input, op), x, tuple(weight.shape), bias is not None,
                                geometry)
    return spec.build(TracedGraph(spec.dtype), input, weight, bias)[0]


def _translate_conv2_5d(input, depth, weight, bias=None, stride=1, padding=0, dilation=1,
                        focal=1.0, pixel_size=1.0, **_):
    op = "conv2_5d"
    x = _static_shape(input, "input", op)
    sig = conv2_5d_signature(_one(x), _one(_static_shape(depth, "depth", op)),
                             tuple(weight.shape), None if bias is None else tuple(bias.shape),
                             _pair(stride), _pair(padding), _pair(dilation), float(focal),
                             float(pixel_size))
    spec = _conv2_5d.Conv2_5dSpec(_dtype(input, op), x, tuple(weight.shape), bias is not None,
                                  sig.geometry, sig.focal, sig.pixel_size)
    return spec.build(TracedGraph(spec.dtype), input, depth, weight, bias)[0]


def _stride(stride):
    return None if stride is None or len(stride) == 0 else _pair(stride)


def _translate_max_pool2d(input, kernel_size, stride=(), padding=0, dilation=1,
                          ceil_mode=False, with_indices=True, **_):
    op = "max_pool2d"
    x = _static_shape(input, "input", op)
    geometry = max_pool_signature(_one(x), _pair(kernel_size), _stride(stride), _pair(padding),
                                  _pair(dilation), bool(ceil_mode))
    spec = _pool.MaxPoolSpec(_dtype(input, op), x, geometry, with_indices)
    outputs = spec.build(TracedGraph(spec.dtype), input)
    return outputs if with_indices else outputs[0]


def _translate_avg_pool2d(input, kernel_size, stride=(), padding=0, ceil_mode=False,
                          count_include_pad=True, divisor_override=None, **_):
    op = "avg_pool2d"
    x = _static_shape(input, "input", op)
    geometry = avg_pool_signature(_one(x), _pair(kernel_size), _stride(stride), _pair(padding),
                                  bool(ceil_mode), bool(count_include_pad), divisor_override)
    spec = _pool.AvgPoolSpec(_dtype(input, op), x, geometry, bool(count_include_pad),
                             None if divisor_override is None else int(divisor_override))
    return spec.build(TracedGraph(spec.dtype), input)[0]


def _bias_shape(bias):
    return None if bias is None else tuple(bias.shape)


def _translate_depthaware_conv2d(input, depth, weight, bias=None, stride=1, padding=0,
                                 dilation=1, alpha=1.0, **_):
    op = "depthaware_conv2d"
    spec = _depthaware.conv_spec(_dtype(input, op), _static_shape(input, "input", op),
                                 _static_shape(depth, "depth", op), tuple(weight.shape),
                                 _bias_shape(bias), _pair(stride), _pair(padding),
                                 _pair(dilation), float(alpha))
    return spec.build(TracedGraph(spec.dtype), input, depth, weight, bias)[0]


def _translate_depthaware_avg_pool2d(input, depth, kernel_size, stride=(), padding=0,
                                     alpha=1.0, count_include_pad=True, **_):
    op = "depthaware_avg_pool2d"
    spec = _depthaware.pool_spec(_dtype(input, op), _static_shape(input, "input", op),
                                 _static_shape(depth, "depth", op), _pair(kernel_size),
                                 _stride(stride), _pair(padding), float(alpha),
                                 bool(count_include_pad))
    return spec.build(TracedGraph(spec.dtype), input, depth)[0]


def _by_schema(overload, translate):
    """``translate`` called with the op's arguments by name (positional ones named from the
    op's schema), so it does not depend on their order."""
    names = [argument.name for argument in overload._schema.arguments]

    def translation(*args, **kwargs):
        named = dict(zip(names, args))
        if "self" in named:  # aten's name for the input
            named["input"] = named.pop("self")
        return translate(**named, **kwargs)

    return translation


def translation_table() -> dict:
    """``{torch op overload: ONNX translation}`` for ``torch.onnx.export``'s
    ``custom_translation_table``: crossconv's custom ops (those that exist) and torch's
    pooling."""
    import torch

    import torch_impl  # noqa: F401 - registers torch.ops.crossconv.*

    wanted = {
        ("crossconv", "deform_conv2d"): _translate_deform_conv2d,
        ("crossconv", "tanprod_conv2d"): _translate_tanprod_conv2d,
        ("crossconv", "conv2_5d"): _translate_conv2_5d,
        ("crossconv", "max_pool2d"): _translate_max_pool2d,
        ("crossconv", "avg_pool2d"): _translate_avg_pool2d,
        ("crossconv", "depthaware_conv2d"): _translate_depthaware_conv2d,
        ("crossconv", "depthaware_avg_pool2d"): _translate_depthaware_avg_pool2d,
        ("aten", "max_pool2d_with_indices"): _translate_max_pool2d,
        ("aten", "max_pool2d"): functools.partial(_translate_max_pool2d, with_indices=False),
        ("aten", "avg_pool2d"): _translate_avg_pool2d,
    }
    table = {}
    for (namespace, name), translate in wanted.items():
        packet = getattr(getattr(torch.ops, namespace), name, None)
        if packet is None:
            continue
        overload = packet.default
        table[overload] = _by_schema(overload, translate)
    return table


# ----------------------------------------------------------------------------- export


def export(model, args: tuple, kwargs: dict | None = None, *, dynamic_batch: bool = True,
           custom_translation_table: dict | None = None, **options):
    """``torch.onnx.export(model, args, dynamo=True)`` with crossconv's translations.

    Args:
        model: a ``torch.nn.Module`` (e.g. built from ``torch_impl.nn`` modules and torch's
            own layers); weights are its parameters and buffers.
        args: example inputs, a tuple of tensors whose first axis is the batch.
        kwargs: keyword inputs (not batched: passed as they are).
        dynamic_batch: export axis 0 of every tensor in ``args`` as one dynamic batch size,
            and check that the exported model kept it dynamic (``ValueError`` if tracing
            fixed it, instead of returning a model that rejects other batch sizes).
        custom_translation_table: more translations; they override crossconv's.
        options: passed to ``torch.onnx.export`` (``opset_version`` must be >= 22 if given:
            the graphs use opset 22).

    Returns:
        The ``torch.onnx.ONNXProgram``; ``.model_proto`` is the ``onnx.ModelProto``,
        ``.save(path)`` writes it.
    """
    import torch

    if not isinstance(args, tuple):
        raise TypeError(f"export: args must be a tuple of example inputs, got "
                        f"{type(args).__name__}")
    opset = options.pop("opset_version", OPSET)
    if opset < OPSET:
        raise ValueError(f"export: opset_version must be >= {OPSET} (DeformConv, the graphs' "
                         f"opset), got {opset}")
    table = {**translation_table(), **(custom_translation_table or {})}
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch")
        dynamic_shapes = tuple({0: batch} if isinstance(a, torch.Tensor) else None for a in args)
    program = torch.onnx.export(model, args, kwargs=kwargs, dynamo=True,
                                dynamic_shapes=dynamic_shapes, custom_translation_table=table,
                                opset_version=opset, **{"verbose": False, **options})
    if dynamic_batch:
        _check_dynamic_batch(program, args)
    return program


def _check_dynamic_batch(program, args) -> None:
    """Every graph input that stands for a tensor of ``args`` has a symbolic batch axis."""
    fixed = [f"{value.name} {tuple(value.shape)}" for value in program.model.graph.inputs
             if value.shape is not None and len(value.shape) and isinstance(value.shape[0], int)]
    if fixed:
        raise ValueError(
            f"export: the batch size was fixed while tracing (inputs {', '.join(fixed)}): some "
            f"code turned the symbolic batch size into a Python int (an int() or a comparison "
            f"on a size); the model would reject any other batch size")
