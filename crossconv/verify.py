"""``crossconv verify MODULE:FUNCTION --op NAME``: hold your own implementation to the reference.

Runs the op's property suite against ``FUNCTION`` (called with the op's signature from docs/, tensor
arguments by keyword): the boundary cases and golden cases first (always), then
``--examples`` configurations drawn by the registry's strategy for the op, narrowed by
``--limit key=value`` exactly as a registry entry's limits narrow a backend. Each case is
compared with the float64 reference, forward and, with ``--grad``, gradients (through the
framework's autodiff, or a NumPy VJP given with ``--vjp``), with the dtype's tolerance.

- exit 0: every case passed; prints how many configurations and which features ran.
- exit 1: a counterexample, shrunk by Hypothesis, printed as a runnable Python snippet
  (inputs, arguments, expected and actual values at the worst element). A function that
  raises on a valid call fails the same way, with the call shown.
- exit 2: bad options (an unknown op or ``--limit`` key, a ``--limit`` value that is not
  a Python literal, ``--grad`` on NumPy without ``--vjp``) or a module that does not import.

``--framework numpy`` (the default): the function takes and returns NumPy arrays and may
return float64 for float32 input, as the reference does. ``torch``: torch tensors (on
``--device``); ``jax``: JAX arrays, with x64 enabled so float64 stays float64. A function
whose signature can be inspected and that lacks an argument of the op's signature is
called without it while the case uses the argument's default (so a kernel without
dilation passes with ``--limit max_dilation=1``); builtins without an inspectable
signature (``F.conv2d``, ``F.max_pool2d``) are simply called.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from .boundary import admits, strategy_defaults
from .cases import Case, as_outputs
from .registry import OPS

FRAMEWORKS = ("numpy", "torch", "jax")


class UsageError(Exception):
    """A bad option or an import that failed: exit 2."""


def add_arguments(parser) -> None:
    parser.add_argument("target", metavar="MODULE:FUNCTION",
                        help="the implementation, e.g. torchvision.ops:deform_conv2d or mykernels:conv")
    parser.add_argument("--op", required=True, help=f"the op it implements: {', '.join(OPS)}")
    parser.add_argument("--framework", default="numpy", choices=FRAMEWORKS,
                        help="what FUNCTION takes and returns (default numpy)")
    parser.add_argument("--grad", action="store_true",
                        help="check gradients too (torch/jax: autodiff; numpy: needs --vjp)")
    parser.add_argument("--vjp", metavar="MODULE:FUNCTION",
                        help="a NumPy VJP, called as vjp(grad_output, <the op's arguments>) and "
                             "returning a dict like reference.<op>_vjp; implies --grad")
    parser.add_argument("--examples", type=int, default=100,
                        help="drawn configurations (default 100), after the boundary and golden cases")
    parser.add_argument("--limit", action="append", default=[], metavar="KEY=VALUE",
                        help="narrow the draw like a registry limit, VALUE a Python literal "
                             "(e.g. max_dilation=1, nonfinite=True, dtypes=('float32',)); repeatable")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawn cases (default 0)")
    parser.add_argument("--device", default="cpu", help="torch/jax device (default cpu)")


# ----------------------------------------------------------------------------- options


def parse_limits(op, items) -> dict:
    """``["max_dilation=1", ...]`` as keyword options of the op's strategy."""
    known = strategy_defaults(op.cases)
    limits = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise UsageError(f"--limit {item!r}: expected KEY=VALUE")
        if key not in known:
            raise UsageError(f"--limit {key}: unknown for {op.name}; its options are "
                             + ", ".join(f"{k} (default {v!r})" for k, v in known.items()))
        try:
            limits[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            raise UsageError(f"--limit {key}={text}: the value must be a Python literal "
                             f"(e.g. 1, True, ('float32',))") from None
        if key == "dtypes":
            dtypes = (limits[key],) if isinstance(limits[key], str) else tuple(limits[key])
            if not dtypes or not set(dtypes) <= {"float32", "float64"}:
                raise UsageError(f"--limit dtypes={text}: float32 and/or float64")
            limits[key] = dtypes
    return limits


def load_target(target: str, what: str = "MODULE:FUNCTION"):
    """The object named ``module:attr.attr``; imports from the current directory too."""
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path:
        raise UsageError(f"{target!r}: expected {what}, e.g. torchvision.ops:deform_conv2d")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any import failure is a usage error
        raise UsageError(f"cannot import {module_name}: {type(error).__name__}: {error}") from None
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{module_name} has no attribute {attr_path}") from None
    if not callable(obj):
        raise UsageError(f"{target} is not callable")
    return obj


# ----------------------------------------------------------------------------- calling


class Signature:
    """Which of the op's arguments a function accepts (all, when it cannot be inspected)."""

    def __init__(self, fn, op):
        self.spec_defaults = {
            name: p.default for name, p in inspect.signature(op.reference).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        try:
            parameters = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):  # builtins such as F.conv2d: called, not inspected
            self.accepted = None
            return
        if any(p.kind == p.VAR_KEYWORD for p in parameters):
            self.accepted = None
        else:
            self.accepted = {p.name for p in parameters}

    def arguments(self, kwargs: dict) -> dict:
        """``kwargs`` without the arguments the function lacks; ``TypeError`` if the case
        needs one of them at a value other than its default."""
        if self.accepted is None:
            return kwargs
        kept = {}
        for name, value in kwargs.items():
            if name in self.accepted:
                kept[name] = value
            elif not _is_default(value, self.spec_defaults.get(name, inspect.Parameter.empty)):
                raise TypeError(f"the function has no argument {name!r}, and this case needs "
                                f"{name}={_short(value)} (narrow the draw with --limit)")
        return kept


def _is_default(value, default) -> bool:
    if default is inspect.Parameter.empty:
        return False
    if value is None or default is None:
        return value is None and default is None
    try:
        return bool(np.all(np.asarray(value) == np.asarray(default)))
    except (TypeError, ValueError):
        return False


def _short(value) -> str:
    return f"array{tuple(value.shape)}" if hasattr(value, "shape") else repr(value)


class NumpyAdapter:
    """A NumPy implementation: called on copies of the arrays; gradients from its VJP."""

    def __init__(self, vjp=None):
        self.vjp_fn = vjp

    def forward(self, fn, case: Case, extra) -> tuple[np.ndarray, ...]:
        return tuple(np.asarray(r) for r in as_outputs(case.call(fn, np.copy, **extra)))

    def vjp(self, fn, case: Case, grad_output, wrt, extra) -> dict:
        grad = grad_output.astype(case.dtype)
        grads = case.call(lambda **kw: self.vjp_fn(grad, **kw), np.copy, **extra)
        if not isinstance(grads, dict):
            raise TypeError(f"the VJP returned {type(grads).__name__}, expected a dict like "
                            f"reference.{case.op}_vjp")
        return {name: None if grads.get(name) is None else np.asarray(grads[name]) for name in wrt}


def make_adapter(framework: str, device: str, vjp=None):
    if framework == "numpy":
        if device != "cpu":
            raise UsageError("--device: a NumPy implementation runs on the CPU")
        return NumpyAdapter(vjp)
    from . import frameworks

    if importlib.util.find_spec(framework) is None:
        raise UsageError(f"--framework {framework}: {framework} is not installed")
    if framework == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)  # float64 cases stay float64
    if framework not in frameworks.ADAPTERS:
        raise UsageError(f"--framework {framework}: crossconv.frameworks has no {framework} adapter "
                         f"(it comes with the {framework} backend)")
    try:
        return frameworks.adapter(framework, device)
    except LookupError as error:
        raise UsageError(f"--device {device}: {error}") from None


