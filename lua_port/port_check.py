"""The port checker: a Torch7 model and a PyTorch port of it, layer by layer.

``port_check(model, port, input_shape=(1, 3, 32, 32))`` runs the Torch7 original (the
``.t7`` file, in lua_port's Lua shim) and the port (a ``torch.nn.Module``) on the same
input, with the same weights, forward and backward, and reports the first layer where
they part, with both values at the worst element.

How layers are paired: the leaf modules (modules without children) of both, in the order
they run. Each port leaf is paired with the next Torch7 leaf of the same kind
(convolution, linear, max pooling, batch normalization, ReLU, ...; an unknown module
with the next one of the same output shape); Torch7 leaves the port computes without a
module (``F.relu``, ``x.view``) stay unpaired, and a difference they make shows at the
next pair, whose input then already differs. The Torch7 weights are copied into the
paired port layers (MM convolution weights reshaped; running statistics too), unless
``copy_weights=False`` (the port brings its own, e.g. from its conversion script).
Both run in float64, in evaluation mode (Dropout off, BatchNorm on running statistics),
with the port's in-place activations turned off (so every layer's input is kept).
Shapes that differ only in dimensions of size 1 count as the same (Torch7's nn.View
drops a batch of one: [1, 400] becomes [400]).

Where they part is checked in this order: the weights (shapes, when copying), the forward
pass (each pair's input, then output, then the model's output), the backward pass from
the output back (each pair's output gradient, input gradient, parameter gradients), with
``output_gradient`` a fixed random tensor (``seed``).
"""

from __future__ import annotations

import warnings

import numpy as np

from .port_report import Difference, Pair, PortReport, compare, max_diff
from .t7 import T7Object
from .torch7 import LeafRecord, Torch7Model, read_bytes

#: Torch7 leaf type -> the kind of layer it is (what a port's module is paired by).
LUA_KINDS = {
    "nn.SpatialConvolution": "convolution", "nn.SpatialConvolutionMM": "convolution",
    "nn.CustomConv": "custom convolution", "nn.Linear": "linear",
    "nn.SpatialMaxPooling": "max pooling", "nn.SpatialAveragePooling": "average pooling",
    "nn.BatchNormalization": "batch normalization", "nn.SpatialBatchNormalization": "batch normalization",
    "nn.ReLU": "relu", "nn.Threshold": "threshold", "nn.Tanh": "tanh", "nn.Sigmoid": "sigmoid",
    "nn.SoftMax": "softmax", "nn.LogSoftMax": "log-softmax", "nn.Dropout": "dropout",
    "nn.View": "reshape", "nn.Reshape": "reshape", "nn.SpatialZeroPadding": "padding",
    "nn.Identity": "identity", "nn.CAddTable": "addition",
}


def port_kind(module) -> str | None:
    """The kind of a torch module (see LUA_KINDS), or None when unknown."""
    import torch.nn as tnn

    from . import torch_modules as tm

    table = [
        (tnn.Conv2d, "convolution"), (tnn.Linear, "linear"), (tnn.MaxPool2d, "max pooling"),
        (tnn.AvgPool2d, "average pooling"), (tnn.modules.batchnorm._BatchNorm, "batch normalization"),
        (tnn.ReLU, "relu"), (tnn.Threshold, "threshold"), (tnn.Tanh, "tanh"), (tnn.Sigmoid, "sigmoid"),
        (tnn.Softmax, "softmax"), (tm.SoftMax, "softmax"), (tnn.LogSoftmax, "log-softmax"),
        (tm.LogSoftMax, "log-softmax"), (tnn.Dropout, "dropout"), (tm.DropoutV1, "dropout"),
        (tnn.Flatten, "reshape"), (tnn.Unflatten, "reshape"), (tm.View, "reshape"), (tm.Reshape, "reshape"),
        (tnn.ZeroPad2d, "padding"), (tnn.ConstantPad2d, "padding"), (tnn.Identity, "identity"),
        (tm.CAddTable, "addition"),
    ]
    try:
        from torch_impl.nn import TanProdConv2d

        table.insert(0, (TanProdConv2d, "custom convolution"))
    except ImportError:  # pragma: no cover - torch_impl ships with lua_port
        pass
    for cls, kind in table:
        if isinstance(module, cls):
            return kind
    return None


def _lua_kind(record: LeafRecord) -> str | None:
    kind = LUA_KINDS.get(record.typename)
    if kind == "threshold" and record.text == "nn.ReLU":
        return "relu"
    return kind


