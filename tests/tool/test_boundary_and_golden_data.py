"""The boundary and golden cases are valid data, hit the edges they name, and agree with
the loop oracles; the strategies' non-finite options draw what they say."""

import importlib.util
import inspect

import numpy as np
import pytest
from hypothesis import given, settings

from crossconv import boundary, checks, frameworks, measure
from crossconv.goldens import GOLDENS
from crossconv.registry import OPS, implementations

#: Boundary cases a default draw does not reach: the tracking shape (seconds, not
#: milliseconds: too slow for the loop oracle) needs a larger max_template and max_channels.
NOT_BY_DEFAULT = ("the tracking shape",)
BOUNDARY = [(op, b) for op in OPS.values() for b in op.boundary()
            if not b.name.startswith(NOT_BY_DEFAULT)]
IDS = [f"{op.name}-{b.name[:40]}" for op, b in BOUNDARY]


def test_every_op_has_boundary_cases():
    assert all(op.boundary() for op in OPS.values())


@pytest.mark.parametrize("op, case", BOUNDARY, ids=IDS)
def test_a_boundary_case_is_a_valid_nontrivial_call_the_oracle_agrees_with(op, case):
    assert list(case.case.tensors) == list(op.tensor_args)
    assert set(case.needs) <= set(boundary.strategy_defaults(op.cases))
    with np.errstate(all="ignore"):
        checks.check_oracle(case.case)  # forward, indices and every gradient, 1e-12
        out = measure.reference_outputs(case.case)[0]
        grads = measure.reference_vjp(case.case, measure.cotangent(case.case, out.shape))
    assert not measure.trivially_zero(out)
    assert not [name for name, g in grads.items()
                if measure.trivially_zero(g) and name not in op.vanishing]
    # Admitted by the op's default strategy options (non-finite values included).
    assert boundary.admits(op.cases, {}, case) is None


@pytest.mark.parametrize("op", ["xcorr2d", "xcorr2d_depthwise"])
def test_the_tracking_shape_is_a_boundary_case_a_run_asks_for(op):
    tracking = next(b for b in OPS[op].boundary() if b.name.startswith("the tracking shape"))
    assert tracking.case.tensors["search"].shape == (1, 256, 255, 255)
    assert tracking.case.tensors["template"].shape == (1, 256, 127, 127)
    assert boundary.admits(OPS[op].cases, {}, tracking)  # not by default
    assert boundary.admits(OPS[op].cases, {"max_template": 127, "max_channels": 256}, tracking) is None


def test_every_op_has_a_boundary_case_at_each_edge_of_the_large_tier():
    for op in OPS.values():
        names = " ".join(b.name for b in op.boundary())
        assert "a batch of 3" in names and "output row of 33" in names, op.name


def _samples(case):
    from crossconv.figures import sample_points

    t = case.tensors
    return sample_points(t["offset"], t["weight"].shape, case.params["stride"],
                         case.params["padding"], case.params["dilation"], t["input"].shape[2:])


def test_deform_boundary_samples_land_exactly_on_the_border_rows_and_columns():
    first = OPS["deform_conv2d"].boundary()[0].case
    h, w = first.tensors["input"].shape[2:]
    ys, xs = _samples(first)
    assert {-1.0, 0.0, h - 1.0, float(h)} <= set(ys.ravel().tolist())
    assert {-1.0, 0.0, w - 1.0, float(w)} <= set(xs.ravel().tolist())
    for b in OPS["deform_conv2d"].boundary():
        if "integer" in b.name:
            ys, xs = _samples(b.case)
            assert np.array_equal(ys, np.round(ys)) and np.array_equal(xs, np.round(xs))


def test_tanprod_boundary_cases_have_exact_zero_factors():
    for b in OPS["tanprod_conv2d"].boundary()[:2]:
        x, w = b.case.tensors["input"], b.case.tensors["weight"]
        assert np.isin(-x, w).any()  # x + w == 0 exactly for a tap that reads it
        assert np.isin(-x.astype(np.float32), w.astype(np.float32)).any()


