"""The fuzz's calls, as data: one valid base call per op, tables of hostile values per
argument kind, and the calls built from them (each base call with one argument replaced,
plus the data cases: empty batches, NaN and inf in every tensor, huge windows).

A call never holds a live tensor: tensor arguments are specs (:class:`T`, :class:`AsList`,
:class:`Foreign`), built in the child process by the backend under test, so the same call
runs against every backend and can be printed and replayed.

Each hostile value says what must happen (``expect``):

- ``"error"``: an invalid call. Every backend, the reference included, raises
  ``ValueError``/``TypeError`` (``MemoryError`` for a call too large for memory) whose
  message names the argument.
- ``"ok"``: a valid call. Every backend returns the reference's result.
- ``"same"``: whatever the reference does (a result, or a clear error), every backend does.
- ``"any"``: backends may differ (a float16 tensor: the reference takes float32/float64
  only, torch and JAX compute it in float32); only crashes, hangs and unclear errors fail.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field, replace

import numpy as np

# ----------------------------------------------------------------------------- values


@dataclass(frozen=True)
class T:
    """A tensor argument: ``shape``, values uniform in ``centre +- scale`` (seeded by the
    argument's name), ``dtype``, and non-finite values planted at flat indices."""

    shape: tuple
    scale: float = 1.0
    centre: float = 0.0
    dtype: str = "float64"
    nonfinite: tuple = ()  # ((flat index, value), ...), indices modulo the size

    def array(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        values = np.asarray(self.centre + self.scale * rng.uniform(-1.0, 1.0, self.shape))
        flat = values.reshape(-1)
        for index, value in self.nonfinite:
            if flat.size:
                flat[index % flat.size] = value
        if self.dtype == "bool":
            return values > self.centre
        if self.dtype.startswith("int"):
            return np.round(values).astype(self.dtype)
        return values.astype(self.dtype)


@dataclass(frozen=True)
class AsList:
    """The tensor ``T(shape)`` as nested Python lists."""

    shape: tuple


@dataclass(frozen=True)
class Foreign:
    """A tensor of ``shape`` from another framework than the backend's."""

    shape: tuple


def is_spec(value) -> bool:
    return isinstance(value, (T, AsList, Foreign))


@dataclass(frozen=True)
class Hostile:
    label: str
    value: object
    expect: str  # "error", "ok", "same" or "any"


NAN, INF = float("nan"), float("inf")

# ----------------------------------------------------------------------------- the ops


@dataclass(frozen=True)
class Op:
    """A valid base call: tensors in signature order, then the other arguments with the
    kind of hostile values each gets."""

    name: str
    tensors: dict
    params: dict  # name -> (kind, valid value)
    differentiable: tuple
    batch_args: tuple = ("input",)  # tensors whose axis 0 is the batch

    def base(self) -> dict:
        return {**self.tensors, **{k: v for k, (_, v) in self.params.items()}}


OPS = {
    op.name: op
    for op in [
        Op("conv2d",
           {"input": T((2, 4, 6, 5)), "weight": T((6, 4, 3, 3), 0.5), "bias": T((6,))},
           {"stride": ("stride", 1), "padding": ("conv_padding", 1), "dilation": ("dilation", 1),
            "groups": ("groups", 1)},
           ("input", "weight", "bias")),
        Op("xcorr2d", {"search": T((2, 3, 7, 6)), "template": T((2, 3, 3, 2))}, {},
           ("search", "template"), ("search", "template")),
        Op("xcorr2d_depthwise", {"search": T((2, 3, 7, 6)), "template": T((2, 3, 3, 2))}, {},
           ("search", "template"), ("search", "template")),
        Op("tanprod_conv2d",
           {"input": T((2, 2, 5, 5), 0.3), "weight": T((3, 2, 3, 3), 0.3), "bias": T((3,))},
           {"stride": ("stride", 1), "padding": ("padding", 1), "dilation": ("dilation", 1)},
           ("input", "weight", "bias")),
        Op("conv2_5d",
           {"input": T((2, 2, 5, 5)), "depth": T((2, 1, 5, 5), 0.3, 1.0),
            "weight": T((3, 3, 2, 3, 3), 0.5), "bias": T((3,))},
           {"stride": ("stride", 1), "padding": ("padding", 1), "dilation": ("dilation", 1),
            "focal": ("positive_float", 2.0), "pixel_size": ("positive_float", 0.5)},
           ("input", "weight", "bias"), ("input", "depth")),
        Op("deform_conv2d",
           {"input": T((2, 4, 5, 5)), "offset": T((2, 36, 5, 5), 1.5),
            "weight": T((6, 2, 3, 3), 0.5), "bias": T((6,)),
            "mask": T((2, 18, 5, 5), 0.5, 0.5)},
           {"stride": ("stride", 1), "padding": ("padding", 1), "dilation": ("dilation", 1)},
           ("input", "offset", "weight", "bias", "mask"), ("input", "offset", "mask")),
        Op("max_pool2d", {"input": T((2, 3, 6, 5))},
           {"kernel_size": ("kernel_size", 3), "stride": ("pool_stride", 2),
            "padding": ("padding", 1), "dilation": ("dilation", 1), "ceil_mode": ("flag", True),
            "return_indices": ("flag", False)},
           ("input",)),
        Op("avg_pool2d", {"input": T((2, 3, 6, 5))},
           {"kernel_size": ("kernel_size", 3), "stride": ("pool_stride", 2),
            "padding": ("padding", 1), "ceil_mode": ("flag", False),
            "count_include_pad": ("flag", True), "divisor_override": ("divisor", None)},
           ("input",)),
        Op("depthaware_conv2d",
           {"input": T((2, 3, 5, 5)), "depth": T((2, 1, 5, 5), 0.5, 1.0),
            "weight": T((4, 3, 3, 3), 0.5), "bias": T((4,))},
           {"stride": ("stride", 1), "padding": ("padding", 1), "dilation": ("dilation", 1),
            "alpha": ("alpha", 1.5)},
           ("input", "depth", "weight", "bias"), ("input", "depth")),
        Op("depthaware_avg_pool2d", {"input": T((2, 3, 6, 5)), "depth": T((2, 1, 6, 5), 0.5, 1.0)},
           {"kernel_size": ("kernel_size", 3), "stride": ("pool_stride", 2),
            "padding": ("padding", 1), "alpha": ("alpha", 1.5),
            "count_include_pad": ("flag", True)},
           ("input", "depth"), ("input", "depth")),
    ]
}
#: The pooling ops (a kernel_size, padding at most half of it).
POOLS = ("max_pool2d", "avg_pool2d", "depthaware_avg_pool2d")

OPTIONAL = ("bias", "mask")

# ----------------------------------------------------------------------------- hostile values

#: What no integer argument accepts, whatever its kind.
_NOT_INTS = [
    Hostile("True", True, "error"), Hostile("False", False, "error"),
    Hostile("1.5", 1.5, "error"), Hostile("nan", NAN, "error"), Hostile("inf", INF, "error"),
    Hostile("'1'", "1", "error"), Hostile("b'1'", b"1", "error"),
    Hostile("1+0j", 1 + 0j, "error"), Hostile("np.float64(1)", np.float64(1.0), "error"),
    Hostile("np.array([1, 1])", np.array([1, 1]), "error"), Hostile("{'h': 1}", {"h": 1}, "error"),
    Hostile("(1, 2, 3)", (1, 2, 3), "error"), Hostile("[1, True]", [1, True], "error"),
    Hostile("(1, '2')", (1, "2"), "error"), Hostile("((1,), 1)", ((1,), 1), "error"),
    Hostile("np.bool_(True)", np.bool_(True), "error"),
]
#: Integers too large for any argument (one axis must fit 32-bit indices).
_HUGE = [
    Hostile("2**31", 2**31, "error"), Hostile("2**63-1", 2**63 - 1, "error"),
    Hostile("2**63", 2**63, "error"), Hostile("2**64", 2**64, "error"),
    Hostile("10**100", 10**100, "error"), Hostile("np.uint64(2**64-1)", np.uint64(2**64 - 1), "error"),
    Hostile("(1, 2**63-1)", (1, 2**63 - 1), "error"),
]
_NEGATIVE = [Hostile("-1", -1, "error"), Hostile("-2**63", -(2**63), "error"),
             Hostile("(1, -1)", (1, -1), "error"), Hostile("-10**100", -(10**100), "error")]
_POSITIVE_PAIR = [Hostile("0", 0, "error"), Hostile("(0, 1)", (0, 1), "error"),
                  Hostile("None", None, "error"), Hostile("()", (), "error"),
                  Hostile("[]", [], "error"), Hostile("np.int64(2)", np.int64(2), "same"),
                  Hostile("(2,)", (2,), "same"), Hostile("[1, 2]", [1, 2], "same"),
                  Hostile("2**31-1", 2**31 - 1, "same")]

HOSTILE = {
    "stride": _NOT_INTS + _HUGE + _NEGATIVE + _POSITIVE_PAIR,
    "dilation": _NOT_INTS + _HUGE + _NEGATIVE + _POSITIVE_PAIR,
    "kernel_size": _NOT_INTS + _HUGE + _NEGATIVE + _POSITIVE_PAIR,
    "pool_stride": _NOT_INTS + _HUGE + _NEGATIVE + [
        Hostile("0", 0, "error"), Hostile("None", None, "ok"), Hostile("()", (), "ok"),
        Hostile("[]", [], "ok"), Hostile("np.int64(1)", np.int64(1), "ok"),
        Hostile("2**31-1", 2**31 - 1, "same")],
    "padding": _NOT_INTS + _HUGE + _NEGATIVE + [
        Hostile("None", None, "error"), Hostile("()", (), "error"), Hostile("'same'", "same", "same"),
        Hostile("0", 0, "ok"), Hostile("np.int64(1)", np.int64(1), "ok"), Hostile("[1]", [1], "ok"),
        Hostile("10**9", 10**9, "error"), Hostile("2**17", 2**17, "error"),
        Hostile("2**31-1", 2**31 - 1, "error"), Hostile("(2**30, 0)", (2**30, 0), "same")],
    "conv_padding": _NOT_INTS + _HUGE + _NEGATIVE + [
        Hostile("None", None, "error"), Hostile("()", (), "error"), Hostile("'same'", "same", "ok"),
        Hostile("'valid'", "valid", "ok"), Hostile("'full'", "full", "error"),
        Hostile("'SAME'", "SAME", "error"), Hostile("''", "", "error"),
        Hostile("0", 0, "ok"), Hostile("np.int64(1)", np.int64(1), "ok"), Hostile("[1]", [1], "ok"),
        Hostile("10**9", 10**9, "error"), Hostile("2**17", 2**17, "error"),
        Hostile("2**31-1", 2**31 - 1, "error"), Hostile("(2**30, 0)", (2**30, 0), "error")],
    "groups": [h for h in _NOT_INTS + _HUGE if not isinstance(h.value, (tuple, list))] + [
        Hostile("0", 0, "error"), Hostile("-1", -1, "error"), Hostile("None", None, "error"),
        Hostile("(1,)", (1,), "error"), Hostile("3", 3, "error"), Hostile("2", 2, "error"),
        Hostile("np.int64(1)", np.int64(1), "ok")],
    "divisor": [h for h in _NOT_INTS + _HUGE if not isinstance(h.value, (tuple, list))] + [
        Hostile("0", 0, "error"), Hostile("-2**31", -(2**31), "error"),
        Hostile("(2,)", (2,), "error"), Hostile("np.int64(3)", np.int64(3), "ok"),
        Hostile("-3", -3, "same"), Hostile("2**31-1", 2**31 - 1, "same")],
    "flag": [Hostile("0", 0, "error"), Hostile("1", 1, "error"), Hostile("None", None, "error"),
             Hostile("'True'", "True", "error"), Hostile("1.0", 1.0, "error"),
             Hostile("[True]", [True], "error"), Hostile("np.bool_(True)", np.bool_(True), "ok"),
             Hostile("np.bool_(False)", np.bool_(False), "ok")],
    "positive_float": [
        Hostile("0.0", 0.0, "error"), Hostile("-1.0", -1.0, "error"), Hostile("nan", NAN, "error"),
        Hostile("inf", INF, "error"), Hostile("-inf", -INF, "error"), Hostile("True", True, "error"),
        Hostile("'1.0'", "1.0", "error"), Hostile("None", None, "error"),
        Hostile("10**400", 10**400, "error"), Hostile("[1.0]", [1.0], "error"),
        Hostile("1+0j", 1 + 0j, "error"), Hostile("np.float32(2)", np.float32(2.0), "ok"),
        Hostile("3", 3, "ok"), Hostile("1e-300", 1e-300, "same"), Hostile("1e300", 1e300, "same")],
    "alpha": [  # finite and >= 0: 0 turns depth off
        Hostile("-1.0", -1.0, "error"), Hostile("-1e-300", -1e-300, "error"),
        Hostile("nan", NAN, "error"), Hostile("inf", INF, "error"), Hostile("-inf", -INF, "error"),
        Hostile("True", True, "error"), Hostile("'1.0'", "1.0", "error"),
        Hostile("None", None, "error"), Hostile("10**400", 10**400, "error"),
        Hostile("[1.0]", [1.0], "error"), Hostile("1+0j", 1 + 0j, "error"),
        Hostile("0.0", 0.0, "ok"), Hostile("-0.0", -0.0, "ok"), Hostile("0", 0, "ok"),
        Hostile("np.float32(2)", np.float32(2.0), "ok"), Hostile("3", 3, "ok"),
        Hostile("1e-300", 1e-300, "same"), Hostile("1e300", 1e300, "same")],
}

#: Backends' implementation switch (not the reference's): torch's and JAX's ``impl``,
#: onnx_impl's ``runtime``.
HOSTILE_IMPL = [Hostile("'cuda'", "cuda", "error"), Hostile("''", "", "error"),
                Hostile("None", None, "error"), Hostile("1", 1, "error"),
                Hostile("'NATIVE'", "NATIVE", "error")]


def hostile_tensors(name: str, spec: T, batch: bool) -> list[Hostile]:
    """Hostile values of one tensor argument whose valid value is ``spec``."""
    shape = spec.shape
    empty_axis = tuple(0 if a == (1 if batch else 0) else s for a, s in enumerate(shape))
    values = [
        Hostile("None", None, "ok" if name in OPTIONAL else "error"),
        Hostile("nested list", AsList(shape), "error"),
        Hostile("ragged list", [[1.0, 2.0], [3.0]], "error"),
        Hostile("'tensor'", "tensor", "error"), Hostile("{}", {}, "error"),
        Hostile("1.5", 1.5, "error"), Hostile("np.float64(1)", np.float64(1.0), "error"),
        Hostile("other framework's tensor", Foreign(shape), "error"),
        Hostile("int64", replace(spec, dtype="int64"), "error"),
        Hostile("bool", replace(spec, dtype="bool"), "error"),
        Hostile("complex128", replace(spec, dtype="complex128"), "error"),
        Hostile("float16", replace(spec, dtype="float16"), "any"),
        Hostile("0-d", T(()), "error"),
        Hostile("one axis fewer", replace(spec, shape=shape[1:]), "error"),
        Hostile("one axis more", replace(spec, shape=(1, *shape)), "error"),
        Hostile(f"empty axis {empty_axis}", replace(spec, shape=empty_axis), "error"),
        Hostile("last axis + 1", replace(spec, shape=(*shape[:-1], shape[-1] + 1)), "same"),
        Hostile("NaN, inf, -inf", replace(spec, nonfinite=((1, NAN), (-2, INF), (7, -INF))), "ok"),
    ]
    if len(shape) > 1:
        wider = (*shape[:1], shape[1] + 1, *shape[2:])
        values.append(Hostile("axis 1 + 1", replace(spec, shape=wider), "same"))
    return values


def data_calls(op: Op) -> list[tuple[tuple, dict, str, str]]:
    """Calls on data and sizes, as ``(mutated, changes, label, expect)``: an empty batch
    (in every batch tensor at once), NaN and infinities in every tensor, windows far
    larger than the input, paddings that once aborted XLA."""
    empty = {name: replace(op.tensors[name], shape=(0, *op.tensors[name].shape[1:]))
             for name in op.batch_args}
    nonfinite = {name: replace(spec, nonfinite=((0, NAN), (3, INF), (-1, -INF)))
                 for name, spec in op.tensors.items()}
    calls = [((), empty, "empty batch", "ok"), ((), nonfinite, "NaN/inf in every tensor", "ok")]
    # float32 takes other code paths than float64 in XLA and oneDNN: NaN and inf in one
    # tensor at a time, every tensor float32.
    for name in op.tensors:
        single = {k: replace(spec, dtype="float32") for k, spec in op.tensors.items()}
        single[name] = replace(single[name], nonfinite=((1, NAN), (-2, INF), (7, -INF)))
        calls.append(((), single, f"NaN/inf in {name}, float32", "ok"))
    x4 = T((1, 2, 4, 4))
    if op.name in POOLS:
        sized = {"input": x4}
        if "depth" in op.tensors:
            sized["depth"] = replace(op.tensors["depth"], shape=(1, 1, 4, 4))
        calls += [
            (("kernel_size", "padding"),
             {**sized, "kernel_size": 2 * 10**9, "stride": 1, "padding": 10**9},
             "kernel 2*10**9, padding 10**9", "error"),
            (("kernel_size", "padding"),
             {**sized, "kernel_size": (2**16, 1), "stride": 1, "padding": (2**15, 0)},
             "kernel (2**16, 1), padding (2**15, 0)", "ok"),
        ]
    if op.name == "max_pool2d":
        calls.append((("padding", "dilation"),
                      {"input": T((1, 1, 2, 2)), "kernel_size": 2, "stride": 2, "padding": 1,
                       "dilation": 3}, "a window of pure padding", "error"))
    if op.name == "conv2d":  # F.conv2d drops these NaNs for batches of two or more
        for bad, dtype in itertools.product((NAN, INF), ("float32", "float64")):
            ones = T((2, 1, 4, 4), 0.0, 1.0, dtype)  # exact sums: float32 is compared as is
            weight = T((1, 1, 3, 3), 0.0, 1.0, dtype, nonfinite=((0, bad),))
            calls.append(((), {"input": ones, "bias": None, "weight": weight},
                          f"weight {bad} on zero padding, batch 2, {dtype}", "ok"))
    if "padding" in op.params and op.name not in POOLS:
        calls.append((("padding",), {"padding": 10**9}, "padding 10**9", "error"))
        calls.append((("padding",), {"padding": 2**63 - 1}, "padding 2**63-1", "error"))
    return calls


#: A grad_output of the forward output's shape in int64 (built by the worker).
INT_GRAD = T(None, dtype="int64")


# ----------------------------------------------------------------------------- calls

#: Where the op reads the output channels off the weight.
_OUT_CHANNELS = {"conv2d": 0, "tanprod_conv2d": 0, "conv2_5d": 1, "deform_conv2d": 0,
                 "depthaware_conv2d": 0}


def consistent(op: Op, arguments: dict, mutated: tuple) -> dict:
    """``arguments`` with the tensors that must follow a changed one following it (a
    valid change of one argument should not make the call invalid through another):
    bias follows the weight's output channels, depth the input's size, deform's offset
    and mask the output size. Only plain :class:`T` specs of the base call follow."""
    arguments = dict(arguments)

    def follows(name):
        return name in arguments and name not in mutated and isinstance(arguments[name], T)

    x, w = arguments.get("input"), arguments.get("weight")
    if isinstance(w, T) and op.name in _OUT_CHANNELS and follows("bias"):
        axis = _OUT_CHANNELS[op.name]
        if len(w.shape) > axis:
            arguments["bias"] = replace(arguments["bias"], shape=(w.shape[axis],))
    if isinstance(x, T) and len(x.shape) == 4 and follows("depth"):
        arguments["depth"] = replace(arguments["depth"], shape=(x.shape[0], 1, *x.shape[2:]))
    if (op.name == "deform_conv2d" and isinstance(x, T) and isinstance(w, T)
            and len(x.shape) == len(w.shape) == 4):
        from reference.common import conv_geometry

        try:
            g = conv_geometry("fuzz", x.shape, w.shape[2:], arguments["stride"],
                              arguments["padding"], arguments["dilation"])
        except Exception:  # noqa: BLE001  (an invalid call: nothing to follow)
            return arguments
        if g.out_size[0] * g.out_size[1] <= 10**4:
            for name, per_tap in (("offset", 2), ("mask", 1)):
                if follows(name):
                    channels = per_tap * 2 * w.shape[2] * w.shape[3]  # 2 offset groups
                    arguments[name] = replace(arguments[name],
                                              shape=(x.shape[0], channels, *g.out_size))
    return arguments



@dataclass(frozen=True)
class Call:
    """One call: ``op`` with ``arguments`` (name -> value or spec), through the forward or
    the gradient path; ``mutated`` names the arguments that were changed from the base
    call (an error must name one of them)."""

    op: str
    arguments: dict = field(hash=False)
    mutated: tuple
    label: str
    expect: str
    vjp: bool = False
    grad_output: object = None  # a hostile grad_output (reference and lua VJPs only)
    hostile_grad: bool = False  # whether grad_output replaces the pattern gradient

    def __str__(self):
        path = "vjp" if self.vjp else "forward"
        return f"{self.op} {path} [{', '.join(self.mutated) or 'data'}: {self.label}]"


def all_calls(ops=None, switch: str | None = None, grad_output: bool = False,
              vjp: bool = True) -> list[Call]:
    """Every call of the fuzz, forward and VJP (``vjp``), for ``ops`` (default: all).
    ``switch``: also hostile values of this argument (``"impl"``, ``"runtime"``);
    ``grad_output``: also hostile ``grad_output`` values (backends whose VJP takes one)."""
    calls = []
    for op in (OPS[name] for name in (ops or OPS)):
        base = op.base()
        variants = []
        for name, spec in op.tensors.items():
            for h in hostile_tensors(name, spec, name in op.batch_args):
                variants.append(((name,), {**base, name: h.value}, h.label, h.expect))
        for name, (kind, _) in op.params.items():
            for h in HOSTILE[kind]:
                variants.append(((name,), {**base, name: h.value}, h.label, h.expect))
        for mutated, changes, label, expect in data_calls(op):
            variants.append((mutated, {**base, **changes}, label, expect))
        if switch:
            for h in HOSTILE_IMPL:
                variants.append(((switch,), {**base, switch: h.value}, h.label, h.expect))
        for mutated, arguments, label, expect in variants:
            arguments = consistent(op, arguments, mutated)
            for path in (False, True) if vjp else (False,):
                calls.append(Call(op.name, arguments, mutated, label, expect, path))
        if grad_output:
            for label, value in (("None", None), ("list", [[0.0]]),
                                 ("wrong shape", T((1, 1, 1, 1))), ("int64", INT_GRAD)):
                calls.append(Call(op.name, base, ("grad_output",), label, "error", True, value,
                                  hostile_grad=True))
    return calls


def computes(call: Call) -> bool:
    """Whether a call is expected to compute (in JAX: to compile), not to stop in a check."""
    return call.expect in ("ok", "same", "any")


def sample(calls: list[Call], computing: int | None, failing: int | None, seed: int) -> list[Call]:
    """``computing`` calls that compute and ``failing`` calls that must fail, drawn
    without replacement (None: all of them)."""
    rng = random.Random(seed)
    chosen = []
    for count, part in ((computing, [c for c in calls if computes(c)]),
                        (failing, [c for c in calls if not computes(c)])):
        chosen += part if count is None or count >= len(part) else rng.sample(part, count)
    return chosen
