"""``CustomConv``: the Lua ``nn.CustomConv`` module driven from Python, NumPy in and out.

It mirrors the Lua module one to one (same constructors, same Torch7 protocol): the
object holds a Lua ``nn.CustomConv`` in lua_port's trusted Lua state, arrays are copied in
and out on each call, and results are float64 (Torch7's DoubleTensor).
"""

from __future__ import annotations

import numbers

import numpy as np

from reference.common import (
    as_float_array,
    check_arrays,
    check_grad_output,
    check_shape,
    nonnegative_pair,
    positive_int,
)
from reference.conv2d import conv2d_signature
from reference.tanprod import tanprod_conv2d_signature

from ._ops import check_lua_sizes
from .runtimes import trusted

KERNELS = ("tanprod", "linear")


def _scale(scale) -> float:
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        raise TypeError(f"CustomConv: scale must be a real number, got scale={scale!r}")
    return float(scale)


class CustomConv:
    """Torch7's ``nn.CustomConv`` (lua_port/lua/nn/CustomConv.lua) with NumPy arrays.

    ``CustomConv(k)``: the original module, one 2-D map ``[H, W]`` in, one
    ``[H-k+1, W-k+1]`` out, weight ``[k, k]``, no bias (``[1, H, W]`` and
    ``[N, 1, H, W]`` inputs work too).

    ``CustomConv(n_input_plane, n_output_plane, kw, kh, dw=1, dh=1, padw=0, padh=padw)``:
    SpatialConvolutionMM's arguments (width first, as in Torch7); input ``[C, H, W]`` or
    ``[N, C, H, W]``, weight ``[O, C, kh, kw]``, bias ``[O]`` (``bias=False``: none).

    Keywords: ``kernel`` ``"tanprod"`` (the original product of ``tan(x + w)``) or
    ``"linear"`` (then it equals SpatialConvolutionMM / conv2d); ``runtime``
    ``"luajit"`` (default) or ``"5.4"``.

    The Torch7 protocol: ``forward(input)``; ``backward(input, grad_output, scale=1)``
    returns the input's gradient (overwritten each call) and ADDS ``scale *`` the
    parameters' gradient to ``grad_weight`` / ``grad_bias``; ``zero_grad_parameters()``.
    """

    def __init__(self, *shape, kernel: str = "tanprod", bias: bool = True, runtime: str | None = None):
        op = "CustomConv"
        if len(shape) == 1:
            args = [positive_int(shape[0], "k", op)]
        elif 4 <= len(shape) <= 8:
            names = ("n_input_plane", "n_output_plane", "kw", "kh", "dw", "dh")
            args = [positive_int(v, name, op) for v, name in zip(shape[:6], names)]
            args += [nonnegative_pair(v, name, op)[0] for v, name in zip(shape[6:], ("padw", "padh"))]
        else:
            raise TypeError(
                f"{op}: expected CustomConv(k) or CustomConv(n_input_plane, n_output_plane, kw, kh, "
                f"[dw, dh, padw, padh]), got {len(shape)} positional arguments"
            )
        if kernel not in KERNELS:
            raise ValueError(f"{op}: kernel must be one of {KERNELS}, got kernel={kernel!r}")
        self._lua = trusted(runtime)
        self.runtime = self._lua.name
        self.kernel = kernel
        self.lua_module = self._lua.call(self._lua.bridge.module, "CustomConv", *args, kernel)
        if not bias or len(shape) == 1:
            self._lua.method(self.lua_module, "noBias")
        m = self.lua_module
        self.map_mode = bool(m.mapMode)
        self.n_input_plane, self.n_output_plane = int(m.nInputPlane), int(m.nOutputPlane)
        self.kernel_size = (int(m.kH), int(m.kW))
        self.stride = (int(m.dH), int(m.dW))
        self.padding = (int(m.padH), int(m.padW))

    # ------------------------------------------------------------------ parameters

    def _get(self, field):
        tensor = self.lua_module[field]
        return None if tensor is None else self._lua.array(tensor)

    def _set(self, field, value):
        tensor = self.lua_module[field]
        if tensor is None:
            raise ValueError(f"CustomConv: this module has no {field} (built with bias=False)")
        array = as_float_array(value, field, "CustomConv")
        check_shape(array.shape, field, self._get(field).shape, "CustomConv")
        self._lua.assign(tensor, array)

    @property
    def weight(self) -> np.ndarray:
        """A copy of the weight: ``[k, k]`` (original form) or ``[O, C, kh, kw]``."""
        return self._get("weight")

    @weight.setter
    def weight(self, value):
        self._set("weight", value)

    @property
    def bias(self) -> np.ndarray | None:
        """A copy of the bias ``[O]``, or None."""
        return self._get("bias")

    @bias.setter
    def bias(self, value):
        self._set("bias", value)

    @property
    def grad_weight(self) -> np.ndarray:
        """A copy of the accumulated weight gradient (the weight's shape)."""
        return self._get("gradWeight")

    @property
    def grad_bias(self) -> np.ndarray | None:
        return self._get("gradBias")

    def zero_grad_parameters(self) -> None:
        self._lua.method(self.lua_module, "zeroGradParameters")

    def parameters(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``([weight, bias], [grad_weight, grad_bias])``, the ones present (copies)."""
        pairs = [("weight", "gradWeight"), ("bias", "gradBias")]
        present = [(p, g) for p, g in pairs if self.lua_module[p] is not None]
        return [self._get(p) for p, _ in present], [self._get(g) for _, g in present]

    # ------------------------------------------------------------------ protocol

    def _check_input(self, input) -> tuple[np.ndarray, tuple]:
        """``input`` as float64 and the call's output shape; shared argument checks."""
        op = "CustomConv"
        (x,) = check_arrays(op, input=input)
        allowed = (2, 3, 4) if self.map_mode else (3, 4)
        if x.ndim not in allowed:
            layouts = "[H, W], [1, H, W] or [N, 1, H, W]" if self.map_mode else "[C, H, W] or [N, C, H, W]"
            raise ValueError(f"{op}: input must be {layouts}, got shape {x.shape}")
        batch = (x.shape[0],) if x.ndim == 4 else (1,)
        channels = (1,) if x.ndim == 2 else (x.shape[-3],)
        shape4 = batch + channels + x.shape[-2:]
        weight4 = (self.n_output_plane, self.n_input_plane, *self.kernel_size)
        bias = None if self.lua_module.bias is None else (self.n_output_plane,)
        signature = tanprod_conv2d_signature if self.kernel == "tanprod" else conv2d_signature
        sig = signature(shape4, weight4, bias, self.stride, self.padding)
        check_lua_sizes(op, shape4, weight4, sig.out_shape, self.padding, self.runtime, backward=True)
        out = sig.out_shape[-(x.ndim):] if x.ndim > 2 else sig.out_shape[2:]
        return x.astype(np.float64, copy=False), out

    def forward(self, input) -> np.ndarray:
        """``updateOutput(input)``: the output, float64 (2-D, 3-D or 4-D like the input)."""
        x, _ = self._check_input(input)
        lua = self._lua
        return lua.array(lua.method(self.lua_module, "forward", lua.tensor(x)))

    update_output = forward

    def backward(self, input, grad_output, scale: float = 1.0) -> np.ndarray:
        """``updateGradInput`` then ``accGradParameters(input, grad_output, scale)``.

        Returns the gradient with respect to ``input``; ``grad_weight`` and ``grad_bias``
        grow by ``scale *`` this call's parameter gradients.
        """
        x, out_shape = self._check_input(input)
        grad = check_grad_output(grad_output, out_shape, "CustomConv")
        lua = self._lua
        result = lua.method(self.lua_module, "backward", lua.tensor(x), lua.tensor(grad), _scale(scale))
        return lua.array(result)

    def update_grad_input(self, input, grad_output) -> np.ndarray:
        """The gradient with respect to ``input`` alone (parameters' gradients untouched)."""
        x, out_shape = self._check_input(input)
        grad = check_grad_output(grad_output, out_shape, "CustomConv")
        lua = self._lua
        return lua.array(lua.method(self.lua_module, "updateGradInput", lua.tensor(x), lua.tensor(grad)))

    def acc_grad_parameters(self, input, grad_output, scale: float = 1.0) -> None:
        """Add ``scale *`` the parameters' gradients to ``grad_weight`` / ``grad_bias``."""
        x, out_shape = self._check_input(input)
        grad = check_grad_output(grad_output, out_shape, "CustomConv")
        lua = self._lua
        lua.method(self.lua_module, "accGradParameters", lua.tensor(x), lua.tensor(grad), _scale(scale))

    def __repr__(self) -> str:
        text = self._lua.call(self._lua.lua.globals().tostring, self.lua_module)
        return f"<lua_port.CustomConv {text} on {self.runtime}>"