def _as_arrays(value):
    import torch

    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().astype(np.float64)
    if isinstance(value, (list, tuple)):
        items = [_as_arrays(v) for v in value]
        return items[0] if len(items) == 1 and isinstance(value, tuple) else items
    return np.asarray(value, dtype=np.float64)


# ----------------------------------------------------------------------------- the port


def _leaves(module):
    return [(name, m) for name, m in module.named_modules() if not list(m.children())]


def _run_port(port, x, grad_output=None):
    """The port's leaf calls (name, module, input, output, grad_input, grad_output) in call
    order, and its output (and input gradient when grad_output is given)."""
    import torch

    calls, handles = [], []
    for name, module in _leaves(port):
        def pre(m, inputs, name=name):
            calls.append({"name": name, "module": m, "input": _as_arrays(inputs)})

        def post(m, inputs, output, name=name):
            for call in reversed(calls):
                if call["module"] is m and "output" not in call:
                    call["output"] = _as_arrays(output)
                    break

        def backward(m, grad_input, grad_out):
            for call in reversed(calls):  # backward visits a reused module's calls last first
                if call["module"] is m and "grad_input" not in call:
                    call["grad_input"] = _as_arrays(grad_input)
                    call["grad_output"] = _as_arrays(grad_out)
                    break

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
        if grad_output is not None:
            handles.append(module.register_full_backward_hook(backward))
    error = None
    output = grad_input = None
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=grad_output is not None)
    try:
        with torch.set_grad_enabled(grad_output is not None), warnings.catch_warnings():
            # A module whose input is a list (CAddTable) has no input gradient to hook.
            warnings.simplefilter("ignore", UserWarning)
            out = port(xt)
            output = _as_arrays(out)
            if grad_output is not None:
                grad = torch.as_tensor(grad_output, dtype=torch.float64)
                if grad.shape != out.shape and grad.numel() == out.numel():
                    grad = grad.reshape(out.shape)  # Torch7's [10] for the port's [1, 10]
                out.backward(grad)
                grad_input = _as_arrays(xt.grad)
    except Exception as exc:  # noqa: BLE001 - a port that fails is a finding, reported
        error = exc
    finally:
        for handle in handles:
            handle.remove()
    return calls, output, grad_input, error


def _pair(lua_leaves: list[LeafRecord], calls) -> list[Pair]:
    pairs, position = [], 0
    lua_used = [False] * len(lua_leaves)
    for call in calls:
        kind = port_kind(call["module"])
        found = None
        for j in range(position, len(lua_leaves)):
            leaf = lua_leaves[j]
            if kind is not None and _lua_kind(leaf) == kind:
                found = j
                break
            if kind is None and np.shape(leaf.output) == np.shape(call.get("output")):
                found = j
                break
        module = call["module"]
        text = f"{type(module).__name__}({module.extra_repr()})"
        if found is None:
            pairs.append(Pair(None, port_name=call["name"], port_text=text, port_module=call["module"]))
            continue
        for j in range(position, found):
            pairs.append(Pair(lua_leaves[j]))
            lua_used[j] = True
        lua_used[found] = True
        position = found + 1
        pairs.append(Pair(lua_leaves[found], port_name=call["name"], port_text=text,
                          port_module=call["module"]))
    for j in range(position, len(lua_leaves)):
        pairs.append(Pair(lua_leaves[j]))
    return pairs


def _t7_at(model: T7Object, path: str) -> T7Object:
    obj = model
    for index in (int(i) for i in path.strip("()").split(")(") if i):
        modules = obj.fields["modules"]
        obj = modules[index - 1] if isinstance(modules, list) else modules[index]
    return obj


