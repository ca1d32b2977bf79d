"""The Lua port (Torch7 nn.CustomConv through lupa) against the NumPy reference.

Goal: LuaJIT's tanprod forward on a 1x1x64x64 map with a 5x5 kernel, called from Python,
within 1.5x of the reference's time, measured side by side; Lua 5.4 reported beside it.

- "from Python": ``lua_port.tanprod_conv2d`` as a user calls it, arrays copied into Lua
  tables and back (the goal's row);
- "inside Lua": the module's ``forward`` on a tensor already in Lua (the crossing
  excluded), to show what the copies cost;
- the gradient by the module's ``backward`` (updateGradInput + accGradParameters) beside
  the reference VJP, for scale.
"""

import numpy as np

import reference
from crossconv.bench import Bar, Section, ratio, seconds, side_by_side

TITLE = "Lua port (nn.CustomConv through lupa) against the NumPy reference"

#: Calls per timed round: a LuaJIT call takes about a millisecond.
CALLS = 10


def _batch(fn, calls):
    return lambda: [fn() for _ in range(calls)]


def sections(repeats):
    import lua_port
    from lua_port import _ops
    from lua_port.runtimes import trusted

    runtimes = lua_port.available_runtimes()
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.6, 0.6, (1, 1, 64, 64))
    w = rng.uniform(-0.6, 0.6, (1, 1, 5, 5))
    grad = rng.standard_normal((1, 1, 60, 60))

    columns = ["case", "reference"]
    for name in runtimes:
        columns += [f"lua-{name}", f"lua-{name} / reference"]
    section = Section("tanprod_conv2d 1x1x64x64, 5x5 kernel (float64)", columns)

    def row(label, reference_fn, lua_fns, calls):
        candidates = {"reference": _batch(reference_fn, calls)}
        candidates.update({name: _batch(fn, calls) for name, fn in lua_fns.items()})
        times = {name: t / calls for name, t in side_by_side(candidates, repeats=repeats).items()}
        cells = [label, seconds(times["reference"])]
        for name in runtimes:
            cells += [seconds(times[name]), ratio(times[name], times["reference"])]
        section.rows.append(cells)
        if label.startswith("forward, from Python"):
            group = "Lua tanprod forward (from Python)"
            section.bars.append(Bar(group, "NumPy reference", times["reference"], False))
            section.bars += [Bar(group, f"lua-{name}", times[name], True) for name in runtimes]

    row("forward, from Python", lambda: reference.tanprod_conv2d(x, w),
        {name: (lambda name=name: lua_port.tanprod_conv2d(x, w, runtime=name)) for name in runtimes},
        CALLS)

    resident = {}
    for name in runtimes:
        lua = trusted(name)
        module = _ops.build_module(lua, _ops.check_call("tanprod_conv2d", x, w, None, 1, 0, 1))
        tensor = lua.tensor(x)
        resident[name] = lambda lua=lua, module=module, tensor=tensor: lua.method(module, "forward", tensor)
    row("forward, inside Lua (module:forward on a Lua tensor)", lambda: reference.tanprod_conv2d(x, w),
        resident, CALLS)

    row("gradients (module:backward vs reference VJP)",
        lambda: reference.tanprod_conv2d_vjp(grad, x, w),
        {name: (lambda name=name: lua_port.tanprod_conv2d_vjp(grad, x, w, runtime=name))
         for name in runtimes}, 1)

    section.notes += [
        "goal: lua-luajit forward from Python within 1.5x of the reference",
        f"medians of {repeats} round-robin rounds of {CALLS} calls each (gradients: 1 call)",
        "LuaJIT runs lua_port's own code compiled; only user snippets (lua_port.run) run with "
        "the JIT off",
    ]
    return [section]
