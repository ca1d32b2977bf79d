"""What the functional ops share: argument checks (reference.common's, plus the features
Torch7's modules lack) and running one call through a Lua module.

``tanprod_conv2d`` runs ``nn.CustomConv`` with the 'tanprod' kernel, ``conv2d`` runs
``nn.SpatialConvolutionMM``; both modules take (nInputPlane, nOutputPlane, kW, kH, dW, dH,
padW, padH), so neither has dilation, groups or asymmetric padding (``padding="same"``
with an even kernel): those raise ``ValueError`` naming the argument.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference.common import check_float_dtypes, check_grad_output, conv2d_signature, tanprod_signature

from .runtimes import trusted

#: op -> (Lua module, the argument check of reference.common).
MODULES = {
    "tanprod_conv2d": ("CustomConv", tanprod_signature),
    "conv2d": ("SpatialConvolutionMM", conv2d_signature),
}


@dataclass(frozen=True)
class Call:
    """A checked call: float64 arrays, the window geometry, the caller's dtype."""

    op: str
    input: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    geometry: object
    out_shape: tuple
    dtype: np.dtype


def check_call(op: str, input, weight, bias, stride, padding, dilation, groups=1) -> Call:
    arrays = {name: None if a is None else np.asarray(a)
              for name, a in (("input", input), ("weight", weight), ("bias", bias))}
    dtype = check_float_dtypes(op, {name: a.dtype for name, a in arrays.items() if a is not None},
                               same=True)
    x, w, b = (None if a is None else a.astype(np.float64, copy=False) for a in arrays.values())
    shapes = (x.shape, w.shape, None if b is None else b.shape, stride, padding, dilation)
    signature = MODULES[op][1]
    sig = signature(*shapes, groups) if op == "conv2d" else signature(*shapes)
    module = MODULES[op][0]
    if sig.geometry.dilation != (1, 1):
        raise ValueError(f"{op}: Torch7's nn.{module} has no dilation; lua_port supports only "
                         f"dilation=1, got dilation={dilation!r}")
    if sig.groups != 1:
        raise ValueError(f"{op}: Torch7's nn.{module} has no groups; lua_port supports only "
                         f"groups=1, got groups={groups!r}")
    if sig.geometry.pad_before != sig.geometry.pad_after:
        raise ValueError(f"{op}: Torch7's nn.{module} pads both sides alike; padding={padding!r} "
                         f"needs {sig.geometry.pad_before} before and {sig.geometry.pad_after} after")
    return Call(op, x, w, b, sig.geometry, sig.out_shape, np.dtype(dtype))


#: Modules kept per trusted Lua state for repeated calls of one configuration.
CACHED_MODULES = 16


def build_module(lua, call: Call):
    """The Lua module computing ``call``, holding its weight and bias.

    One module per configuration (op, channels, kernel, stride, padding, bias or not) is
    kept and given the call's parameters, so repeated calls skip the construction.
    """
    out_channels, in_channels, kh, kw = call.weight.shape
    (sh, sw), (ph, pw) = call.geometry.stride, call.geometry.pad_before
    key = (call.op, in_channels, out_channels, kw, kh, sw, sh, pw, ph, call.bias is None)
    cache = lua.modules
    module = cache.pop(key, None)
    if module is None:
        name = MODULES[call.op][0]
        module = lua.call(lua.bridge.module, name, in_channels, out_channels, kw, kh, sw, sh, pw, ph)
        if call.bias is None:
            lua.method(module, "noBias")
        if len(cache) >= CACHED_MODULES:
            cache.pop(next(iter(cache)))
    cache[key] = module
    lua.assign(module.weight, call.weight)
    if call.bias is not None:
        lua.assign(module.bias, call.bias)
    return module


def forward(call: Call, runtime) -> np.ndarray:
    lua = trusted(runtime)
    module = build_module(lua, call)
    output = lua.method(module, "forward", lua.tensor(call.input))
    return lua.array(output).astype(call.dtype)


def vjp(call: Call, grad_output, runtime) -> dict[str, np.ndarray]:
    """Gradients through the module's Torch7 protocol: zeroGradParameters, forward, then
    backward(input, gradOutput, 1) (updateGradInput + accGradParameters)."""
    grad = check_grad_output(grad_output, call.out_shape, call.op)
    lua = trusted(runtime)
    module = build_module(lua, call)
    lua.method(module, "zeroGradParameters")
    x = lua.tensor(call.input)
    lua.method(module, "forward", x)
    grad_input = lua.method(module, "backward", x, lua.tensor(grad), 1)
    grads = {
        "input": lua.array(grad_input),
        "weight": lua.array(module.gradWeight).reshape(call.weight.shape),
    }
    if call.bias is not None:
        grads["bias"] = lua.array(module.gradBias)
    return {name: g.astype(call.dtype) for name, g in grads.items()}
