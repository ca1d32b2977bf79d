"""The Lua port (Torch7 nn.CustomConv through lupa) against the NumPy reference, and a
Torch7 LeNet in the shim against torch.nn (``lenet_section``).

Goal: LuaJIT's tanprod forward on a 1x1x64x64 map with a 5x5 kernel, called from Python,
within 1.5x of the reference's time, measured side by side; Lua 5.4 reported beside it.

- "from Python": ``lua_port.tanprod_conv2d`` as a user calls it, arrays copied into Lua
  tables and back (the goal's row), in wall time and in process CPU time (both sides run
  on one thread, so CPU time is the steadier figure on a busy machine);
- "inside Lua": the module's ``forward`` on a tensor already in Lua (the crossing
  excluded), to show what the copies cost;
- the gradient by the module's ``backward`` (updateGradInput + accGradParameters) beside
  the reference VJP, for scale.
"""

import time

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

    def row(label, reference_fn, lua_fns, calls, clock=time.perf_counter):
        candidates = {"reference": _batch(reference_fn, calls)}
        candidates.update({name: _batch(fn, calls) for name, fn in lua_fns.items()})
        times = side_by_side(candidates, repeats=repeats, clock=clock)
        times = {name: t / calls for name, t in times.items()}
        cells = [label, seconds(times["reference"])]
        for name in runtimes:
            cells += [seconds(times[name]), ratio(times[name], times["reference"])]
        section.rows.append(cells)
        if label == "forward, from Python":
            group = "Lua tanprod forward (from Python)"
            section.bars.append(Bar(group, "NumPy reference", times["reference"], False))
            section.bars += [Bar(group, f"lua-{name}", times[name], True) for name in runtimes]

    from_python = {name: (lambda name=name: lua_port.tanprod_conv2d(x, w, runtime=name))
                   for name in runtimes}
    row("forward, from Python", lambda: reference.tanprod_conv2d(x, w), from_python, CALLS)
    row("forward, from Python (process CPU time)", lambda: reference.tanprod_conv2d(x, w),
        from_python, CALLS, time.process_time)

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
        f"medians of {repeats} round-robin rounds of {CALLS} calls each (gradients: 1 call), wall "
        "time except the CPU-time row",
        "LuaJIT runs lua_port's own code compiled; only user snippets (lua_port.run) run with "
        "the JIT off",
    ]
    return [section, lenet_section(repeats)]


LENET = """
torch.manualSeed(1)
local net = nn.Sequential()
net:add(nn.SpatialConvolution(1, 6, 5, 5)):add(nn.ReLU()):add(nn.SpatialMaxPooling(2, 2, 2, 2))
net:add(nn.SpatialConvolution(6, 16, 5, 5)):add(nn.ReLU()):add(nn.SpatialMaxPooling(2, 2, 2, 2))
net:add(nn.View(16 * 5 * 5)):add(nn.Linear(400, 120)):add(nn.ReLU()):add(nn.Linear(120, 84))
net:add(nn.ReLU()):add(nn.Linear(84, 10)):add(nn.LogSoftMax())
local input, gradOutput = torch.randn(8, 1, 32, 32), torch.randn(8, 10)
return function()
  net:zeroGradParameters()
  net:forward(input)
  net:backward(input, gradOutput)
end
"""

#: torch.nn's threads in the LeNet comparison; steps per timed round.
THREADS = 2
STEPS = 10


def lenet_section(repeats):
    """A Torch7 LeNet (batch 8, 1x32x32) forward and backward in the shim beside torch.nn.

    Goal: LuaJIT within 10x of torch.nn on the CPU with 2 threads.
    The shim computes in doubles, so the goal's ratio is against torch.nn in float64;
    float32 is shown beside it.
    """
    import torch

    import lua_port
    from lua_port.runtimes import trusted

    runtimes = lua_port.available_runtimes()
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        def torch_step(dtype, threads=THREADS):
            nn = torch.nn
            net = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
                                nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(),
                                nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10), nn.LogSoftmax(1)).to(dtype)
            x, g = torch.randn(8, 1, 32, 32, dtype=dtype), torch.randn(8, 10, dtype=dtype)

            def steps():
                torch.set_num_threads(threads)  # once per round: switching costs
                for _ in range(STEPS):
                    net.zero_grad()
                    net(x).backward(g)
            return steps

        candidates = {"torch float64": torch_step(torch.float64), "torch float32": torch_step(torch.float32),
                      "torch float64 1 thread": torch_step(torch.float64, 1)}
        calls = {name: STEPS for name in candidates}
        for name in runtimes:
            calls[f"lua-{name}"] = STEPS if name == "luajit" else 1
            candidates[f"lua-{name}"] = _batch(trusted(name).lua.execute(LENET), calls[f"lua-{name}"])
        times = side_by_side(candidates, repeats=repeats)
        times = {name: t / calls[name] for name, t in times.items()}
    finally:
        torch.set_num_threads(threads)
    columns = ["torch.nn", "torch.nn time"]
    for name in runtimes:
        columns += [f"lua-{name}", f"lua-{name} / torch.nn"]
    section = Section("Torch7 LeNet, batch 8, 1x32x32: zeroGradParameters + forward + backward", columns)
    for label, key in ((f"float64, {THREADS} threads", "torch float64"), (f"float32, {THREADS} threads",
                       "torch float32"), ("float64, 1 thread", "torch float64 1 thread")):
        cells = [label, seconds(times[key])]
        for name in runtimes:
            cells += [seconds(times[f"lua-{name}"]), ratio(times[f"lua-{name}"], times[key])]
        section.rows.append(cells)
    section.notes += [
        "goal: lua-luajit within 10x of torch.nn float64 on the CPU (2 threads); the shim "
        "computes in doubles",
        "on a loaded machine torch's 2-thread parallel regions wait for each other's threads; the "
        "1-thread row is the steadier comparison",
        f"medians of {repeats} round-robin rounds (torch and LuaJIT: 10 steps per round, Lua 5.4: 1); "
        "the Lua model runs on tensors already in Lua, in lua_port's own state (JIT on)",
    ]
    return section
