"""The one factory behind every custom op of torch_impl.

A :class:`CustomOp` is two ``torch.library`` custom ops, ``crossconv::<name>`` and
``crossconv::<name>_backward``, each with a fake (meta) implementation and a vmap rule,
joined by one autograd formula (``setup_context`` + ``backward``) registered twice:

- on the forward op (``register_autograd``), so ``torch.ops.crossconv.<name>`` is
  differentiable by itself and passes ``torch.library.opcheck``;
- as an ``autograd.Function`` with a separate ``setup_context``, which is what calling a
  :class:`CustomOp` runs. ``torch.func.grad``, ``vjp``, ``jacrev`` and ``vmap`` accept only
  this form: the Function that ``register_autograd`` generates has no ``setup_context``,
  so functorch refuses it. Its backward calls the backward op through a second such
  Function whose own backward says that double backward is not supported.

The vmap rules fold the vmapped dimension into the batch when only per-sample tensors
are vmapped and every result is per sample (one call, no loop); otherwise (a vmapped
weight, or a backward op that sums over the batch) they call the op once per vmapped
slice and stack the results, never torch's slow generic fallback.

Most ops are built by :func:`contract_op`: the reference's signature check, the contract
functions ``forward``/``backward`` of :mod:`torch_impl.native` and
``torch_impl.kernels`` (chosen by ``impl``), and optionally a bias added after the
forward. An op whose contract differs (the pooling kernels) passes its own
``compute``/``fake``/``backward`` functions to :class:`CustomOp`.

Every function here takes the op's arguments as a :class:`types.SimpleNamespace`
named as in the schema (``args.input``, ``args.stride``, ...).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import Tensor

from .common import implementation, owned, shape


@dataclass(frozen=True)
class Argument:
    """One argument of a schema: ``Argument("bias", "Tensor?")``."""

    name: str
    type: str

    @property
    def is_tensor(self) -> bool:
        return self.type.startswith("Tensor")

    def __str__(self) -> str:
        return f"{self.type} {self.name}"


def parse_arguments(schema: str) -> tuple[Argument, ...]:
    """``"Tensor input, int[] stride"`` as :class:`Argument` s."""
    return tuple(Argument(*reversed(part.strip().rsplit(" ", 1))) for part in schema.split(","))


def _returns(count: int) -> str:
    return "Tensor" if count == 1 else f"({', '.join(['Tensor'] * count)})"


def _as_tuple(result) -> tuple:
    return result if isinstance(result, tuple) else (result,)


def _no_double_backward(name: str):
    def backward(ctx, *grads):
        raise RuntimeError(
            f"{name}: double backward is not supported (the gradient of the gradient of "
            f"crossconv::{name} is not implemented)"
        )

    return backward


def _function(name: str, call: Callable, arguments: Sequence[Argument],
              setup_context: Callable, backward: Callable):
    """An ``autograd.Function`` in the form functorch accepts: ``forward`` without ctx,
    a separate ``setup_context``, vmap through the ops' own vmap rules."""

    def forward(*args):
        return call(*args)

    # Dynamo counts forward's parameters to tell whether it takes a ctx.
    forward.__signature__ = inspect.Signature(
        [inspect.Parameter(a.name, inspect.Parameter.POSITIONAL_ONLY) for a in arguments])
    return type(name, (torch.autograd.Function,), {
        "forward": staticmethod(forward),
        "setup_context": staticmethod(setup_context),
        "backward": staticmethod(backward),
        "generate_vmap_rule": True,
    })


