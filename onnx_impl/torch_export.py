"""Exporting torch models built from ``torch_impl`` to ONNX, with a dynamic batch.

:func:`export` wraps ``torch.onnx.export(..., dynamo=True)`` with a translation table
that maps crossconv's custom ops (``torch.ops.crossconv.*``) to onnx_impl's graphs: each
translation computes the same :class:`~onnx_impl.runtime.Spec` that the NumPy op would and
runs its ``build`` on the exporter's graph, so an exported op is node for node what
``onnx_impl`` runs (one definition of each graph). ``torch_impl``'s public functions call
each custom op through an ``autograd.Function``; ``torch.export`` records the op itself.

torch's own ops get onnx_impl's graphs where torch's translation departs from the
contract or from a dynamic batch:

- ``aten.avg_pool2d`` and ``aten.max_pool2d_with_indices``: onnxscript's translation of
  ``avg_pool2d`` drops ``divisor_override``, and ONNX's ``MaxPool`` never lets a NaN win
  and numbers its indices across the whole tensor;
- ``aten.conv2d``: onnxruntime has no float64 ``Conv`` (the composite graph runs it), and
  ``Conv``'s ``group`` is an attribute, so a group count read from the batch size (the
  per-sample correlations of ``torch_impl.xcorr2d``) becomes the correlation graph.

This is the one place where onnx_impl imports torch and torch_impl (lazily, here only);
torch_impl never imports onnx_impl.
"""

from __future__ import annotations

import functools
import itertools
import sys

import numpy as np

from reference.conv2_5d import conv2_5d_signature
from reference.conv2d import conv2d_signature
from reference.deform import deform_conv2d_signature
from reference.pool import avg_pool2d_signature, max_pool2d_signature
from reference.tanprod import tanprod_conv2d_signature

from . import graph as G
from .graph import OPSET
from .runtime import DTYPES

# sys.modules: the package's names conv2d, ... are the op functions, not these modules.
_conv2_5d = sys.modules[__package__ + ".conv2_5d"]
_deform = sys.modules[__package__ + ".deform"]
_depthaware = sys.modules[__package__ + ".depthaware"]
_pool = sys.modules[__package__ + ".pool"]
_tanprod = sys.modules[__package__ + ".tanprod"]
_conv2d = sys.modules[__package__ + ".conv2d"]

#: Numbers the names of subgraph values, unique in a model.
_SUBGRAPH_VALUES = itertools.count()


class TracedGraph:
    """The graph interface of :mod:`onnx_impl.graph` on the torch exporter's tracer: each
    ``op`` is an onnxscript opset-22 call, recorded as a node of the exported model;
    ``if_`` and ``loop`` record their subgraphs with a tracer of their own."""

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

    # ------------------------------------------------------------------ control flow
    # If and Loop nodes are made here and appended to the exporter's tracer: its recorder
    # of onnxscript calls gives a Loop its two optional inputs twice.

    def _unique(self, hint: str) -> str:
        return f"crossconv_{hint}_{next(_SUBGRAPH_VALUES)}"

    def _subgraph(self, name: str, inputs, build):
        """An ``ir.Graph`` of ``inputs`` whose nodes ``build(graph)`` records (it returns
        the output values). The nodes go to a tracer of their own, with constants of its
        own (a subgraph may read the parent's values, never the other way round), and
        their values get names unique in the model (the exporter names each graph's
        values from 0)."""
        import onnxscript
        from torch.onnx._internal.exporter._building import OpRecorder

        recorder = OpRecorder(self._ops, {})
        with onnxscript.evaluator.default_as(recorder):
            outputs = list(build(TracedGraph(self.dtype)))
            for k, value in enumerate(outputs):
                if value.producer() not in recorder.nodes:  # a graph output of its own
                    outputs[k] = self._ops.Identity(value)
        for node in recorder.nodes:
            for value in node.outputs:
                value.name = value.name or self._unique(name)
        return self._ir.Graph(inputs, outputs, nodes=recorder.nodes, name=name)

    def _node(self, op_type: str, inputs, like, **graphs):
        """A node of one output typed as ``like``, appended to the current tracer."""
        import onnxscript
        from torch.onnx._internal.exporter._tensors import SymbolicTensor

        output = SymbolicTensor(self._ops)
        output.type = like.type if like is not None else None
        attributes = [self._ir.AttrGraph(k, v) for k, v in graphs.items()]
        node = self._ir.Node("", op_type, inputs, attributes=attributes, outputs=[output])
        onnxscript.evaluator.default().nodes.append(node)
        return output

    def _input(self, hint: str, dtype) -> object:
        return self._ir.Value(name=self._unique(hint), shape=self._ir.Shape([]),
                              type=self._ir.TensorType(self._ir.DataType.from_numpy(
                                  np.dtype(dtype))))

    def if_(self, condition, then, otherwise, shape=None):
        """As :meth:`onnx_impl.graph.Graph.if_`."""
        branches = [self._subgraph(label, [], lambda b, build=build: [build(b)])
                    for label, build in (("then", then), ("else", otherwise))]
        return self._node("If", [condition], branches[0].outputs[0],
                          then_branch=branches[0], else_branch=branches[1])

    def loop(self, trips: int, initial, body, shape=None):
        """As :meth:`onnx_impl.graph.Graph.loop` (the condition given, for the same
        reason)."""
        iteration = self._input("iteration", np.int64)
        condition = self._input("condition", np.bool_)
        carried = self._ir.Value(name=self._unique("carried"), type=initial.type)

        def build(b):
            return [b.op("Identity", condition), body(b, iteration, carried)]

        graph = self._subgraph("loop", [iteration, condition, carried], build)
        return self._node("Loop", [self.const(trips, np.int64), self.const(True, np.bool_),
                                   initial], initial, body=graph)


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


