"""crossconv: the cross-check harness.

- :mod:`crossconv.registry`: every op, backend and implementation, as data.
- :mod:`crossconv.cases`: each op's cases in one file per op (``cases/<file>.py``, the
  reference's file names): its strategy, boundary cases, golden cases and sample call.
- :mod:`crossconv.strategies`: Hypothesis strategies drawing valid calls of each op
  (:mod:`crossconv.strategy_options` describes their options).
- :mod:`crossconv.boundary` / :mod:`crossconv.goldens`: fixed cases (edges of each op's
  definition; known outputs from the blog posts and docs/), as data.
- :mod:`crossconv.contract`: any backend's kernel contract functions called on a case.
- :mod:`crossconv.measure` / :mod:`crossconv.checks`: one implementation on one case
  against the reference (as data / as assertions); reference vs oracle / finite differences.
- :mod:`crossconv.oracles`: naive loop transcriptions of the formulas in docs/, one file per op.
- ``python -m crossconv crosscheck``: all of it as one matrix (:mod:`crossconv.crosscheck`,
  :mod:`crossconv.report`); ``verify``: your own implementation against the reference
  (:mod:`crossconv.verification`, also as :func:`crossconv.verify` for test suites);
  ``bench``; ``figures``; ``list``.

``crossconv.verify(fn, op=..., ...)`` returns a report or raises
``crossconv.Counterexample`` (an ``AssertionError``); both load on first use.
"""

from __future__ import annotations

import importlib

_VERIFY = ("verify", "Counterexample")
_SUBMODULES = ("strategies", "strategy_options", "registry", "boundary", "goldens", "cases",
               "contract", "compare", "measure", "checks", "verification")


def __getattr__(name):
    if name in _VERIFY:
        from .verification import api

        return getattr(api, name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Counterexample", "verify"]
