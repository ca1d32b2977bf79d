"""Hypothesis strategies that draw only valid calls of each operation.

Public: reuse them to test your own kernel against the reference::

    from hypothesis import given
    from crossconv.strategies import deform_conv2d_cases

    @given(deform_conv2d_cases(dtypes=("float32",), max_dilation=1))
    def test_mine(case):
        expected = case.call(reference.deform_conv2d)
        actual = case.call(my_deform_conv2d, convert=torch.from_numpy)

Every strategy returns :class:`crossconv.cases.Case` objects. Each op's strategy lives
in its cases file, ``crossconv/cases/<file>.py`` (the reference's file names: conv2d and
the correlations in ``conv2d.py``, the pooling ops in ``pool.py``, ...), beside its
boundary and golden cases; this module hands out every op's ``<op>_cases`` by name (the
registry lists the ops). Shapes and arguments are drawn
by Hypothesis (so they shrink); array values come from a drawn seed. Configurations are
built valid by construction: the spatial size is drawn from the range that gives an
output of at least 1x1, channel counts are products of the group counts, and so on. The
keyword options narrow what is drawn (a backend without dilation passes ``max_dilation=1``);
:data:`crossconv.strategy_options.OPTIONS` describes every one of them, and
``crossconv verify --op NAME --limit help`` lists them.

They are also built not to be trivially zero: padding is at most ``(k-1)*dilation`` and
the input is large enough that the first window reads an input cell (so a 1x1 kernel is
drawn without padding), pooling inputs are at least ``dilation`` long (no window of pure
padding), deform's first sample lands inside the image, conv2_5d's first window centre
has a positive depth.

Two tiers. Most draws (``1 - large`` of them) are small: batch 1-2, kernels up to 3,
outputs of a few cells, where every argument combination is cheap. The rest (``large``,
default 0.1) stress one dimension where real kernels break, within the ``max_*`` options:
a batch of 3 or more (odd ones included: chunked batch loops), one output side crossing
32, 64 or 128 by a remainder (tile remainders), kernels of 4 to 7, or an op's own one
(many channels and offset groups, templates past 16, many depth bins). Hypothesis shrinks
a large draw toward the small tier, so a counterexample stays large only if it must.
``large=0`` turns the tier off (slow interpreters).

Non-finite values (NaN, +inf, -inf in about half the draws) are on by default, as the contract (docs/)
defines every op on them; ``nonfinite=False`` (and for deform ``nonfinite_offsets=False``)
opts out.
"""

from __future__ import annotations

from .cases.common import DTYPES, LARGE, SEED
from .registry import OPS

__all__ = ["DTYPES", "LARGE", "SEED", *(f"{op}_cases" for op in OPS)]


def __getattr__(name):
    """``<op>_cases``: the op's strategy, from its cases file (through the registry)."""
    op = name.removesuffix("_cases")
    if name.endswith("_cases") and op in OPS:
        return OPS[op].cases
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