def _is_static(value) -> bool:
    return all(isinstance(d, int) for d in tuple(value.shape)[1:])


def _translate_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                      **_):
    """onnx_impl's conv2d graph: one ``Conv`` in float32, composite in float64 (which
    onnxruntime's ``Conv`` lacks). A group count read from a size (the batch folded into
    the channels, as per-sample correlations do) becomes the per-sample correlation graph:
    ``Conv`` takes its ``group`` as a constant."""
    op = "conv2d"
    if not isinstance(groups, int):
        return _translate_groups_from_a_size(input, weight, bias, stride, padding, dilation,
                                             groups)
    dtype = np.dtype(input.dtype.numpy()).name
    static = _is_static(input) and _is_static(weight) and isinstance(weight.shape[0], int)
    if dtype not in DTYPES or not static:
        if dtype == "float64":
            raise ValueError(f"export of {op}: a float64 convolution needs static sizes "
                             f"except the batch, got input {tuple(input.shape)} and weight "
                             f"{tuple(weight.shape)}")
        # Other sizes dynamic, or another dtype: torch's own translation, one Conv.
        from onnxscript.function_libs.torch_lib.ops.core import aten_conv2d

        return aten_conv2d(input, weight, bias, stride, padding, dilation, groups)
    x = _static_shape(input, "input", op)
    sig = conv2d_signature(_one(x), tuple(weight.shape),
                           None if bias is None else tuple(bias.shape), _pair(stride),
                           _pair(padding), _pair(dilation), groups)
    spec = _conv2d.Conv2dSpec(dtype, x, tuple(weight.shape), bias is not None, sig.geometry,
                              sig.groups)
    return spec.build(TracedGraph(spec.dtype), input, weight, bias)[0]


def _translate_groups_from_a_size(input, weight, bias, stride, padding, dilation, groups):
    """``conv2d(input [1, G*Cg, H, W], weight [G*Og, Cg, kh, kw], groups=G)`` with ``G``
    a symbolic size: ``G*Og`` per-sample correlations (``xcorr2d``'s graph) of the input's
    group ``g`` with each of its ``Og`` filters, as ``[1, G*Og, oh, ow]``."""
    op = "conv2d"
    dims, w = tuple(input.shape), tuple(weight.shape)
    if (dims[0] != 1 or not all(isinstance(d, int) for d in (*dims[2:], *w[1:]))
            or _pair(stride) not in (1, (1, 1)) or _pair(dilation) not in (1, (1, 1))):
        raise ValueError(
            f"export of {op}: a group count read from a size is exported as per-sample "
            f"correlations, which need an input of batch 1 with static sizes but the "
            f"channels, static weight sizes but the first, stride 1 and dilation 1; got "
            f"input {dims}, weight {w}, stride {stride}, dilation {dilation}")
    dtype = _dtype(input, op)
    g = TracedGraph(dtype)
    top, left = padding if isinstance(padding, (list, tuple)) else (padding, padding)
    x = G.pad_spatial(g, input, (top, left), (top, left))
    group_in, height, width = w[1], dims[2] + 2 * top, dims[3] + 2 * left
    count = g.op("Reshape", groups, G.ints(g, [1]))
    filters = g.op("Shape", weight, start=0, end=1)  # G*Og
    per_group = g.op("Div", filters, count)
    search = G.reshape_to(g, x, g.op("Concat", count, G.ints(g, [1, group_in, height, width]),
                                     axis=0))
    search = g.op("Expand", search, g.op("Concat", count, per_group,
                                         G.ints(g, [group_in, height, width]), axis=0))
    search = G.reshape_to(g, search, g.op("Concat", filters,
                                          G.ints(g, [group_in, height, width]), axis=0))
    spec = _conv2d.XcorrSpec(dtype, (None, group_in, height, width), (None, *w[1:]), False)
    out = spec.build(g, search, weight)[0]  # [G*Og, 1, oh, ow]
    out = G.reshape_to(g, out, g.op("Concat", G.ints(g, [1]), filters,
                                    G.ints(g, spec.out_size), axis=0))
    return G.add_bias(g, out, bias)


