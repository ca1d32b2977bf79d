"""Every registered implementation against the reference, generated from the registry.

Per entry of ``crossconv.registry.IMPLEMENTATIONS``: a forward test, a gradient test and
an empty-batch (N = 0) test. An implementation that cannot run here (framework not
installed) is skipped with the reason. Slow implementations (interpreters, Lua VMs) run
the fraction ``impl.examples`` of the profile's examples.
"""

import pytest
from hypothesis import given, settings

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


def _property(impl, check, fraction=1.0):
    """``check(impl, case)`` over drawn cases, with the implementation's share of examples."""
    examples = max(1, round(settings.default.max_examples * impl.examples * fraction))

    @settings(max_examples=examples)
    @given(_strategy(impl))
    def run(case):
        check(impl, case)

    run()


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=_ids)
def test_forward_matches_reference(impl):
    _skip_unavailable(impl)
    _property(impl, checks.check_forward)


@pytest.mark.parametrize("impl", [i for i in IMPLEMENTATIONS if i.grad], ids=_ids)
def test_gradients_match_reference_vjp(impl):
    _skip_unavailable(impl)
    _property(impl, checks.check_vjp)


@pytest.mark.parametrize("impl", [i for i in IMPLEMENTATIONS if not i.backend.endswith("anchor")],
                         ids=_ids)
def test_an_empty_batch_works(impl):
    _skip_unavailable(impl)
    _property(impl, checks.check_empty_batch, fraction=0.1)
