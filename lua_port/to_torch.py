"""``to_torch(model)``: a Torch7 nn model as an equivalent ``torch.nn.Module``, same weights.

``model`` is a ``.t7`` file (a path or its bytes), a :class:`~lua_port.t7.T7Object`
read by :func:`lua_port.load_t7`, or a :class:`~lua_port.torch7.Torch7Model`. Every module
of the shim converts (the table below); the result holds copies of the weights and
running statistics, in the file's precision (``dtype=`` to choose), in training or
evaluation mode as each Torch7 module was (its ``train`` field).

What maps to what (Torch7 -> torch):

==============================  ====================================================
nn.Sequential                   nn.Sequential
nn.Concat(d)                    torch_modules.Concat(d - 1)
nn.ConcatTable / ParallelTable  torch_modules.ConcatTable / ParallelTable (lists)
nn.CAddTable, nn.Identity       torch_modules.CAddTable, nn.Identity
nn.Linear                       nn.Linear (the same [out, in] weight)
nn.SpatialConvolution(MM)       nn.Conv2d (MM's [O, C*kH*kW] weight reshaped)
nn.CustomConv                   torch_impl.nn.TanProdConv2d ('linear' kernel: nn.Conv2d)
nn.SpatialMaxPooling            nn.MaxPool2d (ceil_mode from :ceil())
nn.SpatialAveragePooling        nn.AvgPool2d (count_include_pad, ceil_mode)
nn.(Spatial)BatchNormalization  nn.BatchNorm1d / nn.BatchNorm2d (eps, momentum, stats)
nn.ReLU, nn.Threshold           nn.ReLU, nn.Threshold (both strictly greater)
nn.Tanh, nn.Sigmoid             nn.Tanh, nn.Sigmoid
nn.SoftMax, nn.LogSoftMax       torch_modules.SoftMax / LogSoftMax (Torch7's dimension)
nn.Dropout                      nn.Dropout (v1: torch_modules.DropoutV1)
nn.View, nn.Reshape             torch_modules.View / Reshape (Torch7's batch rules)
nn.SpatialZeroPadding           nn.ZeroPad2d (negative pads crop)
==============================  ====================================================

One difference remains: without padding, Torch7's ceil-mode pooling keeps a last window
that starts past the input (stride larger than the kernel); torch drops it.
"""

from __future__ import annotations

import numpy as np

from .t7 import T7Object, parse_t7


def _int(fields, name, default=None):
    value = fields.get(name, default)
    if value is None:
        raise ValueError(f"to_torch: the module has no field {name!r}")
    return int(value)


def _copy(parameter, value, dtype, shape=None):
    import torch

    array = np.asarray(value)
    if shape is not None:
        array = array.reshape(shape)
    if tuple(array.shape) != tuple(parameter.shape):
        raise ValueError(f"to_torch: a parameter of shape {tuple(array.shape)} where "
                         f"{tuple(parameter.shape)} is expected")
    with torch.no_grad():
        parameter.copy_(torch.as_tensor(array, dtype=dtype))


def _conv(f, dtype):
    import torch

    c_in, c_out, kw, kh = (_int(f, n) for n in ("nInputPlane", "nOutputPlane", "kW", "kH"))
    pad_w = _int(f, "padW", f.get("padding", 0))
    pad_h = _int(f, "padH", f.get("padding", pad_w))
    conv = torch.nn.Conv2d(c_in, c_out, (kh, kw), stride=(_int(f, "dH", 1), _int(f, "dW", 1)),
                           padding=(pad_h, pad_w), bias=f.get("bias") is not None, dtype=dtype)
    _copy(conv.weight, f["weight"], dtype, (c_out, c_in, kh, kw))
    if f.get("bias") is not None:
        _copy(conv.bias, f["bias"], dtype)
    return conv


def _custom_conv(f, dtype):
    import torch

    from torch_impl.nn import TanProdConv2d

    kernel = f.get("kernelName", "tanprod")
    map_mode = bool(f.get("mapMode"))
    c_in, c_out = (1, 1) if map_mode else (_int(f, "nInputPlane"), _int(f, "nOutputPlane"))
    kh, kw = _int(f, "kH"), _int(f, "kW")
    stride, padding = (_int(f, "dH", 1), _int(f, "dW", 1)), (_int(f, "padH", 0), _int(f, "padW", 0))
    bias = f.get("bias") is not None
    if kernel == "linear":
        conv = torch.nn.Conv2d(c_in, c_out, (kh, kw), stride=stride, padding=padding, bias=bias, dtype=dtype)
    elif kernel == "tanprod":
        conv = TanProdConv2d(c_in, c_out, (kh, kw), stride=stride, padding=padding, bias=bias, dtype=dtype)
    else:
        raise ValueError(f"to_torch: nn.CustomConv's kernel {kernel!r} has no torch counterpart "
                         f"(known: 'tanprod', 'linear')")
    _copy(conv.weight, f["weight"], dtype, (c_out, c_in, kh, kw))
    if bias:
        _copy(conv.bias, f["bias"], dtype)
    if map_mode:
        from .torch_modules import OneMap

        return OneMap(conv)
    return conv


def _batch_norm(f, dtype, spatial):
    import torch

    n = int(np.size(f["running_mean"]))
    affine = bool(f.get("affine", f.get("weight") is not None))
    cls = torch.nn.BatchNorm2d if spatial else torch.nn.BatchNorm1d
    bn = cls(n, eps=float(f.get("eps", 1e-5)), momentum=float(f.get("momentum", 0.1)), affine=affine,
             dtype=dtype)
    if affine:
        _copy(bn.weight, f["weight"], dtype)
        _copy(bn.bias, f["bias"], dtype)
    _copy(bn.running_mean, f["running_mean"], dtype)
    _copy(bn.running_var, f["running_var"], dtype)
    return bn