def _translate_deform_conv2d(input, offset, weight, bias=None, mask=None, stride=1,
                             padding=0, dilation=1, **_):
    op = "deform_conv2d"
    x, off = _static_shape(input, "input", op), _static_shape(offset, "offset", op)
    m = _optional_shape(mask, "mask", op)
    sig = deform_conv2d_signature(_one(x), _one(off), tuple(weight.shape),
                                  None if bias is None else tuple(bias.shape), _pair(stride),
                                  _pair(padding), _pair(dilation), None if m is None else _one(m))
    spec = _deform.DeformSpec(_dtype(input, op), x, tuple(weight.shape), bias is not None,
                              mask is not None, sig.geometry, sig.groups, sig.offset_groups)
    return spec.build(TracedGraph(spec.dtype), input, offset, weight, bias, mask)[0]


def _translate_tanprod_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1,
                              **_):
    op = "tanprod_conv2d"
    x = _static_shape(input, "input", op)
    geometry = tanprod_conv2d_signature(_one(x), tuple(weight.shape),
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
    geometry = max_pool2d_signature(_one(x), _pair(kernel_size), _stride(stride), _pair(padding),
                                    _pair(dilation), bool(ceil_mode))
    spec = _pool.MaxPoolSpec(_dtype(input, op), x, geometry, with_indices)
    outputs = spec.build(TracedGraph(spec.dtype), input)
    return outputs if with_indices else outputs[0]


def _translate_avg_pool2d(input, kernel_size, stride=(), padding=0, ceil_mode=False,
                          count_include_pad=True, divisor_override=None, **_):
    op = "avg_pool2d"
    x = _static_shape(input, "input", op)
    geometry = avg_pool2d_signature(_one(x), _pair(kernel_size), _stride(stride), _pair(padding),
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
        ("aten", "conv2d"): _translate_conv2d,
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
        args: example inputs, a tuple of tensors (or of lists and tuples of them) whose
            first axis is the batch.
        kwargs: keyword inputs (not batched: passed as they are).
        dynamic_batch: export axis 0 of every tensor in ``args`` (but 0-d ones) as one
            dynamic batch size, and check that the exported model kept it dynamic
            (``ValueError`` if tracing fixed it, instead of returning a model that rejects
            other batch sizes).
        custom_translation_table: more translations; they override crossconv's.
        options: passed to ``torch.onnx.export`` (``opset_version`` must be >= 22 if given:
            the graphs use opset 22; ``dynamic_shapes`` only with ``dynamic_batch=False``).

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
    if dynamic_batch and "dynamic_shapes" in options:
        raise ValueError("export: dynamic_shapes replaces the dynamic batch; pass "
                         "dynamic_batch=False with it")
    table = {**translation_table(), **(custom_translation_table or {})}
    batched = [a for a in torch.utils._pytree.tree_leaves(args)
               if isinstance(a, torch.Tensor) and a.dim() > 0]
    if dynamic_batch:
        # By tensor, not by position: torch.export wants dynamic_shapes in the structure
        # of forward's signature (one entry for a ``*inputs`` parameter, ...).
        batch = torch.export.Dim("batch")
        shapes = torch.export.ShapesCollection()
        for tensor in batched:
            shapes[tensor] = {0: batch}
        options["dynamic_shapes"] = shapes.dynamic_shapes(model, args, kwargs)
    program = torch.onnx.export(model, args, kwargs=kwargs, dynamo=True,
                                custom_translation_table=table, opset_version=opset,
                                **{"verbose": False, **options})
    if dynamic_batch:
        _check_dynamic_batch(program, len(batched))
    return program


def _check_dynamic_batch(program, count: int) -> None:
    """The graph inputs of the ``count`` batched tensors (the first inputs: those of
    ``args``, then ``kwargs``) have a symbolic batch axis."""
    fixed = [f"{value.name} {tuple(value.shape)}" for value in program.model.graph.inputs[:count]
             if value.shape is not None and isinstance(value.shape[0], int)]
    if fixed:
        raise ValueError(
            f"export: the batch size was fixed while tracing (inputs {', '.join(fixed)}): some "
            f"code turned the symbolic batch size into a Python int (an int() or a comparison "
            f"on a size); the model would reject any other batch size")
