"""A counterexample as a runnable regression test.

The program recomputes the failing case: the inputs written out bit for bit (as float32
for a half dtype, whose values they hold exactly), the function called as verify called
it (same dtype, same memory layout), and the failing check asserted as verify judged it.
Run as a script it exits 1 while the function still differs and 0 once it matches; pytest
collects its ``test_counterexample``. Every explanation is a comment, so the text verify
prints is itself the program.
"""

from __future__ import annotations

import sys

import numpy as np

from .frameworks import FRAMEWORKS
from .plan import Check, Outcome, Plan

# A hung call ends the snippet with exit 1, as verify reported it. A timer signal's handler
# exits in Python code; faulthandler exits too when the call is stuck in compiled code that
# never gives the handler a turn. faulthandler is not the first resort: it reads the main
# thread's frames while that thread runs, and can crash doing so (exit -11, not 1).
GIVE_UP_HELPER = """
def _give_up_after(seconds):
    \"\"\"Exit 1, as verify did, if the call has not returned within ``seconds``.\"\"\"
    import faulthandler
    import os
    import signal

    def give_up(*_):
        print(f"still differs: did not return within {seconds:g} s", flush=True)
        os._exit(1)

    signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(seconds + 30, exit=True)
"""

LAYOUT_HELPER = {
    "torch": '''
def tensor(array, layout="contiguous", requires_grad=False):
    """The array as the function got it: dtype {dtype}, memory layout ``layout``."""
    t = {convert}
    if layout == "channels_last" and t.dim() == 4:
        t = t.contiguous(memory_format=torch.channels_last)
    elif layout == "non-contiguous" and t.dim():  # a strided view at storage offset 1
        base = torch.zeros((*t.shape[:-1], 2 * t.shape[-1]), dtype=t.dtype, device=t.device)
        base[..., 1::2] = t
        t = base[..., 1::2]
    return t.requires_grad_(requires_grad)
''',
    "numpy": '''
def tensor(array, layout="contiguous"):
    """The array as the function got it: dtype {dtype}, memory layout ``layout``."""
    array = {convert}
    if layout == "non-contiguous" and array.ndim:  # a strided view at offset 1
        base = np.zeros((*array.shape[:-1], 2 * array.shape[-1]), dtype=array.dtype)
        base[..., 1::2] = array
        return base[..., 1::2]
    return array
''',
    "jax": '''
def tensor(array, layout="contiguous"):
    """The array as the function got it: dtype {dtype}."""
    return {convert}
''',
}


def array_literal(value, indent: int = 0) -> str:
    """An array as a literal that reads back bit for bit (shortest round-trip digits)."""
    if value is None:
        return "None"
    value = np.asarray(value)
    body = np.array2string(value, separator=", ", threshold=sys.maxsize, floatmode="unique",
                           max_line_width=100, prefix=" " * (indent + len("np.array(")))
    return f"np.array({body}, dtype=np.{value.dtype.name})"


def import_lines(target: str, alias: str) -> list[str]:
    """``from module import attr as alias`` for a ``module:attr.attr`` target."""
    module, _, attrs = target.partition(":")
    if "." not in attrs:
        return [f"from {module} import {attrs} as {alias}  # noqa: E402"]
    return [f"import {module}  # noqa: E402", f"{alias} = {module}.{attrs}"]


def _comment(text: str) -> list[str]:
    return ["# " + line if line else "#" for line in text.splitlines()]


