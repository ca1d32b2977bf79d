"""What exists: every operation, every backend, and which backend implements which op how.

This module is data. The parity tests (``tests/test_parity.py``), the reference's
self-tests and ``python -m crossconv crosscheck`` are all generated from it, so a backend
gets every test by adding entries to ``IMPLEMENTATIONS``. Nothing here imports a
framework: backends are imported lazily by :mod:`crossconv.frameworks`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import reference

from . import boundary, oracles, strategies
from .compare import Tolerance

#: float64 results should agree to rounding; float32 ones to fp32 rounding of short and
#: long (window x channel) sums.
FP64 = Tolerance(rtol=1e-10, atol=1e-10)
FP32 = Tolerance(rtol=1e-5, atol=1e-5)
FP32_LONG_SUMS = Tolerance(rtol=1e-4, atol=1e-4)
#: The reference against its loop oracle: both float64, different summation orders.
ORACLE = Tolerance(rtol=1e-12, atol=1e-12)


@dataclass(frozen=True)
class Op:
    """One operation of the contract (docs/<op>.md).

    Attributes:
        name: the function name in every backend.
        tensor_args: tensor arguments in signature order.
        differentiable: the arguments that get gradients (when not None).
        cases: Hypothesis strategy factory drawing valid calls (:mod:`crossconv.strategies`);
            its keyword options narrow the draw.
        tolerance: forward tolerance per dtype name.
        grad_tolerance: gradient tolerance per dtype name.
        fd_options: options for ``cases`` when checking gradients by finite differences
            (finite values only; keeps points away from kinks and ties).
        nondifferentiable: tensor arguments whose gradient must be zero or absent.
        boundary: the op's boundary cases (:mod:`crossconv.boundary`), run by crosscheck
            and verify on every implementation whose limits admit them.
    """

    name: str
    tensor_args: tuple[str, ...]
    differentiable: tuple[str, ...]
    cases: Callable[..., Any]
    tolerance: Mapping[str, Tolerance] = field(
        default_factory=lambda: {"float64": FP64, "float32": FP32_LONG_SUMS}
    )
    grad_tolerance: Mapping[str, Tolerance] = field(
        default_factory=lambda: {"float64": FP64, "float32": FP32_LONG_SUMS}
    )
    fd_options: Mapping[str, Any] = field(default_factory=lambda: {"nonfinite": False})
    nondifferentiable: tuple[str, ...] = ()
    boundary: Callable[[], list[boundary.Boundary]] = list

    @property
    def reference(self) -> Callable:
        return getattr(reference, self.name)

    @property
    def reference_vjp(self) -> Callable:
        return getattr(reference, self.name + "_vjp")

    @property
    def oracle(self) -> Callable:
        return getattr(oracles, "oracle_" + self.name)

    @property
    def oracle_vjp(self) -> Callable:
        return getattr(oracles, "oracle_" + self.name + "_vjp")


OPS: dict[str, Op] = {
    op.name: op
    for op in [
        Op("conv2d", ("input", "weight", "bias"), ("input", "weight", "bias"),
           strategies.conv2d_cases, boundary=boundary.conv2d),
        Op("xcorr2d", ("search", "template"), ("search", "template"),
           strategies.xcorr2d_cases, boundary=boundary.xcorr2d),
        Op("xcorr2d_depthwise", ("search", "template"), ("search", "template"),
           strategies.xcorr2d_depthwise_cases, boundary=boundary.xcorr2d_depthwise),
        Op("tanprod_conv2d", ("input", "weight", "bias"), ("input", "weight", "bias"),
           strategies.tanprod_conv2d_cases, fd_options={"zero_factors": 1, "nonfinite": False},
           boundary=boundary.tanprod_conv2d),
        Op("conv2_5d", ("input", "depth", "weight", "bias"), ("input", "weight", "bias"),
           strategies.conv2_5d_cases, nondifferentiable=("depth",), boundary=boundary.conv2_5d),
        Op("deform_conv2d", ("input", "offset", "weight", "bias", "mask"),
           ("input", "offset", "weight", "bias", "mask"),
           strategies.deform_conv2d_cases,
           fd_options={"smooth": True, "nonfinite": False, "nonfinite_offsets": False},
           boundary=boundary.deform_conv2d),
        Op("max_pool2d", ("input",), ("input",), strategies.max_pool2d_cases,
           tolerance={"float64": FP64, "float32": FP32},
           grad_tolerance={"float64": FP64, "float32": FP32},
           fd_options={"distinct": True, "nonfinite": False}, boundary=boundary.max_pool2d),
        Op("avg_pool2d", ("input",), ("input",), strategies.avg_pool2d_cases,
           tolerance={"float64": FP64, "float32": FP32},
           grad_tolerance={"float64": FP64, "float32": FP32}, boundary=boundary.avg_pool2d),
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


IMPLEMENTATIONS: tuple[Implementation, ...] = (
    # The anchors: the contract follows these, so the reference must agree with them.
    # Non-finite values are drawn by default (the strategies' nonfinite=True).
    Implementation("conv2d", "torch-anchor"),
    Implementation("xcorr2d", "torch-anchor"),
    Implementation("xcorr2d_depthwise", "torch-anchor"),
    # torchvision crashes the process on a NaN offset coordinate: no non-finite offsets.
    Implementation("deform_conv2d", "torch-anchor", limits={"nonfinite_offsets": False}),
    Implementation("max_pool2d", "torch-anchor"),
    Implementation("avg_pool2d", "torch-anchor"),
    # torch_impl (the PyTorch backend): every feature, the NaN/Inf rules of docs/ included.
    Implementation("conv2d", "torch"),
    Implementation("xcorr2d", "torch"),
    Implementation("xcorr2d_depthwise", "torch"),
    Implementation("tanprod_conv2d", "torch"),
    Implementation("conv2_5d", "torch"),
    Implementation("deform_conv2d", "torch"),
    Implementation("max_pool2d", "torch"),
    Implementation("avg_pool2d", "torch"),
    # jax_impl (the JAX backend): every feature, the NaN/Inf rules of docs/ included.
    Implementation("conv2d", "jax"),
    Implementation("xcorr2d", "jax"),
    Implementation("xcorr2d_depthwise", "jax"),
    Implementation("tanprod_conv2d", "jax"),
    Implementation("conv2_5d", "jax"),
    Implementation("deform_conv2d", "jax"),
    Implementation("max_pool2d", "jax"),
    Implementation("avg_pool2d", "jax"),
    # lua_port (the Torch7 CustomConv port, one column per Lua runtime).
    # Torch7's nn.CustomConv and nn.SpatialConvolutionMM have no dilation or groups and
    # pad both sides alike (so no padding="same" with an even kernel).
    *(
        Implementation(op, "lua", label=f"lua-{runtime}", extra={"runtime": runtime}, limits=limits)
        for runtime in ("luajit", "5.4")
        for op, limits in (
            ("tanprod_conv2d", {"max_dilation": 1}),
            ("conv2d", {"max_dilation": 1, "max_groups": 1, "string_padding": False}),
        )
    ),
    # jax_impl Pallas kernels (impl="pallas": interpret mode on a CPU). Every example
    # compiles its own kernels (~0.3-2 s each here), hence the small example fractions.
    Implementation("tanprod_conv2d", "jax", label="jax-pallas", extra={"impl": "pallas"},
                   examples=0.1),
    Implementation("conv2_5d", "jax", label="jax-pallas", extra={"impl": "pallas"},
                   examples=0.1),
    Implementation("deform_conv2d", "jax", label="jax-pallas", extra={"impl": "pallas"},
                   examples=0.1),
    Implementation("max_pool2d", "jax", label="jax-pallas", extra={"impl": "pallas"},
                   examples=0.2),
    Implementation("avg_pool2d", "jax", label="jax-pallas", extra={"impl": "pallas"},
                   examples=0.2),
    # torch_impl Triton kernels (impl="triton": Triton's interpreter on a CPU, 0.05-0.7 s
    # a call, hence a fraction of the examples). They have every feature of the ops and
    # the NaN/Inf behaviour of docs/, NaN and infinite offsets included.
    Implementation("tanprod_conv2d", "torch", label="torch-triton", extra={"impl": "triton"},
                   examples=0.3),
    Implementation("conv2_5d", "torch", label="torch-triton", extra={"impl": "triton"},
                   examples=0.3),
    Implementation("deform_conv2d", "torch", label="torch-triton", extra={"impl": "triton"},
                   examples=0.3),
    Implementation("max_pool2d", "torch", label="torch-triton", extra={"impl": "triton"},
                   examples=0.5),
    Implementation("avg_pool2d", "torch", label="torch-triton", extra={"impl": "triton"},
                   examples=0.5),
    # onnx_impl's ONNX graphs (forward only: no gradients in ONNX), run by onnxruntime:
    # every feature and the NaN/Inf rules of the contract, NaN and infinite offsets included.
    *(Implementation(op, "onnxruntime", grad=False)
      for op in ("conv2d", "xcorr2d", "xcorr2d_depthwise", "tanprod_conv2d", "conv2_5d",
                 "deform_conv2d", "max_pool2d", "avg_pool2d")),
    # The same graphs run by onnx.reference's evaluator. Its Conv (the float32 conv2d graph)
    # multiplies the cells a dilated kernel skips by 0, so a NaN or inf there leaks into
    # outputs that never read it: no non-finite conv2d inputs. Its DeformConv keeps the
    # sampling coordinates in float32 (float64 results miss by ~1e-8) and raises on H = 1
    # or W = 1, which onnx_impl's graph never hands it (it pads a zero row and column).
    *(Implementation(op, "onnx-reference", grad=False, extra={"runtime": "reference"},
                     limits=limits, dtypes=dtypes) for op, limits, dtypes in (
        ("conv2d", {"nonfinite": False}, ("float32", "float64")),
        ("xcorr2d", {}, ("float32", "float64")),
        ("xcorr2d_depthwise", {}, ("float32", "float64")),
        ("tanprod_conv2d", {}, ("float32", "float64")),
        ("conv2_5d", {}, ("float32", "float64")),
        ("deform_conv2d", {}, ("float32",)),
        ("max_pool2d", {}, ("float32", "float64")),
        ("avg_pool2d", {}, ("float32", "float64")),
    )),
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
