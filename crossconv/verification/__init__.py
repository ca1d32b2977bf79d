"""Verify your own implementation of an op against the reference: ``crossconv.verify``.

From a test suite::

    import crossconv

    def test_my_deform():
        crossconv.verify(my_deform_conv2d, op="deform_conv2d", framework="torch", grad=True,
                         limits={"max_dilation": 1})

``verify`` returns a :class:`~crossconv.verification.report.Report` (configurations run,
features exercised, checks passed, what each check cost) and raises
:class:`Counterexample`, an ``AssertionError`` whose message is the counterexample as a
runnable regression test. ``crossconv verify MODULE:FUNCTION --op NAME`` is the same
thing on the command line (:mod:`crossconv.verification.command`). docs/verify.md
describes the checks, the limits and the tolerances.

Modules: :mod:`.session` (the run), :mod:`.plan` (one case's calls and checks),
:mod:`.isolation` / :mod:`.worker` (the worker process), :mod:`.runners` and
:mod:`.frameworks` (the frameworks), :mod:`.dtypes` (half precision and its tolerance),
:mod:`.options` (limits), :mod:`.snippets`, :mod:`.report`, :mod:`.progress`.
"""

from __future__ import annotations

_API = ("verify", "Counterexample", "Report", "UsageError")


def __getattr__(name):
    # Lazy: the worker process imports this package too, and needs none of the API.
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_API)