def _linear(f, dtype):
    import torch

    out_features, in_features = np.shape(f["weight"])
    linear = torch.nn.Linear(in_features, out_features, bias=f.get("bias") is not None, dtype=dtype)
    _copy(linear.weight, f["weight"], dtype)
    if f.get("bias") is not None:
        _copy(linear.bias, f["bias"], dtype)
    return linear


def _pool(f, spatial_max):
    import torch

    kernel = (_int(f, "kH"), _int(f, "kW"))
    stride = (_int(f, "dH", kernel[0] if spatial_max else 1), _int(f, "dW", kernel[1] if spatial_max else 1))
    padding = (_int(f, "padH", 0), _int(f, "padW", 0))
    ceil_mode = bool(f.get("ceil_mode", False))
    if spatial_max:
        return torch.nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode)
    pool = torch.nn.AvgPool2d(kernel, stride, padding, ceil_mode=ceil_mode,
                              count_include_pad=bool(f.get("count_include_pad", True)))
    if f.get("divide", True) is False:
        from .torch_modules import Scaled

        return Scaled(pool, kernel[0] * kernel[1])
    return pool


def _children(obj, dtype):
    modules = obj.fields.get("modules") or []
    if isinstance(modules, dict):
        modules = [modules[k] for k in sorted(modules)]
    return [_convert(m, dtype) for m in modules]


def _convert(obj, dtype):
    import torch

    from . import torch_modules as tm

    if not isinstance(obj, T7Object):
        raise ValueError(f"to_torch: a Torch7 module expected, got {type(obj).__name__}")
    f, name = obj.fields, obj.typename
    builders = {
        "nn.Sequential": lambda: torch.nn.Sequential(*_children(obj, dtype)),
        "nn.Concat": lambda: tm.Concat(_int(f, "dimension") - 1, _children(obj, dtype)),
        "nn.ConcatTable": lambda: tm.ConcatTable(_children(obj, dtype)),
        "nn.ParallelTable": lambda: tm.ParallelTable(_children(obj, dtype)),
        "nn.CAddTable": tm.CAddTable,
        "nn.Identity": torch.nn.Identity,
        "nn.Linear": lambda: _linear(f, dtype),
        "nn.SpatialConvolution": lambda: _conv(f, dtype),
        "nn.SpatialConvolutionMM": lambda: _conv(f, dtype),
        "nn.CustomConv": lambda: _custom_conv(f, dtype),
        "nn.SpatialMaxPooling": lambda: _pool(f, True),
        "nn.SpatialAveragePooling": lambda: _pool(f, False),
        "nn.BatchNormalization": lambda: _batch_norm(f, dtype, False),
        "nn.SpatialBatchNormalization": lambda: _batch_norm(f, dtype, True),
        "nn.ReLU": torch.nn.ReLU,
        "nn.Threshold": lambda: torch.nn.Threshold(float(f.get("threshold", 1e-6)), float(f.get("val", 0))),
        "nn.Tanh": torch.nn.Tanh,
        "nn.Sigmoid": torch.nn.Sigmoid,
        "nn.SoftMax": tm.SoftMax,
        "nn.LogSoftMax": tm.LogSoftMax,
        "nn.Dropout": lambda: (torch.nn.Dropout(float(f.get("p", 0.5))) if f.get("v2", True)
                               else tm.DropoutV1(float(f.get("p", 0.5)))),
        "nn.View": lambda: tm.View(np.ravel(f["size"]), f.get("numInputDims")),
        "nn.Reshape": lambda: tm.Reshape(np.ravel(f["size"]), f.get("batchMode")),
        "nn.SpatialZeroPadding": lambda: torch.nn.ZeroPad2d(
            tuple(int(f[k]) for k in ("pad_l", "pad_r", "pad_t", "pad_b"))),
    }
    if name not in builders:
        raise ValueError(f"to_torch: {name} has no converter; lua_port converts "
                         f"{', '.join(sorted(builders))}")
    module = builders[name]()
    module.train(f.get("train") is not False)
    return module


def t7_dtype(obj):
    """The dtype of the first floating-point weight in a T7Object tree (float64 if none)."""
    import torch

    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, T7Object):
            weight = item.fields.get("weight")
            if isinstance(weight, np.ndarray) and weight.dtype == np.float32:
                return torch.float32
            if isinstance(weight, np.ndarray):
                return torch.float64
            modules = item.fields.get("modules") or []
            stack.extend(modules.values() if isinstance(modules, dict) else modules)
    return torch.float64


def as_t7_object(model):
    """``model`` (a path, bytes, a T7Object or a Torch7Model) as a T7Object."""
    from .torch7 import Torch7Model, read_bytes

    if isinstance(model, T7Object):
        return model
    if isinstance(model, Torch7Model):
        return model.describe_t7()
    return parse_t7(read_bytes(model))


def to_torch(model, dtype=None):
    """A ``torch.nn.Module`` equivalent to the Torch7 nn model ``model``, with copies of
    its weights (see the module's docstring for the mapping).

    Args:
        model: a ``.t7`` file (path or bytes), a ``T7Object`` from ``lua_port.load_t7``,
            or a ``lua_port.Torch7Model``.
        dtype: the torch dtype of the parameters; None: the file's (float64 for
            DoubleTensors, float32 for FloatTensors).

    Raises:
        ValueError: a module without a torch counterpart here (the message lists those
            with one), or parameters of unexpected shapes.
    """
    obj = as_t7_object(model)
    return _convert(obj, dtype or t7_dtype(obj))