def _copy_weights(pairs) -> tuple[Pair, str] | None:
    """Copy each paired Torch7 leaf's parameters (and running statistics) into its port
    module; (pair, message) when a shape does not fit."""
    import torch

    for p in pairs:
        if p.lua is None or p.port_module is None:
            continue
        own = dict(p.port_module.named_parameters(recurse=False))
        lua_params = list(p.lua.parameters)
        if not lua_params and not own:
            continue
        names = [n for n in ("weight", "bias") if n in own] or list(own)
        if len(names) != len(lua_params):
            return p, (f"Torch7's module has {len(lua_params)} parameter tensor(s) "
                       f"{[list(np.shape(a)) for a in lua_params]}, the port's {len(names)} "
                       f"{[list(own[n].shape) for n in names]}")
        for name, value in zip(names, lua_params):
            target = own[name]
            value = np.asarray(value, dtype=np.float64)
            if tuple(value.shape) != tuple(target.shape):
                if value.ndim == 2 and tuple(target.shape) == value.shape[::-1]:
                    return p, (f"{name}: Torch7's is {list(value.shape)} ([out, in]), the port's "
                               f"{list(target.shape)}: transposed (torch's nn.Linear is [out, in] too)")
                if value.size != target.numel():
                    return p, (f"{name}: Torch7's has shape {list(value.shape)}, the port's "
                               f"{list(target.shape)}")
                value = value.reshape(tuple(target.shape))
            with torch.no_grad():
                target.copy_(torch.as_tensor(value, dtype=target.dtype))
        fields = p.lua_fields
        for stat in ("running_mean", "running_var"):
            buffer = getattr(p.port_module, stat, None)
            if isinstance(buffer, torch.Tensor) and stat in fields:
                with torch.no_grad():
                    buffer.copy_(torch.as_tensor(np.asarray(fields[stat]), dtype=buffer.dtype))
    return None


def _module_of(port):
    import torch

    if isinstance(port, torch.nn.Module):
        return port
    if callable(port):
        made = port()
        if isinstance(made, torch.nn.Module):
            return made
    raise TypeError(f"port_check: port must be a torch.nn.Module, or a class or function that makes one "
                    f"with no arguments, got {type(port).__name__}")


