"""``crossconv port-check MODEL.t7 PORT --input N,C,H,W``: a Torch7 model against its
PyTorch port, layer by layer (the comparison is :func:`lua_port.port_check.port_check`).

PORT is ``path/to/file.py:Name`` or ``package.module:Name``: a ``torch.nn.Module``
subclass or a function returning a module, called without arguments (or a module
instance). Exit status: 0 when they agree, 1 when they part, 2 for bad arguments or a
model or port that cannot be loaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from rich.markup import escape


class UsageError(Exception):
    pass


def add_arguments(parser) -> None:
    parser.add_argument("model", help="the Torch7 model: a .t7 file (binary or ascii)")
    parser.add_argument("port", help="the PyTorch port: FILE.py:NAME or MODULE:NAME (a torch.nn.Module "
                                     "class, a function returning one, or an instance)")
    parser.add_argument("--input", required=True, metavar="N,C,H,W",
                        help="the input's shape (comma-separated sizes); a standard normal input")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the input and of the output gradient (default 0)")
    parser.add_argument("--runtime", default=None, help="Lua runtime: luajit (default) or 5.4")
    parser.add_argument("--keep-port-weights", action="store_true",
                        help="run the port with its own weights (default: Torch7's, copied into it)")
    parser.add_argument("--rtol", type=float, default=1e-7, help="relative tolerance (default 1e-7)")
    parser.add_argument("--atol", type=float, default=1e-9, help="absolute tolerance (default 1e-9)")


def load_port(target: str):
    """The object named by ``FILE.py:NAME`` or ``MODULE:NAME``."""
    location, sep, name = target.rpartition(":")
    if not sep or not location or not name:
        raise UsageError(f"{target!r}: expected FILE.py:NAME or MODULE:NAME, e.g. my_port.py:Net")
    try:
        if location.endswith(".py") or os.sep in location or "/" in location:
            path = Path(location)
            if not path.is_file():
                raise UsageError(f"{location}: no such file")
            spec = importlib.util.spec_from_file_location(f"port_check_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            sys.path.insert(0, str(path.resolve().parent))
            try:
                spec.loader.exec_module(module)
            finally:
                sys.path.pop(0)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(location)
    except UsageError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure to import the port is a usage error
        raise UsageError(f"cannot import {location}: {type(error).__name__}: {error}") from None
    if not hasattr(module, name):
        raise UsageError(f"{location} has no {name}")
    return getattr(module, name)


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        shape = ()
    if not shape or any(s < 1 for s in shape):
        raise UsageError(f"--input {text!r}: expected positive sizes separated by commas, e.g. 1,3,32,32")
    return shape


def run(args, console) -> int:
    try:
        shape = parse_shape(args.input)
        port = load_port(args.port)
        if not Path(args.model).is_file():
            raise UsageError(f"{args.model}: no such file")
    except UsageError as error:
        console.print(f"port-check: {escape(str(error))}", highlight=False)
        return 2
    from lua_port import LuaError
    from lua_port.port_check import port_check
    from lua_port.t7 import T7FormatError

    try:
        report = port_check(args.model, port, input_shape=shape, seed=args.seed, runtime=args.runtime,
                            copy_weights=not args.keep_port_weights, rtol=args.rtol, atol=args.atol)
    except (LuaError, T7FormatError, TypeError, ValueError, ImportError) as error:
        console.print(f"port-check: {escape(type(error).__name__)}: {escape(str(error))}", highlight=False)
        return 2
    console.print(f"port-check {escape(args.model)} against {escape(args.port)}, input "
                  f"{'x'.join(map(str, shape))} (seed {args.seed}), Lua runtime {report.runtime}\n",
                  highlight=False)
    console.print(escape(str(report)), highlight=False, soft_wrap=True)
    return 0 if report.ok else 1
