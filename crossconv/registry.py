"""What exists: every operation, every backend, and which backend implements which op how.

This module is data. The parity tests (``tests/test_parity.py``), the reference's
self-tests and ``python -m crossconv crosscheck`` are all generated from it, so a backend
gets every test by adding entries to ``IMPLEMENTATIONS``. Nothing here imports a
framework: backends are imported lazily by :mod:`crossconv.frameworks`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import reference

from . import oracles
from .compare import Tolerance

#: float64 results should agree to rounding; float32 ones to fp32 rounding of short and
#: long (window x channel) sums.
FP64 = Tolerance(rtol=1e-10, atol=1e-10)
FP32 = Tolerance(rtol=1e-5, atol=1e-5)
FP32_LONG_SUMS = Tolerance(rtol=1e-4, atol=1e-4)
#: The reference against its loop oracle: both float64, different summation orders.
ORACLE = Tolerance(rtol=1e-12, atol=1e-12)
#: Sums over a window only (pooling): float32 rounding of short sums.
SHORT_SUMS = {"float64": FP64, "float32": FP32}
LONG_SUMS = {"float64": FP64, "float32": FP32_LONG_SUMS}


@dataclass(frozen=True)
class Op:
    """One operation of the contract (docs/<op>.md).

    Everything else about the op is found by its name and its file, the name of
    ``reference/<file>.py`` that defines it: the reference ``reference.<op>`` and
    ``reference.<op>_vjp``, the loop oracle ``crossconv.oracles.oracle_<op>`` (in
    ``crossconv/oracles/<file>.py``) and the cases in ``crossconv/cases/<file>.py``:
    ``<op>_cases`` (the Hypothesis strategy; its keyword options narrow the draw),
    ``<op>_boundary`` (boundary cases, run by crosscheck and verify on every
    implementation whose limits admit them), ``<op>_goldens`` and ``<op>_needs`` (both
    optional), ``<op>_sample``, ``<op>_reduction`` and the op's entry in ``PINS``.

    Attributes:
        name: the function name in every backend.
        tensor_args: tensor arguments in signature order.
        tolerance: forward tolerance per dtype name.
        grad_tolerance: gradient tolerance per dtype name.
        fd_options: options for ``cases`` when checking gradients by finite differences
            (finite values only; keeps points away from kinks and ties).
        nondifferentiable: tensor arguments whose gradient must be zero or absent; the
            others are :attr:`differentiable`.
        contract: the names of the kernel contract's forward and backward functions in
            the op's file of each backend's kernels (``torch_impl/kernels/<file>.py``,
            ``jax_impl/kernels/<file>.py``) and native code; a file that holds two ops
            prefixes them. ``forward(*tensors, *arguments)`` takes the tensor arguments
            but the bias, then what the op's ``<op>_signature`` returns (its geometry and
            scalars); ``backward(grad, *the same)`` returns the gradients of the
            differentiable ones but the bias, in order.
        vanishing: differentiable arguments whose gradient the definition makes exactly
            zero on some valid calls (depth-aware ops with ``alpha = 0`` or a constant
            depth: ``sign(0) = 0``). A zero expected gradient of these is compared (the
            implementation must give zeros), where any other is refused as a case that
            tests nothing.
    """

    name: str
    tensor_args: tuple[str, ...]
    tolerance: Mapping[str, Tolerance] = field(default_factory=lambda: LONG_SUMS)
    grad_tolerance: Mapping[str, Tolerance] = field(default_factory=lambda: LONG_SUMS)
    fd_options: Mapping[str, Any] = field(default_factory=lambda: {"nonfinite": False})
    nondifferentiable: tuple[str, ...] = ()
    contract: tuple[str, str] = ("forward", "backward")
    vanishing: tuple[str, ...] = ()

    @property
    def differentiable(self) -> tuple[str, ...]:
        """The arguments that get gradients (when not None)."""
        return tuple(a for a in self.tensor_args if a not in self.nondifferentiable)

    @property
    def signature(self) -> Callable:
        """``reference.<file>.<op>_signature``: the op's argument check on shapes and
        Python values, the source of its kernel contract's arguments."""
        return getattr(importlib.import_module(f"reference.{self.file}"), f"{self.name}_signature")

    @property
    def reference(self) -> Callable:
        return getattr(reference, self.name)

    @property
    def reference_vjp(self) -> Callable:
        return getattr(reference, self.name + "_vjp")

    @property
    def file(self) -> str:
        """The file name the op has in every layer: ``reference/<file>.py``, ..."""
        return self.reference.__module__.rsplit(".", 1)[-1]

    @property
    def oracle(self) -> Callable:
        return getattr(oracles, "oracle_" + self.name)

    @property
    def oracle_vjp(self) -> Callable:
        return getattr(oracles, "oracle_" + self.name + "_vjp")

    @property
    def case_file(self) -> ModuleType:
        """``crossconv.cases.<file>``: the op's strategy, boundary, golden and sample cases."""
        return importlib.import_module(f"{__package__}.cases.{self.file}")

    @property
    def cases(self) -> Callable[..., Any]:
        """The Hypothesis strategy factory drawing valid calls (:mod:`crossconv.strategies`)."""
        return getattr(self.case_file, f"{self.name}_cases")

    @property
    def boundary(self) -> Callable[[], list]:
        """The op's boundary cases (:class:`crossconv.cases.Boundary`)."""
        return getattr(self.case_file, f"{self.name}_boundary")

    @property
    def goldens(self) -> Callable[[], list]:
        """The op's golden cases (:class:`crossconv.cases.Golden`), if any."""
        return getattr(self.case_file, f"{self.name}_goldens", list)

    @property
    def needs(self) -> Callable[[Any], dict]:
        """What a case of the op needs of its strategy's own options
        (:func:`crossconv.boundary.implied_needs` adds the shared ones)."""
        return getattr(self.case_file, f"{self.name}_needs", lambda case: {})

    @property
    def reduction(self) -> Callable[..., int]:
        """``reduction(case, check, out_shape)``: how many terms are summed into one element
        of output ``check`` ("forward", "d/d<argument>"), the K of verify's half-precision
        tolerance."""
        return getattr(self.case_file, f"{self.name}_reduction")

    @property
    def pins(self) -> dict[str, dict[str, Any]]:
        """Argument -> the strategy options that keep it at its default (the cases
        file's ``PINS``; :mod:`crossconv.strategy_options`)."""
        return getattr(self.case_file, "PINS", {}).get(self.name, {})

    @property
    def sample(self) -> Callable[..., Any]:
        """``sample(dtype="float64", seed=0, smooth=False)``: one small fixed call where
        the op is not trivial (``smooth``: away from the kinks finite differences cannot
        cross), for tests of a framework's transforms."""
        return getattr(self.case_file, f"{self.name}_sample")


