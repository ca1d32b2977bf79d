"""Where crossconv lets Hypothesis keep its files: a cache directory, never the user's.

Hypothesis writes ``.hypothesis/`` into the current directory (its example database and
a cache of the constants it finds in source files). ``crossconv verify`` and ``crossconv
crosscheck`` run in the user's directory, so they point Hypothesis at
``$XDG_CACHE_HOME/crossconv/hypothesis`` (default ``~/.cache/crossconv/hypothesis``) for
their run and restore the previous setting after it. ``HYPOTHESIS_STORAGE_DIRECTORY``,
when set, wins.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def cache_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "crossconv" / "hypothesis"


@contextlib.contextmanager
def hypothesis_storage():
    """Hypothesis's home directory is the cache directory while the block runs."""
    from hypothesis import configuration

    key = "__hypothesis_home_directory"
    previous = configuration.__dict__.get(key)
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        yield
        return
    configuration.set_hypothesis_home_dir(cache_directory())
    try:
        yield
    finally:
        configuration.__dict__[key] = previous