# ----------------------------------------------------------------------------- the property


@dataclass(frozen=True)
class Draw:
    kind: str  # "drawn", "boundary", "golden"
    name: str
    case: Case
    expected: np.ndarray | None = None


class Counterexample(AssertionError):
    def __init__(self, draw: Draw, comparisons):
        super().__init__(f"{draw.kind} {draw.name}")
        self.draw = draw
        self.comparisons = comparisons


def fixed_draws(op, limits) -> tuple[list[Draw], list[str]]:
    """The boundary cases the limits admit (in each allowed dtype) and the golden cases;
    and the boundary cases left out, with the reason."""
    from .crosscheck import cast
    from .goldens import GOLDENS

    dtypes = tuple(limits.get("dtypes", strategy_defaults(op.cases)["dtypes"]))
    draws, skipped = [], []
    for b in op.boundary():
        reason = admits(op.cases, limits, b)
        if reason:
            skipped.append(f"{b.name} ({reason})")
            continue
        draws += [Draw("boundary", b.name, cast(b.case, dtype)) for dtype in dtypes]
    golden_dtype = "float64" if "float64" in dtypes else dtypes[0]
    for golden in GOLDENS:
        if golden.op == op.name:
            draws.append(Draw("golden", golden.name, cast(golden.case, golden_dtype),
                              golden.expected.astype(golden_dtype)))
    return draws, skipped