class CustomOp:
    """``crossconv::<name>`` with its backward op, fakes, autograd and vmap rules.

    Args:
        name: the op's name (``torch.ops.crossconv.<name>``).
        arguments: the forward op's schema arguments, ``"Tensor input, Tensor? bias,
            int[] stride, ..."``; tensors first.
        compute: ``args -> output`` (or a tuple, see ``outputs``) on real tensors.
        fake: ``args -> output`` on fake tensors: empty tensors of the right shapes.
        grads: the tensor arguments the backward op returns gradients for, in its order.
        backward: ``bargs -> gradients`` (one per name in ``grads``; None for an absent
            optional tensor), where ``bargs`` has ``grad``, the ``saved`` tensors,
            ``input_size`` if asked for, and the forward's non-tensor arguments.
        backward_fake: as ``backward`` on fake tensors (default: gradients shaped like
            the saved tensors of the same names).
        saved: what the backward op takes after ``grad``: names of tensor arguments or
            of outputs (default: every tensor argument but ``bias``).
        outputs: names of the outputs; the first is the differentiable one.
        bias: the name of a ``[O]`` tensor argument added to the output by ``compute``,
            whose gradient (the output gradient summed over all but the channel axis)
            autograd computes without the backward op.
        per_sample: tensor arguments with the batch first (``[N, ...]``); the outputs
            are per sample too. The rest (weights) is shared by the batch.
        input_size: whether the backward op takes ``int[] input_size``, the spatial size
            of ``input`` (for a backward op that saves no input).
    """

    def __init__(self, name: str, arguments: str, *, compute: Callable, fake: Callable,
                 grads: Sequence[str], backward: Callable, backward_fake: Callable | None = None,
                 saved: Sequence[str] | None = None, outputs: Sequence[str] = ("output",),
                 bias: str | None = None, per_sample: Sequence[str] = ("input",),
                 input_size: bool = False):
        self.name = name
        self.arguments = parse_arguments(arguments)
        self.names = tuple(a.name for a in self.arguments)
        tensors = [a.name for a in self.arguments if a.is_tensor]
        self.outputs = tuple(outputs)
        self.grads = tuple(grads)
        self.bias = bias
        self.saved = tuple(n for n in tensors if n != bias) if saved is None else tuple(saved)
        self.per_sample = frozenset(per_sample)
        self.input_size = input_size
        self.statics = tuple(a for a in self.arguments if not a.is_tensor)
        self._compute, self._fake = compute, fake
        self._backward_compute = backward
        self._backward_fake = backward_fake or self._fake_gradients

        types = {a.name: a.type for a in self.arguments}
        self.backward_arguments = (
            Argument("grad", "Tensor"),
            *(Argument(n, types.get(n, "Tensor")) for n in self.saved),
            *([Argument("input_size", "int[]")] if input_size else []),
            *self.statics,
        )
        self.op = self._define(name, self.arguments, len(self.outputs), self._run_forward,
                               self._run_forward_fake)
        self.backward_op = self._define(f"{name}_backward", self.backward_arguments,
                                        len(self.grads), self._run_backward,
                                        self._run_backward_fake)
        self._backward_function = _function(
            f"{_camel(name)}BackwardFunction", self.backward_op._opoverload,
            self.backward_arguments, lambda ctx, inputs, output: None, _no_double_backward(name))
        setup_context, backward = _autograd_formula(self)
        self.op.register_autograd(backward, setup_context=setup_context)
        # Per-sample tensors of the backward op: grad, per-sample saved tensors, outputs.
        backward_per_sample = {"grad", *(n for n in self.saved if n in self.per_sample
                                          or n in self.outputs)}
        self.op.register_vmap(_vmap_rule(self.op, self.arguments, self.per_sample,
                                         folds_outputs=True))
        self.backward_op.register_vmap(_vmap_rule(
            self.backward_op, self.backward_arguments, backward_per_sample,
            folds_outputs=all(n in self.per_sample for n in self.grads)))
        # The Functions call the OpOverloads, which Dynamo traces (it cannot wrap the
        # custom op objects themselves).
        self._function = _function(f"{_camel(name)}Function", self.op._opoverload,
                                   self.arguments, setup_context, backward)

    def __call__(self, *args):
        """Run the op, differentiable under autograd and the ``torch.func`` transforms."""
        return self._function.apply(*args)

    # ---------------------------------------------------------------- the two ops

    @staticmethod
    def _define(name, arguments, returns, compute, fake):
        schema = f"({', '.join(map(str, arguments))}) -> {_returns(returns)}"
        op = torch.library.custom_op(f"crossconv::{name}", compute, mutates_args=(),
                                     schema=schema)
        op.register_fake(fake)
        return op

    def _namespace(self, arguments, values) -> SimpleNamespace:
        return SimpleNamespace(**{a.name: v for a, v in zip(arguments, values)})

    def _run_forward(self, *values):
        result = self._compute(self._namespace(self.arguments, values))
        return tuple(owned(t) for t in result) if isinstance(result, tuple) else owned(result)

    def _run_forward_fake(self, *values):
        return self._fake(self._namespace(self.arguments, values))

    def _run_backward(self, *values):
        args = self._namespace(self.backward_arguments, values)
        grads = _as_tuple(self._backward_compute(args))
        return self._gradient_tensors(args, grads, owned)

    def _run_backward_fake(self, *values):
        args = self._namespace(self.backward_arguments, values)
        return self._gradient_tensors(args, _as_tuple(self._backward_fake(args)), lambda t: t)

    def _gradient_tensors(self, args, grads, finish):
        """The backward op's results: an absent optional tensor's gradient is an empty
        tensor (a schema output cannot be None)."""
        out = tuple(args.grad.new_empty(0) if g is None else finish(g) for g in grads)
        return out[0] if len(out) == 1 else out

    def _fake_gradients(self, args):
        return tuple(None if getattr(args, n) is None else getattr(args, n).new_empty(
            getattr(args, n).shape) for n in self.grads)