#: Finite values only, for finite differences (the default ``fd_options``).
FINITE = {"nonfinite": False}

OPS: dict[str, Op] = {
    op.name: op
    for op in [
        Op("conv2d", ("input", "weight", "bias")),
        Op("xcorr2d", ("search", "template")),
        Op("xcorr2d_depthwise", ("search", "template")),
        Op("tanprod_conv2d", ("input", "weight", "bias"),
           fd_options={**FINITE, "zero_factors": 1}),
        Op("conv2_5d", ("input", "depth", "weight", "bias"), nondifferentiable=("depth",)),
        Op("deform_conv2d", ("input", "offset", "weight", "bias", "mask"),
           fd_options={**FINITE, "smooth": True, "nonfinite_offsets": False}),
        Op("max_pool2d", ("input",), SHORT_SUMS, SHORT_SUMS,
           fd_options={**FINITE, "distinct": True}, contract=("max_forward", "max_backward")),
        Op("avg_pool2d", ("input",), SHORT_SUMS, SHORT_SUMS,
           contract=("avg_forward", "avg_backward")),
        # Depth is differentiable; finite differences need no tap at its centre's depth.
        Op("depthaware_conv2d", ("input", "depth", "weight", "bias"),
           fd_options={**FINITE, "tied_depths": False}, vanishing=("depth",),
           contract=("conv_forward", "conv_backward")),
        Op("depthaware_avg_pool2d", ("input", "depth"), SHORT_SUMS, SHORT_SUMS,
           fd_options={**FINITE, "tied_depths": False}, vanishing=("depth",),
           contract=("pool_forward", "pool_backward")),
    ]
}


