"""The worker process: loads the function under test once, then runs calls on request.

Started by :mod:`crossconv.verification.isolation` as ``python -m
crossconv.verification.worker FD`` (FD: its end of a socket pair), or forked from the
calling process for a callable that cannot be sent by name. It ignores SIGINT (Ctrl-C is
the parent's to handle) and turns on :mod:`faulthandler`, so a crash leaves a Python
traceback in the output the parent keeps.

Messages (pickled, over :class:`multiprocessing.connection.Connection`):

- parent -> worker ``("load", setup)``; worker -> parent ``("ready", accepted arguments or
  None)`` or ``("failed", message)``;
- parent -> worker ``("job", [Call, ...])``; worker -> parent one ``("result", Result)``
  per call, in order, each as soon as that call returns;
- parent -> worker ``("exit", None)``.
"""

from __future__ import annotations

import faulthandler
import importlib
import os
import pickle
import signal
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection

from .runners import RUNNERS, run_call
from .signature import Signature, accepted_arguments, spec_defaults


@dataclass
class Setup:
    """What the worker needs to load the function: a ``module:attr`` target or the
    function pickled by name (or, forked, the function itself), the framework and device."""

    op: str
    framework: str
    device: str = "cpu"
    target: str = ""
    pickled: bytes = b""
    vjp_target: str = ""
    vjp_pickled: bytes = b""
    sys_path: tuple[str, ...] = ()
    cwd: str = ""


def load_target(target: str):
    """The object named ``module:attr.attr`` (the module imported from the current
    directory too); ``ImportError``/``AttributeError``/``TypeError`` with the reason."""
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"{target!r}: expected MODULE:FUNCTION, e.g. torchvision.ops:deform_conv2d")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any import failure is reported as such
        raise ImportError(f"cannot import {module_name}: {type(error).__name__}: {error}") from None
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AttributeError(f"{module_name} has no attribute {attr_path}") from None
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj


class Loaded:
    """The function, its VJP and runner, as the worker (or an in-process run) holds them."""

    def __init__(self, setup: Setup, fn=None, vjp=None):
        import reference

        if setup.sys_path:
            sys.path[:] = list(dict.fromkeys([*setup.sys_path, *sys.path]))
        if setup.cwd and setup.cwd not in sys.path:
            sys.path.insert(0, setup.cwd)
        if fn is None:
            fn = pickle.loads(setup.pickled) if setup.pickled else load_target(setup.target)
        if vjp is None and (setup.vjp_pickled or setup.vjp_target):
            vjp = (pickle.loads(setup.vjp_pickled) if setup.vjp_pickled
                   else load_target(setup.vjp_target))
        self.fn = fn
        self.accepted = accepted_arguments(fn)
        self.signature = Signature(self.accepted, spec_defaults(getattr(reference, setup.op)))
        self.runner = RUNNERS[setup.framework](setup.device, vjp)

    def call(self, **kwargs):
        return self.fn(**self.signature.arguments(kwargs))

    def run(self, call):
        return run_call(self.runner, self.call, call)


def serve(connection: Connection, setup: Setup | None = None, fn=None, vjp=None) -> None:
    """The worker's loop: load, then answer jobs until told to exit or the pipe closes."""
    loaded = None
    while True:
        try:
            kind, payload = connection.recv()
        except (EOFError, OSError):
            return
        if kind == "load":
            try:
                loaded = Loaded(payload, fn, vjp)
            except BaseException as error:  # noqa: BLE001 - reported to the parent
                connection.send(("failed", f"{type(error).__name__}: {error}"
                                 if not isinstance(error, (ImportError, AttributeError))
                                 else str(error)))
                return
            connection.send(("ready", loaded.accepted))
        elif kind == "job":
            for call in payload:
                connection.send(("result", loaded.run(call)))
        else:
            return


def prepare_process() -> None:
    """Ctrl-C belongs to the parent; a crash prints where it happened."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable(file=2, all_threads=False)  # fd 2: sys.stderr may be a capture


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    prepare_process()
    serve(Connection(int(argv[0])))


if __name__ == "__main__":
    main()