def _autograd_formula(op: CustomOp):
    """``(setup_context, backward)`` of ``op``: closures over plain values, which Dynamo
    traces (it cannot trace methods bound to the op)."""
    names, saved, grads, bias = op.names, op.saved, op.grads, op.bias
    outputs, input_size = op.outputs, op.input_size
    statics = tuple(a.name for a in op.statics)
    backward_op, backward_function = op.backward_op._opoverload, op._backward_function

    def setup_context(ctx, inputs, output):
        args = dict(zip(names, inputs))
        produced = dict(zip(outputs, _as_tuple(output)))
        ctx.save_for_backward(*(args[n] if n in args else produced[n] for n in saved))
        ctx.present = {n: isinstance(v, Tensor) for n, v in args.items()}
        ctx.input_size = [list(args["input"].shape[2:])] if input_size else []
        ctx.statics = tuple(args[n] for n in statics)

    def backward(ctx, grad, *output_grads):
        # Every gradient is computed: Dynamo cannot read ctx.needs_input_grad, and the
        # contract functions compute them together anyway.
        gradients = dict.fromkeys(names)
        args = (grad, *ctx.saved_tensors, *ctx.input_size, *ctx.statics)
        # Dynamo cannot trace an autograd.Function inside a backward: compiled code calls
        # the backward op itself.
        call = backward_op if torch.compiler.is_compiling() else backward_function.apply
        for n, g in zip(grads, _as_tuple(call(*args))):
            gradients[n] = g if ctx.present[n] else None
        if bias is not None and ctx.present[bias]:
            gradients[bias] = grad.sum((0, 2, 3))
        return tuple(gradients.values())

    return setup_context, backward


def _vmap_rule(op, arguments, per_sample, folds_outputs):
    """``op``'s vmap rule: folded into the batch when only ``per_sample`` tensors are
    vmapped and ``folds_outputs`` (every result is per sample), else one call per slice."""

    def rule(info, in_dims, *values):
        batch = info.batch_size
        vmapped = [a.name for a, v, d in zip(arguments, values, in_dims)
                   if isinstance(v, Tensor) and d is not None]
        if folds_outputs and all(n in per_sample for n in vmapped):
            return _folded(op, arguments, per_sample, batch, in_dims, values)
        return _looped(op, batch, in_dims, values)

    return rule


def _folded(op, arguments, per_sample, batch, in_dims, values):
    """The vmapped dimension folded into the batch: ``[B, N, ...] -> [B*N, ...]``, one call."""
    folded, samples = [], None
    for a, v, d in zip(arguments, values, in_dims):
        if a.name in per_sample and isinstance(v, Tensor):
            v = v.movedim(d, 0) if d is not None else v.expand(batch, *v.shape)
            samples = v.shape[1]
            v = v.flatten(0, 1)
        folded.append(v)
    result = op(*folded)

    def unfold(t):
        if t.dim() == 1 and t.numel() == 0:  # an absent optional tensor's gradient
            return t, None
        return t.unflatten(0, (batch, samples)), 0

    if isinstance(result, tuple):
        pairs = [unfold(t) for t in result]
        return tuple(t for t, _ in pairs), tuple(d for _, d in pairs)
    return unfold(result)


def _looped(op, batch, in_dims, values):
    """One call per vmapped slice, stacked."""
    results = []
    for b in range(batch):
        results.append(op(*(v.select(d, b) if isinstance(v, Tensor) and d is not None else v
                            for v, d in zip(values, in_dims))))
    if isinstance(results[0], tuple):
        return tuple(torch.stack(ts) for ts in zip(*results)), (0,) * len(results[0])
    return torch.stack(results), 0


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def contract_op(name: str, file: str, arguments: str, *, check: Callable,
                contract_args: Callable, grads: Sequence[str],
                per_sample: Sequence[str] = ("input",), bias: str | None = "bias",
                functions: tuple[str, str] = ("forward", "backward")) -> CustomOp:
    """A custom op computed by the contract functions of ``torch_impl.native.<file>`` /
    ``torch_impl.kernels.<file>`` (``impl``, the last argument, chooses):
    ``forward(*tensors, *contract_args(sig))`` and ``backward(grad, *tensors,
    *contract_args(sig))``, where ``tensors`` are the tensor arguments but the bias, in
    schema order, and ``sig = check(**shapes, **non-tensor arguments but impl)`` is the
    reference's signature check (its ``out_shape`` sizes the fake output). The bias, if
    any, is added after the forward. ``functions`` names the two contract functions, for
    a file that holds several ops (``("conv_forward", "conv_backward")``).
    """
    forward_name, backward_name = functions
    parsed = parse_arguments(arguments)
    tensors = [a.name for a in parsed if a.is_tensor and a.name != bias]

    def signature(args):
        """The check on a forward op's arguments, or a backward op's (no bias there)."""
        return check(**{a.name: shape(getattr(args, a.name, None)) if a.is_tensor
                        else getattr(args, a.name) for a in parsed if a.name != "impl"})

    def contiguous(args):
        return [None if (t := getattr(args, n)) is None else t.contiguous() for n in tensors]

    def module(args):
        return implementation(name, file, args.impl, args.input.device)

    def compute(args):
        sig = signature(args)
        out = getattr(module(args), forward_name)(*contiguous(args), *contract_args(sig))
        b = getattr(args, bias) if bias is not None else None
        return out if b is None else out + b.view(1, -1, 1, 1)

    def fake(args):
        return args.input.new_empty(signature(args).out_shape)

    def backward(args):
        sig = signature(args)
        return getattr(module(args), backward_name)(args.grad.contiguous(), *contiguous(args),
                                                    *contract_args(sig))

    return CustomOp(name, arguments, compute=compute, fake=fake, grads=grads,
                    backward=backward, bias=bias, per_sample=per_sample)