def port_check(model, port, input=None, *, input_shape=None, seed: int = 0, runtime: str | None = None,
               copy_weights: bool = True, rtol: float = 1e-7, atol: float = 1e-9) -> PortReport:
    """Run a Torch7 model and its PyTorch port side by side; report where they part.

    Args:
        model: the Torch7 model: a ``.t7`` file (path or bytes) or a
            :class:`~lua_port.torch7.Torch7Model`.
        port: the port: a ``torch.nn.Module``, or a class / function making one.
        input: the input array; or ``input_shape`` for a standard normal one (``seed``).
        runtime: the Lua runtime (``"luajit"``, ``"5.4"``, None: the default).
        copy_weights: copy Torch7's weights into the port (default); False keeps the
            port's own.
        rtol, atol: |torch7 - port| <= atol + rtol * max|torch7| counts as equal.

    Returns:
        A :class:`PortReport` (``str(report)`` is the table and the verdict).
    """
    if (input is None) == (input_shape is None):
        raise ValueError("port_check: give either input or input_shape")
    rng = np.random.default_rng(seed)
    if input is None:
        shape = tuple(int(s) for s in input_shape)
        if not shape or any(s < 1 for s in shape):
            raise ValueError(f"port_check: input_shape must be positive sizes, got {input_shape!r}")
        input = rng.standard_normal(shape)
    x = np.asarray(input, dtype=np.float64)
    if not isinstance(model, Torch7Model):
        model = Torch7Model.from_bytes(read_bytes(model), runtime)
    lua_model = model
    t7_model = lua_model.describe_t7()
    module = _module_of(port).double().eval()
    for m in module.modules():
        if getattr(m, "inplace", False) is True:
            m.inplace = False

    lua_model.evaluate()
    lua_leaves, lua_output = lua_model.record_forward(x)
    report = PortReport(False, x.shape, lua_model.runtime)

    calls, _, _, error = _run_port(module, x)
    pairs = _pair(lua_leaves, calls)
    for p in pairs:
        if p.lua is not None:
            p.lua_fields = (_t7_at(t7_model, p.lua.path) if p.lua.path else t7_model).fields
    report.pairs = pairs
    if copy_weights:
        problem = _copy_weights(pairs)
        if problem:
            report.stage, report.pair, report.message = "weights", problem[0], problem[1]
            return report
    missing = [p for p in pairs if (p.lua is None) != (p.port_module is None)
               and ((p.lua is not None and p.lua.parameters) or (p.lua is None and p.port_module is not None
                    and any(True for _ in p.port_module.parameters(recurse=False))))]
    if missing:
        p = missing[0]
        side = "the port has no module paired with it" if p.lua else "Torch7 has no module paired with it"
        report.stage, report.pair, report.message = "structure", p, f"a layer with parameters: {side}"
        return report

    grad_output = rng.standard_normal(np.shape(lua_output))
    calls, port_output, port_grad_input, error = _run_port(module, x, grad_output)
    by_module = {}
    for call in calls:
        by_module.setdefault(id(call["module"]), []).append(call)
    for p in pairs:
        if p.port_module is not None and by_module.get(id(p.port_module)):
            call = by_module[id(p.port_module)].pop(0)
            p.port_input, p.port_output = call.get("input"), call.get("output")
            p.port_grad_input, p.port_grad_output = call.get("grad_input"), call.get("grad_output")
    lua_grad_input = lua_model.record_backward(x, grad_output, lua_leaves)

    # Forward, in the order the layers run.
    previous_ok = True
    for p in pairs:
        if p.lua is None or p.port_module is None:
            continue
        if p.port_output is None:
            break
        p.forward_diff = max_diff(p.lua.output, p.port_output)
        lua_input = p.lua.input
        port_input = p.port_input
        if isinstance(port_input, list) and len(port_input) == 1 and not isinstance(lua_input, list):
            port_input = port_input[0]
        found = compare("input", lua_input, port_input, rtol, atol)
        if found and previous_ok:
            report.stage, report.pair, report.difference = "forward", p, found
            report.message = ("this layer's input already differs while every earlier paired layer agrees: "
                              "the port computes something differently between the previous paired layer and "
                              "this one (code in its forward(), or a layer Torch7 has and the port lacks)")
            return report
        found = compare("output", p.lua.output, p.port_output, rtol, atol)
        if found:
            report.stage, report.pair, report.difference = "forward", p, found
            report.message = _hint(p, found)
            return report
    if error is not None:
        report.stage, report.message = "forward", f"the port raised {type(error).__name__}: {error}"
        return report
    found = compare("model output", lua_output, port_output, rtol, atol)
    if found:
        report.stage, report.difference = "forward", found
        report.message = ("every paired layer agrees, but the model outputs differ: look after the last "
                          "paired layer")
        return report

    # Backward, from the output back.
    for p in reversed(pairs):
        if p.lua is None or p.port_module is None:
            continue
        checks = [("output gradient", p.lua.grad_output, p.port_grad_output),
                  ("input gradient", p.lua.grad_input, p.port_grad_input)]
        own = [v for n, v in p.port_module.named_parameters(recurse=False) if n in ("weight", "bias")] or \
            list(p.port_module.parameters(recurse=False))
        for i, (lua_grad, param) in enumerate(zip(p.lua.grad_parameters, own)):
            port_grad = None if param.grad is None else param.grad.detach().numpy()
            if port_grad is not None and port_grad.size == np.size(lua_grad):
                port_grad = port_grad.reshape(np.shape(lua_grad))
            checks.append((f"gradient of parameter {i + 1} ({'weight' if i == 0 else 'bias'})", lua_grad,
                           port_grad))
        diffs = [max_diff(a, b) for _, a, b in checks if a is not None and b is not None]
        p.backward_diff = max(diffs) if diffs else None
        for what, a, b in checks:
            if a is None or b is None:
                continue
            found = compare(what, a, b, rtol, atol)
            if found:
                report.stage, report.pair, report.difference = "backward", p, found
                return report
    found = compare("input gradient of the model", lua_grad_input, port_grad_input, rtol, atol)
    if found:
        report.stage, report.difference = "backward", found
        return report
    report.ok = True
    return report


def _hint(p: Pair, found: Difference) -> str:
    """A likely cause for a known kind of parting."""
    name = p.lua.typename
    text = p.lua.text
    pooling = name in ("nn.SpatialMaxPooling", "nn.SpatialAveragePooling")
    if pooling and found.torch7_shape != found.port_shape:
        ceil = bool(p.lua_fields.get("ceil_mode", False))
        port_ceil = bool(getattr(p.port_module, "ceil_mode", False))
        if ceil != port_ceil:
            return (f"Torch7's {text} rounds its output size {'up (:ceil())' if ceil else 'down (floor)'}, "
                    f"the port's {'up (ceil_mode=True)' if port_ceil else 'down (ceil_mode=False)'}")
        return "the pooling windows differ (kernel, stride, padding or ceil mode)"
    if name == "nn.SpatialAveragePooling":
        return ("Torch7's average pooling counts the padding (count_include_pad) unless "
                "setCountExcludePad(); its stride defaults to 1, not the kernel")
    if name in ("nn.SoftMax", "nn.LogSoftMax"):
        return "Torch7 normalises over the feature dimension (the 2nd of a batch, the 1st of a 3-D input)"
    if name in ("nn.BatchNormalization", "nn.SpatialBatchNormalization"):
        return "compare eps, momentum and the running statistics (the check runs in evaluation mode)"
    return ""
