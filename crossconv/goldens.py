"""Golden cases: fixed calls with known outputs, from the blog posts and docs/, as data.

Each :class:`Golden` is a :class:`~crossconv.cases.Case` plus its expected output, written
out (from the blog posts, or by hand) or built by an independent construction named in
``source``. Each op's golden cases are ``<op>_goldens()`` in its cases file
(``crossconv/cases/<file>.py``); :data:`GOLDENS` gathers them, op by op in registry
order. The reference's golden tests run them through the reference (:meth:`Golden.run`);
``crossconv crosscheck`` and ``crossconv verify`` run them through every implementation
of their op, like any other case.
"""

from __future__ import annotations

from .cases import Golden
from .registry import OPS

__all__ = ["GOLDENS", "Golden"]

GOLDENS: tuple[Golden, ...] = tuple(golden for op in OPS.values() for golden in op.goldens())
