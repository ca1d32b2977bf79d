"""Every registered implementation against the reference, generated from the registry.

One forward test and one gradient test per entry of ``crossconv.registry.IMPLEMENTATIONS``
(today the torch / torchvision anchors SPEC.md follows; the backends as they land). An
implementation that cannot run here (framework not installed) is skipped with the reason.
"""

import pytest
from hypothesis import given

from crossconv import checks, frameworks
from crossconv.registry import IMPLEMENTATIONS, OPS


def _ids(impl):
    return f"{impl.name}-{impl.op}"


def _strategy(impl):
    return OPS[impl.op].cases(dtypes=impl.dtypes, **impl.limits)


def _skip_unavailable(impl):
    reason = frameworks.implementation_status(impl)
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=_ids)
def test_forward_matches_reference(impl):
    _skip_unavailable(impl)

    @given(_strategy(impl))
    def check(case):
        checks.check_forward(impl, case)

    check()


@pytest.mark.parametrize("impl", [i for i in IMPLEMENTATIONS if i.grad], ids=_ids)
def test_gradients_match_reference_vjp(impl):
    _skip_unavailable(impl)

    @given(_strategy(impl))
    def check(case):
        checks.check_vjp(impl, case)

    check()
