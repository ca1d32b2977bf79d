"""Building ONNX graphs: the one place that knows how nodes are made.

Every op's graph is written once, as a function of a :class:`Graph` (its ``op`` and
``const`` methods) and the graph values of its tensor arguments. Two kinds of graph run
those functions:

- :class:`Graph` builds a standalone ``onnx.ModelProto`` with ``onnx.helper`` (values are
  tensor names, constants are initializers); it is what ``onnx_impl``'s ops run.
- ``onnx_impl.export``'s graph records the same calls through the torch exporter's
  onnxscript tracer, so an exported torch_impl op becomes the very same nodes.

The helpers below (padding, the strided view of one kernel tap, reshapes that keep the
batch dynamic) are what the op files share. Only the batch axis is dynamic (``"N"``); every
other size is known when a graph is built, so loops over kernel taps are unrolled into
plain nodes and every shape is a constant.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: The ai.onnx opset of every graph: DeformConv needs 19, DFT's axis input 20.
OPSET = 22
#: The IR version that opset 22 came with (onnxruntime 1.31 reads up to 13).
IR_VERSION = 10
#: The dynamic batch axis of every graph input and output.
BATCH = "N"

ELEMENT_TYPES = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.bool_): TensorProto.BOOL,
}


def element_type(dtype) -> int:
    return ELEMENT_TYPES[np.dtype(dtype)]


def scalar_tensor(value, dtype) -> onnx.TensorProto:
    """A one-element tensor attribute (ConstantOfShape's ``value``)."""
    return helper.make_tensor("value", element_type(dtype), [1], [value])


class Graph:
    """An ONNX graph under construction with ``onnx.helper``.

    ``dtype`` is the floating dtype the graph computes in (its tensor arguments'); values
    are tensor names (str). :meth:`op` adds a node and returns its output name(s),
    :meth:`const` a constant (an initializer, shared by equal constants). Subgraphs (for
    ``If`` and ``Loop``) come from :meth:`subgraph` and read the parent's values by name.
    """

    def __init__(self, dtype, name: str = "crossconv", parent: Graph | None = None):
        self.dtype = np.dtype(dtype)
        self.name = name
        self._root = parent._root if parent is not None else self
        self._nodes: list[onnx.NodeProto] = []
        self._inputs: list[onnx.ValueInfoProto] = []
        self._outputs: list[onnx.ValueInfoProto] = []
        if parent is None:
            self._names = itertools.count()
            self._initializers: list[onnx.TensorProto] = []
            self._constants: dict[tuple, str] = {}

    # ------------------------------------------------------------------ values

    def _fresh(self, hint: str) -> str:
        return f"{hint}_{next(self._root._names)}"

    def input(self, name: str, shape: Sequence | None, dtype=None) -> str:
        """A graph input; ``shape`` uses :data:`BATCH` (or any str) for a dynamic axis."""
        self._inputs.append(helper.make_tensor_value_info(
            name, element_type(dtype or self.dtype), None if shape is None else list(shape)))
        return name

    def output(self, value: str, name: str, shape: Sequence | None, dtype=None) -> None:
        """Make ``value`` the graph output ``name`` (through an Identity when it is not)."""
        if value != name:
            self._nodes.append(helper.make_node("Identity", [value], [name]))
        self._outputs.append(helper.make_tensor_value_info(
            name, element_type(dtype or self.dtype), None if shape is None else list(shape)))

    def op(self, op_type: str, *inputs, outputs: int = 1, **attributes):
        """Add an ai.onnx node; None inputs are omitted optional inputs. Returns the output
        name, or a tuple of ``outputs`` names."""
        names = [self._fresh(op_type.lower()) for _ in range(outputs)]
        attributes = {k: v for k, v in attributes.items() if v is not None}
        self._nodes.append(helper.make_node(
            op_type, ["" if v is None else v for v in inputs], names,
            name=self._fresh(op_type), **attributes))
        return names[0] if outputs == 1 else tuple(names)

    def const(self, value, dtype=None) -> str:
        """A constant tensor (``dtype`` default: the graph's float dtype)."""
        array = np.asarray(value, dtype=dtype or self.dtype)
        root = self._root
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in root._constants:
            name = root._fresh("const")
            root._initializers.append(numpy_helper.from_array(array, name))
            root._constants[key] = name
        return root._constants[key]

    # ------------------------------------------------------------------ control flow

    def subgraph(self, name: str) -> Graph:
        return Graph(self.dtype, name, parent=self)

    def proto(self) -> onnx.GraphProto:
        initializers = self._initializers if self._root is self else []
        return helper.make_graph(self._nodes, self.name, self._inputs, self._outputs,
                                 initializer=initializers)

    def if_(self, condition: str, then: Callable[[Graph], str], otherwise: Callable[[Graph], str],
            shape: Sequence | None = None) -> str:
        """``If`` with one output: ``then(subgraph)`` and ``otherwise(subgraph)`` build the
        branches and return their output value."""
        branches = []
        for label, build in (("then", then), ("else", otherwise)):
            branch = self.subgraph(f"{self.name}_{label}")
            branch.output(build(branch), self._fresh(label), shape)
            branches.append(branch.proto())
        return self.op("If", condition, then_branch=branches[0], else_branch=branches[1])

    def loop(self, trips: int, initial: str, body: Callable[[Graph, str, str], str],
             shape: Sequence | None = None) -> str:
        """``Loop`` of ``trips`` iterations over one carried value: ``body(subgraph,
        iteration, carried)`` returns the next carried value (iteration: an int64 scalar)."""
        sub = self.subgraph(f"{self.name}_loop")
        iteration = sub.input(self._fresh("iteration"), [], np.int64)
        condition = sub.input(self._fresh("condition"), [], np.bool_)
        carried = sub.input(self._fresh("carried"), shape)
        sub.output(condition, self._fresh("condition_out"), [], np.bool_)
        sub.output(body(sub, iteration, carried), self._fresh("carried_out"), shape)
        # The condition is given although the trip count suffices: onnx.reference runs no
        # iteration at all when it is omitted.
        return self.op("Loop", self.const(trips, np.int64), self.const(True, np.bool_), initial,
                       body=sub.proto())

    # ------------------------------------------------------------------ the model

    def model(self) -> onnx.ModelProto:
        """The graph as a model of ai.onnx opset :data:`OPSET`."""
        return helper.make_model(self.proto(), opset_imports=[helper.make_opsetid("", OPSET)],
                                 ir_version=IR_VERSION, producer_name="crossconv.onnx_impl")


# ----------------------------------------------------------------------------- shared pieces
# Functions of any graph with ``op``/``const`` (a :class:`Graph` or the exporter's).


def ints(g, values) -> object:
    """An int64 1-D constant (shapes, axes, slice bounds)."""
    return g.const(np.asarray(values, dtype=np.int64).reshape(-1), np.int64)


def pad_spatial(g, x, before, after, value: float = 0.0, dtype=None):
    """``x [N, C, H, W]`` padded by ``before = (top, left)``, ``after = (bottom, right)``
    with ``value``, a constant of ``x``'s dtype (default: the graph's), as Pad requires."""
    (top, left), (bottom, right) = before, after
    if not (top or left or bottom or right):
        return x
    pads = ints(g, [0, 0, top, left, 0, 0, bottom, right])
    return g.op("Pad", x, pads, g.const(value, dtype))


def crop(g, x, rows: int, cols: int, top: int = 0, left: int = 0):
    """``x[:, :, top:top+rows, left:left+cols]``."""
    return g.op("Slice", x, ints(g, [top, left]), ints(g, [top + rows, left + cols]),
                ints(g, [2, 3]))


def tap(g, xpad, geometry, i: int, j: int):
    """What kernel tap ``(i, j)`` reads at every output position of the padded input:
    ``tap[n, c, y, x] == xpad[n, c, y*sh + i*dh, x*sw + j*dw]``, shape ``[N, C, oh, ow]``
    (a strided Slice: the input is never unfolded)."""
    (sh, sw), (dh, dw), (oh, ow) = geometry.stride, geometry.dilation, geometry.out_size
    starts = [i * dh, j * dw]
    ends = [i * dh + sh * (oh - 1) + 1, j * dw + sw * (ow - 1) + 1]
    return g.op("Slice", xpad, ints(g, starts), ints(g, ends), ints(g, [2, 3]),
                ints(g, [sh, sw]))


def pick(g, x, rows, cols, size):
    """``x[:, :, rows][:, :, :, cols]`` for constant int index arrays, ``x`` of spatial
    ``size = (H, W)``: a ``Gather`` per axis, none where the indices are the whole axis
    in order."""
    for axis, index, length in ((2, rows, size[0]), (3, cols, size[1])):
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if not np.array_equal(index, np.arange(length)):
            x = g.op("Gather", x, g.const(index, np.int64), axis=axis)
    return x


def reshape(g, x, shape):
    """Reshape keeping the batch: ``shape``'s 0 entries copy the input's size there (so an
    empty batch reshapes too, where -1 could not be resolved)."""
    return g.op("Reshape", x, ints(g, shape))


def batch_size(g, x):
    """``x``'s batch size as an int64 1-D tensor of one element."""
    return g.op("Shape", x, start=0, end=1)


def batch_last(g, x):
    """``[N, C, H, W] -> [C, N, H, W]``, the layout of the composite matrix products.

    With the batch inside the columns of one 2-D (or equal-batch 3-D) ``MatMul`` per tap,
    nothing is broadcast over the batch axis: onnxruntime's MatMul refuses to broadcast
    a size-1 axis against an empty batch."""
    return g.op("Transpose", x, perm=[1, 0, 2, 3])


def merge_batch(g, x, leading, batch, positions: int):
    """``x [..., N, oh, ow]`` (leading sizes ``leading``) as ``[*leading, N*oh*ow]``; the
    shape is computed from ``batch`` since -1 cannot be resolved for an empty batch."""
    columns = g.op("Mul", batch, ints(g, [positions]))
    return reshape_to(g, x, g.op("Concat", ints(g, leading), columns, axis=0))


def batch_first(g, x, channels: int, batch, out_size):
    """``[..., N*oh*ow]`` holding ``channels`` rows back to ``[N, channels, oh, ow]``."""
    shape = g.op("Concat", ints(g, [channels]), batch, ints(g, out_size), axis=0)
    return g.op("Transpose", reshape_to(g, x, shape), perm=[1, 0, 2, 3])


def reshape_to(g, x, shape):
    """Reshape to a computed ``shape`` whose zeros are sizes (``allowzero``: an empty batch
    is 0, which would otherwise mean "copy the input's size here")."""
    return g.op("Reshape", x, shape, allowzero=1)


def add_bias(g, out, bias):
    """``out + bias[None, :, None, None]`` (bias None: ``out``)."""
    if bias is None:
        return out
    return g.op("Add", out, g.op("Unsqueeze", bias, ints(g, [0, 2, 3])))


def accumulate(g, total, term, how: str = "Add"):
    """``total + term`` (or another binary op), starting from ``term`` when ``total`` is
    None: running sums and products without a materialised stack of terms."""
    return term if total is None else g.op(how, total, term)