class Features:
    """What the cases exercised: dtypes, batch sizes, optional tensors, every parameter's values."""

    def __init__(self):
        self.kinds = Counter()
        self.values = defaultdict(Counter)
        self.boundary = []

    def add(self, draw: Draw) -> None:
        self.kinds[draw.kind] += 1
        case, t = draw.case, draw.case.tensors
        if draw.kind == "boundary" and draw.name not in self.boundary:
            self.boundary.append(draw.name)
        first = next(v for v in t.values() if v is not None)
        self.values["dtype"][np.dtype(case.dtype).name] += 1
        self.values["batch N"][first.shape[0]] += 1
        kernel = t.get("weight", t.get("template"))
        if kernel is not None:
            self.values["kernel kh x kw"]["x".join(map(str, kernel.shape[-2:]))] += 1
        if case.op == "deform_conv2d":
            self.values["weight groups"][t["input"].shape[1] // t["weight"].shape[1]] += 1
            taps = t["weight"].shape[2] * t["weight"].shape[3]
            self.values["offset groups"][t["offset"].shape[1] // (2 * taps)] += 1
        if case.op == "conv2_5d":
            self.values["depth bins B"][t["weight"].shape[0]] += 1
        for name in ("bias", "mask"):
            if name in t:
                self.values[name]["given" if t[name] is not None else "None"] += 1
        for name, value in t.items():
            if value is not None and not np.isfinite(value).all():
                self.values["non-finite values in"][name] += 1
        for name, value in case.params.items():
            self.values[name][value] += 1

    def lines(self) -> list[str]:
        out = []
        for key, counts in self.values.items():
            items = sorted(counts.items(), key=lambda kv: repr(kv[0]))
            text = ", ".join(f"{_label(v)} x{n}" for v, n in items[:12])
            more = f", ... ({len(items)} distinct)" if len(items) > 12 else ""
            out.append(f"  {key:<22} {text}{more}")
        return out


def _label(value) -> str:
    return value if isinstance(value, str) else repr(value)


def run_suite(fn, op, adapter, grad: bool, examples: int, limits: dict, seed: int,
              float64_ok: bool):
    """``(features, counterexample or None, skipped boundary cases)``."""
    from hypothesis import HealthCheck, Phase, Verbosity, example, given, settings
    from hypothesis import seed as hypothesis_seed

    from . import measure

    fixed, skipped = fixed_draws(op, limits)
    features = Features()
    strategy = op.cases(**limits).map(lambda case: Draw("drawn", "", case))

    def check(draw: Draw):
        comparisons = _quiet(measure.measure_forward, adapter, fn, draw.case, None, draw.expected,
                             float64_ok)
        if grad and all(c.passed for c in comparisons):
            comparisons += _quiet(measure.measure_vjp, adapter, fn, draw.case)
        features.add(draw)
        if not all(c.passed for c in comparisons):
            raise Counterexample(draw, comparisons)

    test = given(strategy)(check)
    for draw in reversed(fixed):  # explicit examples run in the order given
        test = example(draw)(test)
    phases = list(Phase) if examples else [Phase.explicit]  # --examples 0: the fixed cases only
    test = settings(max_examples=max(examples, 1), derandomize=False, database=None, deadline=None,
                    report_multiple_bugs=False, verbosity=Verbosity.quiet, print_blob=False,
                    phases=phases, suppress_health_check=list(HealthCheck))(test)
    test = hypothesis_seed(seed)(test)
    try:
        test()
    except Counterexample as found:
        return features, found, skipped
    except BaseExceptionGroup as group:  # a flaky function: Hypothesis groups its failures
        found = group.subgroup(lambda error: isinstance(error, Counterexample))
        if found is None:
            raise
        while isinstance(found, BaseExceptionGroup):
            found = found.exceptions[0]
        return features, found, skipped
    return features, None, skipped


def _quiet(fn, *args):
    import warnings

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args)


# ----------------------------------------------------------------------------- the snippet


def _array(value, indent: int = 0) -> str:
    """An array as a literal that reads back bit for bit (shortest round-trip digits)."""
    if value is None:
        return "None"
    value = np.asarray(value)
    body = np.array2string(value, separator=", ", threshold=sys.maxsize, floatmode="unique",
                           max_line_width=100, prefix=" " * (indent + len("np.array(")))
    return f"np.array({body}, dtype=np.{value.dtype.name})"


def _import_lines(target: str, alias: str) -> list[str]:
    module, _, attrs = target.partition(":")
    if "." not in attrs:
        return [f"from {module} import {attrs} as {alias}"]
    return [f"import {module}", f"{alias} = {module}.{attrs}"]


def snippet(target: str, framework: str, op, found: Counterexample, signature: Signature,
            vjp_target: str | None, device: str = "cpu") -> str:
    """A runnable program that recomputes the counterexample and prints both values."""
    from .measure import cotangent, present, reference_outputs

    case, worst = found.draw.case, max(found.comparisons, key=lambda c: c.ratio)
    try:
        tensors = signature.arguments({**case.tensors, **case.params})
    except TypeError:  # the call needs an argument the function lacks: show it as made
        tensors = {**case.tensors, **case.params}
    params = {k: v for k, v in tensors.items() if k not in case.tensors}
    names = [k for k in case.tensors if k in tensors]
    lines = [f"# crossconv verify {target} --op {op.name} --framework {framework}: a counterexample",
             f"# ({found.draw.kind} case{' ' + repr(found.draw.name) if found.draw.name else ''}; "
             f"{case.describe()})",
             f"# {worst.check}: {worst.describe()}",
             "import sys",
             "",
             "import numpy as np",
             "from numpy import inf, nan  # noqa: F401 (non-finite values in the arrays)", "",
             "sys.path.insert(0, '.')  # run it from the directory crossconv verify ran in",
             "import reference  # noqa: E402"]
    if framework == "torch":
        lines.append("import torch")
    if framework == "jax":
        lines += ["import jax", "import jax.numpy as jnp", "",
                  'jax.config.update("jax_enable_x64", True)']
    lines += _import_lines(target, "implementation")
    if vjp_target:
        lines += _import_lines(vjp_target, "implementation_vjp")
    lines.append("")
    lines += [f"{name} = {_array(case.tensors[name], len(name) + 3)}" for name in case.tensors]
    lines.append(f"params = {params!r}")
    tensor_kwargs = ", ".join(f"{name}={name}" for name in case.tensors)
    lines.append(f"expected = reference.{op.name}({tensor_kwargs}, **params)")
    convert = {"numpy": "{}", "torch": f"torch.from_numpy({{}}).to({device!r})",
               "jax": "jnp.asarray({})"}[framework]
    call_args = ", ".join(f"{name}={_given(case, name, convert)}" for name in names)
    index = worst.worst.index
    if worst.check in ("forward", "indices"):
        lines.append(f"actual = implementation({call_args}, **params)")
        if worst.problem.startswith("raised"):
            return "\n".join(lines) + "\n"  # the call above raises
        which = 1 if worst.check == "indices" else 0
        lines += ["actual = actual if isinstance(actual, tuple) else (actual,)",
                  "expected = expected if isinstance(expected, tuple) else (expected,)",
                  f"actual = np.asarray({_to_numpy(framework, f'actual[{which}]')})",
                  f"expected = expected[{which}]"]
        if index is not None:
            lines.append(f"index = {index}")
            lines.append('print("at", index, "expected", expected[index], "actual", actual[index])')
        else:
            lines.append('print("expected", expected.dtype, expected.shape, '
                         '"actual", actual.dtype, actual.shape)')
        return "\n".join(lines) + "\n"
    # A gradient.
    name = worst.check.removeprefix("d/d")
    grad = cotangent(case, reference_outputs(case)[0].shape)
    wrt = present(case, op.differentiable)
    lines.append(f"grad_output = {_array(grad, len('grad_output = '))}")
    lines.append(f"expected_grads = reference.{op.name}_vjp(grad_output, {tensor_kwargs}, **params)")
    if framework == "numpy":
        lines.append(f"actual_grads = implementation_vjp(grad_output.astype({names[0]}.dtype), "
                     f"{call_args}, **params)")
    elif framework == "torch":
        for arg in wrt:
            lines.append(f"{arg}_t = torch.from_numpy({arg}).to({device!r}).requires_grad_()")
        args = ", ".join(f"{n}={n + '_t' if n in wrt else _given(case, n, convert)}" for n in names)
        lines += [f"out = implementation({args}, **params)",
                  "out = out[0] if isinstance(out, tuple) else out",
                  f"grads = torch.autograd.grad(out, [{', '.join(a + '_t' for a in wrt)}], "
                  f"torch.from_numpy(grad_output.astype({names[0]}.dtype)).to({device!r}))",
                  f"actual_grads = {{k: g.cpu().numpy() for k, g in zip({wrt!r}, grads)}}"]
    else:
        fixed = ", ".join(f"{n}={_given(case, n, convert)}" for n in names if n not in wrt)
        lines += [f"def f({', '.join(wrt)}):",
                  f"    out = implementation({', '.join(f'{a}={a}' for a in wrt)}"
                  f"{', ' + fixed if fixed else ''}, **params)",
                  "    return out[0] if isinstance(out, tuple) else out",
                  f"out, pullback = jax.vjp(f, {', '.join(convert.format(a) for a in wrt)})",
                  f"actual_grads = dict(zip({wrt!r}, pullback(jnp.asarray(grad_output, "
                  f"dtype=out.dtype))))"]
    if index is not None:
        lines += [f"index = {index}",
                  f'print("d/d{name} at", index, "expected", expected_grads[{name!r}][index], '
                  f'"actual", np.asarray(actual_grads[{name!r}])[index])']
    elif worst.check != "gradients":
        lines.append(f'print("d/d{name}: expected", expected_grads[{name!r}].shape, "actual", '
                     f'actual_grads.get({name!r}))')
    return "\n".join(lines) + "\n"


def _given(case: Case, name: str, convert: str) -> str:
    return "None" if case.tensors[name] is None else convert.format(name)


def _to_numpy(framework: str, expr: str) -> str:
    return {"numpy": expr, "torch": f"{expr}.detach().cpu().numpy()", "jax": expr}[framework]


# ----------------------------------------------------------------------------- the command


def run(args, console) -> int:
    try:
        return _run(args, console)
    except UsageError as error:
        console.print(f"crossconv verify: {error}", highlight=False, soft_wrap=True)
        return 2


def _run(args, console) -> int:
    if args.op not in OPS:
        raise UsageError(f"--op {args.op}: unknown op; ops: {', '.join(OPS)}")
    op = OPS[args.op]
    if args.examples < 0:
        raise UsageError("--examples must be >= 0")
    limits = parse_limits(op, args.limit)
    grad = args.grad or bool(args.vjp)
    if args.vjp and args.framework != "numpy":
        raise UsageError("--vjp gives the gradients of a NumPy implementation; torch and jax "
                         "use their own autodiff (--grad)")
    if grad and args.framework == "numpy" and not args.vjp:
        raise UsageError("--grad on a NumPy implementation needs its VJP: --vjp MODULE:FUNCTION")
    fn = load_target(args.target)
    vjp = load_target(args.vjp, "--vjp MODULE:FUNCTION") if args.vjp else None
    adapter = make_adapter(args.framework, args.device, vjp)
    signature = Signature(fn, op)

    def call(**kwargs):
        return fn(**signature.arguments(kwargs))

    started = time.perf_counter()
    features, found, skipped = run_suite(call, op, adapter, grad, args.examples, limits, args.seed,
                                         float64_ok=args.framework == "numpy")
    elapsed = time.perf_counter() - started
    what = "forward and gradients" if grad else "forward"
    if found is not None:
        worst = max(found.comparisons, key=lambda c: c.ratio)
        console.print(f"[bold red]FAIL[/] {args.target} does not match reference.{op.name} ({what}): "
                      f"{worst.check}: {worst.describe()}", highlight=False, soft_wrap=True)
        how = ("drawn, then shrunk by Hypothesis" if found.draw.kind == "drawn" else
               f"the {found.draw.kind} case {found.draw.name!r}")
        console.print(f"Counterexample ({how}), as a runnable snippet:\n", highlight=False,
                      soft_wrap=True)
        sys.stdout.flush()
        console.print(snippet(args.target, args.framework, op, found, signature, args.vjp,
                              args.device), markup=False, highlight=False, soft_wrap=True)
        return 1
    counts = features.kinds
    console.print(f"[green]PASS[/] {args.target} matches reference.{op.name} ({what}, "
                  f"{args.framework}) on {sum(counts.values())} configurations: "
                  f"{counts['drawn']} drawn, {counts['boundary']} boundary, {counts['golden']} golden "
                  f"({elapsed:.1f} s)", highlight=False, soft_wrap=True)
    console.print("features exercised:", highlight=False)
    for line in features.lines():
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(f"boundary cases ({len(features.boundary)}): " + "; ".join(features.boundary),
                  highlight=False, markup=False, soft_wrap=True)
    if skipped:
        console.print("boundary cases not run under these limits (--limit KEY=VALUE asks for "
                      "them): " + "; ".join(skipped), highlight=False, markup=False, soft_wrap=True)
    return 0
