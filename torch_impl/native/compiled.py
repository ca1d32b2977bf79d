"""C loops of the native code, compiled on first use for this machine and loaded with ctypes.

Some ops are a long chain of cheap elementwise steps that eager torch runs as one pass
over memory each (tanprod's leave-one-out products: a dozen passes where one loop reads
each factor once). Their loops live in a C file beside the op's module
(``torch_impl/native/<name>.c``). :func:`library` compiles that file with the system's C
compiler (``$CC``, else ``cc``) for this CPU (``-march=native``; libmvec's vector
``tan`` on x86-64 glibc) into ``$XDG_CACHE_HOME/crossconv/compiled`` (default
``~/.cache/crossconv/compiled``), named by a hash of the source, the flags, the compiler's
version and the CPU's features, so each machine compiles once (a fraction of a second)
and a changed source compiles again.

The loops share work among torch's own OpenMP threads (:func:`threads` says how many).
Where there is no compiler, the compilation fails, or ``CROSSCONV_NO_COMPILE=1`` is set,
:func:`library` returns None and the op keeps its eager torch path (same results within
float rounding; slower). A failed compilation warns once per process with the
compiler's message.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

_lock = threading.Lock()
_libraries: dict[str, ctypes.CDLL | None] = {}
_forked = [False]  # whether this process is a fork of one that imported this module
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=lambda: _forked.__setitem__(0, True))


def threads(requested: int) -> int:
    """The OpenMP threads a compiled loop may use: ``requested``, or 1 in a forked child.

    GNU OpenMP cannot start threads again in a process forked from one whose OpenMP
    threads exist (a parallel region there waits forever), and the parent's torch has
    usually run parallel regions; the loops then run on the calling thread alone."""
    return 1 if _forked[0] else requested


def enabled() -> bool:
    """False when ``CROSSCONV_NO_COMPILE`` is set to anything but ``""``/``"0"``."""
    return os.environ.get("CROSSCONV_NO_COMPILE", "") in ("", "0")


def cache_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "crossconv" / "compiled"


def _cpu_features() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        return platform.processor()


def _flags(features: str) -> list[str]:
    flags = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC"]
    if " avx512f " in f" {features.strip()} ":
        flags.append("-mprefer-vector-width=512")  # libmvec's 16-lane tanf
    return flags


def _libs() -> list[str]:
    on_glibc_x86 = platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")
    return (["-lmvec"] if on_glibc_x86 else []) + ["-lm"]


def _compile(name: str) -> Path | None:
    source = Path(__file__).with_name(f"{name}.c")
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        return None
    features = _cpu_features()
    command = [compiler, *_flags(features), str(source), "-o", "{output}", *_libs()]
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                                 timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    key = hashlib.sha256("\0".join([source.read_text(), *command, version, features])
                         .encode()).hexdigest()[:16]
    user = getattr(os, "getuid", lambda: 0)()
    for directory in (cache_directory(), Path(tempfile.gettempdir()) / f"crossconv-{user}"):
        target = directory / f"{name}-{key}.so"
        if target.exists():
            return target
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, partial = tempfile.mkstemp(suffix=".so", dir=directory)
            os.close(fd)
        except OSError:
            continue  # not writable: the next directory
        try:
            done = subprocess.run([partial if a == "{output}" else a for a in command],
                                  capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as error:
            os.unlink(partial)
            warnings.warn(f"crossconv: compiling {source.name} failed ({error}); "
                          f"using the eager torch path", RuntimeWarning, stacklevel=4)
            return None
        if done.returncode != 0:
            os.unlink(partial)
            warnings.warn(f"crossconv: compiling {source.name} failed; using the eager torch "
                          f"path. {' '.join(command)}:\n{done.stderr.strip()}",
                          RuntimeWarning, stacklevel=4)
            return None
        os.replace(partial, target)  # atomic: concurrent processes never load a partial file
        return target
    return None


def _load(path: Path, signatures) -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as error:
        warnings.warn(f"crossconv: loading {path} failed ({error}); using the eager torch path",
                      RuntimeWarning, stacklevel=4)
        return None
    for function, (restype, argtypes) in signatures.items():
        getattr(lib, function).restype = restype
        getattr(lib, function).argtypes = argtypes
    return lib


def library(name: str, signatures: dict) -> ctypes.CDLL | None:
    """The compiled ``torch_impl/native/<name>.c``, or None (see the module docstring).

    ``signatures``: ``{function: (restype, [argtypes])}`` in ctypes types, declared once
    when the library is loaded. Its functions release Python's lock while they run."""
    if not enabled():
        return None
    with _lock:
        if name not in _libraries:
            path = _compile(name)
            _libraries[name] = None if path is None else _load(path, signatures)
        return _libraries[name]