class Snippet:
    """Builds the program for one failed :class:`~crossconv.verification.plan.Outcome`."""

    def __init__(self, outcome: Outcome, plan: Plan, framework: str, target: str,
                 vjp_target: str = "", device: str = "cpu", command: str = "",
                 timeout: float = 60.0, signature=None):
        self.outcome, self.plan = outcome, plan
        self.framework = FRAMEWORKS[framework]
        self.target, self.vjp_target = target, vjp_target
        self.device, self.command, self.timeout = device, command, timeout
        self.accepted = signature  # the argument names the function has (None: all)
        self.case = plan.draw.case
        self.dtype = plan.draw.dtype

    # ----------------------------------------------------------------- pieces

    def _names(self) -> list[str]:
        """The tensor arguments passed (those the function has, or given a value)."""
        return [n for n in self.case.tensors
                if self.accepted is None or n in self.accepted or self.case.tensors[n] is not None]

    def _params(self) -> dict:
        return {k: v for k, v in self.case.params.items()
                if self.accepted is None or k in self.accepted}

    def _arguments(self, layout: str, grad_names=(), suffix: str = "") -> str:
        parts = []
        for name in self._names():
            value = self.case.tensors[name]
            if value is None:
                parts.append(f"{name}=None")
            elif name in grad_names:
                parts.append(f"{name}={name}_t")
            else:
                parts.append(f"{name}=tensor({name}{suffix}, {layout!r})")
        return ", ".join(parts) + (", **given" if self._lacks() else ", **params")

    def _lacks(self) -> list[str]:
        """The case's non-tensor arguments the function has no parameter for."""
        return [k for k in self.case.params if k not in self._params()]

    def _header(self, check: Check) -> list[str]:
        draw = self.plan.draw
        how = ("drawn, then shrunk by Hypothesis" if draw.kind == "drawn"
               else f"the {draw.kind} case {draw.name!r}" if draw.name else f"the {draw.kind} case")
        lines = _comment(
            f"{self.command}: a counterexample\n"
            f"{check.describe()}\n"
            f"The case ({how}): {draw.describe()}\n"
            "Run this file: it exits 1 while the function differs from the reference, 0 once\n"
            "it matches (pytest collects test_counterexample too)."
        )
        output = getattr(self.outcome.abnormal, "output", "")
        if output:
            lines += _comment("The worker process printed, last lines:\n" + output)
        return lines

    def _prologue(self) -> list[str]:
        fw = self.framework
        lines = ["import sys", "", "import numpy as np",
                 "from numpy import inf, nan  # noqa: F401 (non-finite values in the arrays)", ""]
        lines += [line + ("  # noqa: E402" if line.startswith("import") else "")
                  for line in fw.imports]
        lines += ["" if fw.imports else None,
                  'sys.path.insert(0, ".")  # the directory crossconv verify ran in',
                  "import reference  # noqa: E402",
                  "from crossconv.compare import Tolerance, assert_close  # noqa: E402"]
        if self.target:
            lines += import_lines(self.target, "implementation")
        else:
            lines.append("implementation = None  # the function given to crossconv.verify: "
                         "import or define it here")
        if self.vjp_target:
            lines += import_lines(self.vjp_target, "implementation_vjp")
        lines.append("")
        for name, value in self.case.tensors.items():
            lines.append(f"{name} = {array_literal(value, len(name) + 3)}")
        lines.append(f"params = {self.case.params!r}")
        if self._lacks():
            lines.append(f"given = {self._params()!r}  # it has no {', '.join(self._lacks())}: "
                         f"verify left them at their defaults")
        if self.plan.grad:
            lines.append(f"grad_output = {array_literal(self.plan.cotangent, len('grad_output = '))}")
        variant = next((c for c in self.plan.calls if c.label == "batch variant"), None)
        if variant is not None and self._failed("batch invariance"):
            for name, value in variant.tensors.items():
                if value is not None and not np.array_equal(value, self.case.tensors[name],
                                                            equal_nan=True):
                    label = f"{name}_variant"
                    lines.append(f"{label} = {array_literal(value, len(label) + 3)}  "
                                 f"# sample {self.plan.batch_sample} kept, the others changed")
        if self.framework.name == "torch":
            lines.append(f"device = {self.device!r}")
        dtype_literal = repr(self.dtype)
        helper = LAYOUT_HELPER[self.framework.name].format(
            dtype=self.dtype, convert=fw.convert.format(dtype="DTYPE"))
        lines += [f"DTYPE = {dtype_literal}", *helper.rstrip().splitlines()]
        lines += ["", "", "def as_numpy(value):",
                  f"    return {fw.to_numpy}"]
        if self._failed("timed out"):
            lines += ["", "", *GIVE_UP_HELPER.rstrip().splitlines()]
        return [line for line in lines if line is not None]

    def _failed(self, check: str) -> bool:
        failure = self.outcome.failure
        return failure is not None and failure.check == check

    def _layout_of(self, label: str) -> str:
        return label.split("[", 1)[1].rstrip("]") if "[" in label else "contiguous"

    # ----------------------------------------------------------------- bodies

    def _reference(self) -> list[str]:
        names = ", ".join(f"{n}={n}" for n in self.case.tensors)
        if self.plan.draw.expected is not None:
            known = ", ".join(array_literal(e) for e in self.plan.draw.expected)
            return [f"    expected = ({known},)  # the golden case's known output"]
        return [f"    expected = reference.{self.case.op}({names}, **params)",
                "    expected = expected if isinstance(expected, tuple) else (expected,)"]

    def _forward_body(self, check: Check) -> list[str]:
        layout = self._layout_of(check.call)
        tolerance = self._tolerance("forward")
        n_out = len(self.plan.expected)
        allowed = sorted({self.dtype} | ({"float64"} if self.framework.float64_ok else set()))
        lines = self._reference()
        if check.check in ("crashed", "timed out", "interrupted"):
            lines.append(f"    # verify saw this call: {check.comparison.describe()}")
        if check.check == "timed out":
            lines += self._give_up_call()
        lines.append(f"    result = implementation({self._arguments(layout)})")
        if n_out == 2:
            lines += ["    assert isinstance(result, tuple) and len(result) == 2, "
                      "f\"returned {type(result).__name__}; return a tuple (values, indices)\"",
                      "    values, indices = (as_numpy(v) for v in result)"]
        else:
            lines += ["    assert not isinstance(result, (tuple, list)), "
                      "f\"returned a {type(result).__name__}; return one array\"",
                      "    values = as_numpy(result)"]
        first = "result" if n_out == 1 else "result[0]"
        lines += [f"    assert _dtype_name({first}) in {allowed!r}, "
                  f"f\"returned {{_dtype_name({first})}}, expected {self.dtype}\"",
                  f"    assert_close(values, expected[0], {tolerance}, {check.call!r})"]
        if n_out == 2:
            lines += ["    differ = np.argwhere(indices != expected[1])",
                      "    assert indices.shape == expected[1].shape and not len(differ), "
                      "f\"indices differ at {tuple(differ[0]) if len(differ) else indices.shape}\""]
        return lines

    def _tolerance(self, check: str) -> str:
        from . import dtypes

        t = dtypes.tolerance(self.case, self.dtype, check, self.plan.out_shape)
        return f"Tolerance(rtol={t.rtol!r}, atol={t.atol!r})"

    def _gradient_call(self, layout: str, suffix: str = "") -> list[str]:
        wrt = list(self.plan.wrt) + list(self.plan.zero)
        fw = self.framework.name
        if fw == "torch":
            lines = [f"    {n}_t = tensor({n}{suffix}, {layout!r}, requires_grad=True)" for n in wrt]
            lines += [f"    result = implementation({self._arguments(layout, wrt, suffix)})",
                      "    output = result[0] if isinstance(result, tuple) else result",
                      f"    grads = torch.autograd.grad(output, [{', '.join(n + '_t' for n in wrt)}], "
                      f"tensor(grad_output, {layout!r}), allow_unused=True)",
                      f"    grads = {{k: None if g is None else as_numpy(g) for k, g in "
                      f"zip({wrt!r}, grads)}}"]
            return lines
        if fw == "jax":
            fixed = [n for n in self._names() if n not in wrt]
            fixed_args = ", ".join(f"{n}=tensor({n}{suffix})" if self.case.tensors[n] is not None
                                   else f"{n}=None" for n in fixed)
            given = "given" if self._lacks() else "params"
            return [f"    def f({', '.join(wrt)}):",
                    f"        result = implementation({', '.join(f'{n}={n}' for n in wrt)}"
                    f"{', ' + fixed_args if fixed_args else ''}, **{given})",
                    "        return result[0] if isinstance(result, tuple) else result",
                    f"    output, pullback = jax.vjp(f, {', '.join(f'tensor({n}{suffix})' for n in wrt)})",
                    "    grads = pullback(jnp.asarray(grad_output, dtype=output.dtype))",
                    f"    grads = {{k: as_numpy(g) for k, g in zip({wrt!r}, grads)}}"]
        return [f"    grads = implementation_vjp(tensor(grad_output, {layout!r}), "
                f"{self._arguments(layout, (), suffix)})",
                "    grads = {k: None if g is None else np.asarray(g) for k, g in grads.items()}"]

    def _give_up_call(self) -> list[str]:
        return [f"    # verify gave up on this call after {self.timeout:g} s: exit 1 the same way",
                f"    _give_up_after({self.timeout:g})"]

    def _gradient_body(self, check: Check) -> list[str]:
        layout = self._layout_of(check.call)
        names = ", ".join(f"{n}={n}" for n in self.case.tensors)
        lines = [f"    expected = reference.{self.case.op}_vjp(grad_output, {names}, **params)"]
        lines += self._gradient_call(layout)
        name = check.check.removeprefix("d/d")
        if name in self.plan.zero:
            lines += [f"    assert grads.get({name!r}) is None or not np.any(grads[{name!r}]), "
                      f"\"{name} is not differentiable, got a non-zero gradient\""]
            return lines
        targets = [name] if name in self.plan.wrt else list(self.plan.wrt)
        for target in targets:
            lines += [f"    assert grads.get({target!r}) is not None, \"no gradient for {target}\"",
                      f"    assert_close(grads[{target!r}], expected[{target!r}], "
                      f"{self._tolerance('d/d' + target)}, \"d/d{target} ({check.call})\")"]
        return lines

    def _determinism_body(self, check: Check) -> list[str]:
        lines = ["    first = None",
                 "    for _ in range(5):  # atomics and racy reductions differ often, not always"]
        if self.plan.grad:
            body = self._gradient_call("contiguous")
            body += ["    values = [as_numpy(output)] + [g for g in grads.values() if g is not None]"]
        else:
            body = [f"    result = implementation({self._arguments('contiguous')})",
                    "    values = [as_numpy(v) for v in (result if isinstance(result, tuple) "
                    "else (result,))]"]
        lines += ["    " + line for line in body]
        lines += ["        bits = [np.where(np.isnan(v), 0, v).tobytes() for v in values]",
                  "        if first is None:",
                  "            first = bits",
                  "        assert bits == first, \"non-deterministic: two identical calls "
                  "gave different results\""]
        return lines

    def _invariance_body(self) -> list[str]:
        n = self.plan.batch_sample
        variant = next(c for c in self.plan.calls if c.label == "batch variant")
        changed = {name for name, value in variant.tensors.items()
                   if value is not None and not np.array_equal(value, self.case.tensors[name],
                                                               equal_nan=True)}
        original = self._arguments("contiguous")
        varied = ", ".join(
            f"{name}=tensor({name}_variant)" if name in changed
            else (f"{name}=None" if self.case.tensors[name] is None else f"{name}=tensor({name})")
            for name in self._names()) + (", **given" if self._lacks() else ", **params")
        return [f"    first = implementation({original})",
                f"    second = implementation({varied})",
                "    first = as_numpy(first[0] if isinstance(first, tuple) else first)",
                "    second = as_numpy(second[0] if isinstance(second, tuple) else second)",
                f"    a, b = first[{n}], second[{n}]",
                "    same = np.where(np.isnan(a), 0, a).tobytes() == np.where(np.isnan(b), 0, b).tobytes()",
                f"    assert same, \"sample {n} changed with the other samples: largest difference \" "
                "+ str(np.nanmax(np.abs(a - b)))"]

    # ----------------------------------------------------------------- the program

    def text(self) -> str:
        check = self.outcome.failure
        lines = self._header(check) + self._prologue()
        lines += ["", "", "def _dtype_name(value):",
                  "    return str(value.dtype).rsplit('.', 1)[-1]", "", "",
                  "def test_counterexample():"]
        if check.check == "determinism":
            lines += self._determinism_body(check)
        elif check.check == "batch invariance":
            lines += self._invariance_body()
        elif check.check.startswith("d/d") or check.check == "gradients" or (
                check.check in ("crashed", "timed out") and "gradients" in check.call):
            if check.check in ("crashed", "timed out"):
                lines += [f"    # verify saw this call: {check.comparison.describe()}"]
                if check.check == "timed out":
                    lines += self._give_up_call()
            lines += self._gradient_body(check)
        else:
            lines += self._forward_body(check)
        lines += ["", "", 'if __name__ == "__main__":', "    try:", "        test_counterexample()",
                  "    except AssertionError as error:",
                  '        print("still differs:", error)', "        sys.exit(1)",
                  '    print("matches the reference now")']
        return "\n".join(lines) + "\n"