@dataclass(frozen=True)
class Backend:
    """A package implementing ops under the contract's names.

    ``framework`` names the adapter in :mod:`crossconv.frameworks` that turns a
    :class:`~crossconv.cases.Case` into native tensors and computes VJPs; ``requires``
    lists the modules that must import for the backend to be available.
    """

    name: str
    module: str
    framework: str
    requires: tuple[str, ...]
    description: str
    anchor: bool = False


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in [
        Backend("torch", "torch_impl", "torch", ("torch",),
                "PyTorch backend (vectorised torch; Triton kernels)"),
        Backend("jax", "jax_impl", "jax", ("jax",), "JAX backend (XLA; Pallas kernels)"),
        Backend("lua", "lua_port", "lua", ("lupa",), "Torch7 CustomConv port run through lupa"),
        Backend("torch-anchor", "crossconv.anchors", "torch", ("torch", "torchvision"),
                "torch.nn.functional / torchvision.ops, the frameworks the contract follows",
                anchor=True),
        Backend("onnxruntime", "onnx_impl", "onnx", ("onnx", "onnxruntime"),
                "ONNX graphs (onnx_impl) run by onnxruntime; forward only"),
        Backend("onnx-reference", "onnx_impl", "onnx", ("onnx",),
                "the same ONNX graphs run by the ONNX reference evaluator (onnx.reference)",
                anchor=True),
    ]
}


@dataclass(frozen=True)
class Implementation:
    """Backend ``backend`` implements ``op``.

    Attributes:
        function: name in the backend module (default: the op's name).
        grad: gradients are supported and checked.
        dtypes: dtypes checked.
        limits: options for the op's case strategy, the backend's capabilities as data
            (e.g. ``{"max_dilation": 1}`` for a kernel without dilation).
        extra: keyword arguments added to every call (e.g. ``{"impl": "triton"}``).
        label: column name when one backend has several implementations of an op
            (``torch-triton``, ``lua-5.4``); crosscheck shows one column per name.
        examples: fraction of the Hypothesis profile's examples this implementation runs
            (below 1 for the slow ones: interpreters, a Lua VM), in tests and crosscheck.
    """

    op: str
    backend: str
    function: str = ""
    grad: bool = True
    dtypes: tuple[str, ...] = ("float32", "float64")
    limits: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    examples: float = 1.0

    @property
    def name(self) -> str:
        return self.label or self.backend

    @property
    def function_name(self) -> str:
        return self.function or self.op


def each(backend: str, ops: Mapping[str, Mapping[str, Any]] | Any = (),
         **shared) -> tuple[Implementation, ...]:
    """One row per op that ``backend`` implements, with the ``shared`` settings. ``ops``:
    op names (default: every op of :data:`OPS`), or a mapping from each op to its row's
    own settings, the exceptions."""
    rows = ops if isinstance(ops, Mapping) else dict.fromkeys(ops or OPS, {})
    return tuple(Implementation(op, backend, **{**shared, **own}) for op, own in rows.items())


def _fraction(examples: float) -> dict[str, Any]:
    return {"examples": examples}