def test_conv2_5d_boundary_cases_cover_closed_centres_bin_counts_and_nan_depth():
    cases = {b.name: b.case for b in OPS["conv2_5d"].boundary()}
    bins = {c.tensors["weight"].shape[0] for c in cases.values()}
    assert {1, 2, 3} <= bins
    depth = np.concatenate([c.tensors["depth"].ravel() for c in cases.values()])
    assert (depth == 0).any() and (depth < 0).any() and np.isnan(depth).any() and np.isinf(depth).any()


def test_pooling_boundary_cases_cover_ceil_overhang_ties_and_nan():
    import reference

    overhang = [b for b in OPS["max_pool2d"].boundary() if "overhang" in b.name]
    case = overhang[0].case
    floor = reference.max_pool2d(case.tensors["input"], **{**case.params, "ceil_mode": False})
    assert floor[0].shape[-1] < case.call(reference.max_pool2d)[0].shape[-1]
    names = " ".join(b.name for b in OPS["max_pool2d"].boundary())
    assert "ties" in names and "NaN" in names


def test_admits_reads_limits_like_the_strategies():
    dilated = next(b for b in OPS["conv2d"].boundary() if b.case.params["dilation"] == 2)
    strategy = OPS["conv2d"].cases
    assert boundary.admits(strategy, {}, dilated) is None
    assert "max_dilation=2" in boundary.admits(strategy, {"max_dilation": 1}, dilated)
    masked = next(b for b in OPS["deform_conv2d"].boundary() if b.case.tensors["mask"] is not None)
    assert boundary.admits(OPS["deform_conv2d"].cases, {"with_mask": False}, masked)
    assert boundary.admits(OPS["deform_conv2d"].cases, {"with_mask": True}, masked) is None


@pytest.mark.parametrize("golden", GOLDENS, ids=[f"{g.op}-{g.name}" for g in GOLDENS])
def test_a_golden_case_runs_through_every_available_implementation_of_its_op(golden):
    assert list(golden.case.tensors) == list(OPS[golden.op].tensor_args)
    for impl in implementations(golden.op):
        if frameworks.implementation_status(impl):
            continue
        adapter, fn = frameworks.load(impl)
        comparisons = measure.measure_forward(adapter, fn, golden.case, impl.extra, golden.expected)
        if impl.grad:
            comparisons += measure.measure_vjp(adapter, fn, golden.case, impl.extra)
        assert all(c.passed for c in comparisons), [c.describe() for c in comparisons]


NONFINITE_OPTIONS = [(op, option) for op in OPS.values() for option in ("nonfinite", "nonfinite_offsets")
                     if option in inspect.signature(op.cases).parameters]


@pytest.mark.parametrize("op, option", NONFINITE_OPTIONS, ids=[f"{o.name}-{k}" for o, k in NONFINITE_OPTIONS])
def test_a_nonfinite_option_draws_nonfinite_values_the_oracle_agrees_with(op, option):
    seen = []

    @settings(max_examples=12)
    @given(op.cases(dtypes=("float64",), **{option: True}))
    def check(case):
        target = "offset" if option == "nonfinite_offsets" else None
        values = [v for k, v in case.tensors.items() if v is not None and k == (target or k)]
        seen.append(any(not np.isfinite(v).all() for v in values))
        with np.errstate(all="ignore"):
            checks.check_oracle(case)

    check()
    assert any(seen)


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="torchvision missing")
def test_the_anchors_agree_on_every_boundary_case_their_limits_admit():
    from crossconv.crosscheck import cast

    for impl in implementations(backend="torch-anchor"):
        op = OPS[impl.op]
        adapter, fn = frameworks.load(impl)
        for b in op.boundary():
            if boundary.admits(op.cases, impl.limits, b):
                continue
            for dtype in impl.dtypes:
                case = cast(b.case, dtype)
                with np.errstate(all="ignore"):
                    comparisons = (measure.measure_forward(adapter, fn, case, impl.extra)
                                   + measure.measure_vjp(adapter, fn, case, impl.extra))
                assert all(c.passed for c in comparisons), (b.name, [c.describe() for c in comparisons])