IMPLEMENTATIONS: tuple[Implementation, ...] = (
    # The anchors: the contract follows these, so the reference must agree with them.
    # Non-finite values are drawn by default (the strategies' nonfinite=True).
    # torchvision crashes the process on a NaN offset coordinate: no non-finite offsets.
    *each("torch-anchor", {"conv2d": {}, "xcorr2d": {}, "xcorr2d_depthwise": {},
                           "deform_conv2d": {"limits": {"nonfinite_offsets": False}},
                           "max_pool2d": {}, "avg_pool2d": {}}),
    # torch_impl and jax_impl: every op, every feature, the NaN/Inf rules of docs/ included.
    *each("torch"),
    *each("jax"),
    # lua_port (the Torch7 CustomConv port, one column per Lua runtime). Torch7's
    # nn.CustomConv and nn.SpatialConvolutionMM have no dilation or groups and pad both
    # sides alike (so no padding="same" with an even kernel). Torch7 had no depth-aware,
    # deformable, 2.5D or correlation modules.
    *(row for runtime in ("luajit", "5.4") for row in each(
        "lua", {"tanprod_conv2d": {"limits": {"max_dilation": 1}},
                "conv2d": {"limits": {"max_dilation": 1, "max_groups": 1,
                                      "string_padding": False}}},
        label=f"lua-{runtime}", extra={"runtime": runtime})),
    # jax_impl Pallas kernels (impl="pallas": interpret mode on a CPU). Every example
    # compiles its own kernels (~0.3-2 s each here), hence the small example fractions.
    *each("jax", {"tanprod_conv2d": _fraction(0.1), "conv2_5d": _fraction(0.1),
                  "deform_conv2d": _fraction(0.1), "max_pool2d": _fraction(0.2),
                  "avg_pool2d": _fraction(0.2), "depthaware_conv2d": _fraction(0.1),
                  "depthaware_avg_pool2d": _fraction(0.1)},
          label="jax-pallas", extra={"impl": "pallas"}),
    # torch_impl Triton kernels (impl="triton": Triton's interpreter on a CPU, 0.05-0.7 s
    # a call, hence a fraction of the examples). They have every feature of the ops and
    # the NaN/Inf behaviour of docs/, NaN and infinite offsets included.
    *each("torch", {"tanprod_conv2d": _fraction(0.3), "conv2_5d": _fraction(0.3),
                    "deform_conv2d": _fraction(0.3), "max_pool2d": _fraction(0.5),
                    "avg_pool2d": _fraction(0.5), "depthaware_conv2d": _fraction(0.3),
                    "depthaware_avg_pool2d": _fraction(0.3)},
          label="torch-triton", extra={"impl": "triton"}),
    # onnx_impl's ONNX graphs (forward only: no gradients in ONNX), run by onnxruntime:
    # every feature and the NaN/Inf rules of the contract, NaN and infinite offsets included.
    *each("onnxruntime", grad=False),
    # The same graphs run by onnx.reference's evaluator. Its Conv (the float32 conv2d graph,
    # and depthaware_conv2d's with alpha = 0) multiplies the cells a dilated kernel skips
    # by 0, so a NaN or inf there leaks into outputs that never read it: no non-finite
    # inputs there. Its DeformConv keeps the sampling coordinates in float32 (float64
    # results miss by ~1e-8) and raises on H = 1 or W = 1, which onnx_impl's graph never
    # hands it (it pads a zero row and column).
    *each("onnx-reference",
          {**dict.fromkeys(OPS, {}),
           "conv2d": {"limits": {"nonfinite": False}},
           "deform_conv2d": {"dtypes": ("float32",)},
           "depthaware_conv2d": {"dtypes": ("float64",)}},
          grad=False, extra={"runtime": "reference"}),
    Implementation("depthaware_conv2d", "onnx-reference", grad=False, dtypes=("float32",),
                   limits={"nonfinite": False}, extra={"runtime": "reference"}),
)


def implementations(op: str | None = None, backend: str | None = None,
                    name: str | None = None) -> list[Implementation]:
    return [
        impl
        for impl in IMPLEMENTATIONS
        if (op is None or impl.op == op) and (backend is None or impl.backend == backend)
        and (name is None or impl.name == name)
    ]


def implementation_names(backends=None) -> list[str]:
    """Column names: every implementation name, grouped in ``BACKENDS`` order, anchors last."""
    ordered = sorted(BACKENDS.values(), key=lambda b: b.anchor)
    names = []
    for backend in ordered:
        if backends is not None and backend.name not in backends:
            continue
        for impl in IMPLEMENTATIONS:
            if impl.backend == backend.name and impl.name not in names:
                names.append(impl.name)
    return names
