"""``crossconv crosscheck``: the matrix, its records and reports, seeds, limits, exit codes."""

import json

import numpy as np
import pytest

from crossconv.cli import main
from crossconv.crosscheck import crosscheck, device_problem
from crossconv.report import markdown, to_json, write_json
from tests.tool import planted_mistakes
from tests.tool.fakes import torch_function


def _cell(report, op, column):
    return report.cells[op][report.columns.index(column)]


def test_a_correct_backend_passes_on_random_golden_boundary_and_empty_batch_cases(fake_backend):
    fake_backend("good", {"deform_conv2d": torch_function("deform_conv2d")})
    report = crosscheck(examples=4, ops=["deform_conv2d"], backends=["good"])
    cell = _cell(report, "deform_conv2d", "good")
    assert cell.status == "PASS", [r.worst.describe() for r in cell.failures]
    kinds = {r.kind for r in cell.records}
    assert kinds == {"random", "golden", "boundary", "empty batch"}
    boundary = {r.name for r in cell.records if r.kind == "boundary"}
    assert any("-1, 0, H-1, H" in name for name in boundary)
    # Both dtypes for each admitted boundary case; forward and every gradient compared.
    dtypes = {r.case.dtype.name for r in cell.records if r.kind == "boundary"}
    assert dtypes == {"float32", "float64"}
    checks = {c.check for r in cell.records for c in r.comparisons}
    assert {"forward", "d/dinput", "d/doffset", "d/dweight"} <= checks
    # Non-finite offsets are drawn by default: their boundary cases ran.
    assert any("NaN in one offset coordinate" in name for name in boundary)
    assert not cell.skipped
    assert 0 < cell.worst <= 1 and cell.seconds > 0


def test_a_mistake_only_a_boundary_case_hits_fails_the_cell(fake_backend):
    """Wrong 'same' padding split: the boundary case with an even kernel catches it."""
    wrong = torch_function("conv2d", forward=planted_mistakes.conv2d_same_padding_off_by_one)
    fake_backend("offbyone", {"conv2d": wrong})
    report = crosscheck(examples=2, ops=["conv2d"], backends=["offbyone"])
    cell = _cell(report, "conv2d", "offbyone")
    assert cell.status == "FAIL" and cell.worst > 1
    failure = max(cell.failures, key=lambda r: r.worst.ratio)
    assert failure.kind == "boundary" and "same" in failure.name
    worst = failure.worst.worst
    assert worst.index is not None and worst.actual != pytest.approx(worst.expected)
    assert report.failed


def test_limits_narrow_the_boundary_cases_and_the_draws(fake_backend):
    fake_backend("nodilation", {"conv2d": torch_function("conv2d")}, limits={"max_dilation": 1})
    report = crosscheck(examples=6, ops=["conv2d"], backends=["nodilation"])
    cell = _cell(report, "conv2d", "nodilation")
    assert cell.status == "PASS"
    assert any("max_dilation=2" in s for s in cell.skipped)
    assert all(np.max(r.case.params.get("dilation", 1)) == 1 for r in cell.records)


def test_a_raising_backend_fails_with_the_exception_and_the_matrix_goes_on(fake_backend):
    def broken(**kwargs):
        raise RuntimeError("kernel launch failed")

    fake_backend("broken", {"conv2d": broken, "max_pool2d": torch_function("max_pool2d")})
    report = crosscheck(examples=2, ops=["conv2d", "avg_pool2d"], backends=["broken", "reference"])
    assert report.columns == ["oracle", "finite diff", "golden", "broken"]
    cell = _cell(report, "conv2d", "broken")
    assert cell.status == "FAIL"
    assert "raised RuntimeError: kernel launch failed" in cell.failures[0].worst.problem
    assert _cell(report, "avg_pool2d", "broken").status == "—"
    assert _cell(report, "avg_pool2d", "oracle").status == "PASS"


def test_the_seed_chooses_the_random_cases_reproducibly():
    def configurations(seed):
        report = crosscheck(examples=5, ops=["avg_pool2d"], backends=["reference"], seed=seed)
        return [r.case.describe() for r in _cell(report, "avg_pool2d", "oracle").records
                if r.kind == "random"]

    assert configurations(0) == configurations(0)
    assert configurations(0) != configurations(1)


def test_reports_hold_every_case_with_its_worst_element(fake_backend, tmp_path):
    wrong = torch_function("conv2d", forward=planted_mistakes.conv2d_same_padding_off_by_one)
    fake_backend("offbyone", {"conv2d": wrong})
    report = crosscheck(examples=2, ops=["conv2d"], backends=["offbyone", "reference"])
    write_json(report, tmp_path / "r.json", "crossconv crosscheck ...")

    def strict(value):
        raise ValueError(f"non-standard JSON constant {value}")

    data = json.loads((tmp_path / "r.json").read_text(), parse_constant=strict)
    assert data["matrix"]["conv2d"]["offbyone"]["status"] == "FAIL"
    assert set(data["column_seconds"]) == {"oracle", "finite diff", "golden", "offbyone"}
    cases = [c for c in data["cases"] if c["column"] == "offbyone"]
    assert len(cases) == data["matrix"]["conv2d"]["offbyone"]["cases"]
    failing = next(c for c in cases if not c["passed"])
    check = next(k for k in failing["checks"] if not k["passed"])
    assert failing["configuration"]["params"]["padding"] == "same"
    assert len(check["index"]) == 4 and check["actual"] != check["expected"]
    assert to_json(report)["passed"] is False
    text = markdown(report)
    assert "| conv2d | PASS" in text and "FAIL" in text and "## Failures" in text


def test_the_cli_prints_the_matrix_and_exits_1_on_a_failure(fake_backend, capsys, tmp_path):
    wrong = torch_function("conv2d", forward=planted_mistakes.conv2d_same_padding_off_by_one)
    fake_backend("offbyone", {"conv2d": wrong})
    code = main(["crosscheck", "--ops", "conv2d", "--backends", "offbyone", "--examples", "2",
                 "--markdown", str(tmp_path / "r.md")])
    out = capsys.readouterr().out
    assert code == 1
    assert "offbyone" in out and "FAIL" in out and "seconds" in out and "same" in out
    assert (tmp_path / "r.md").read_text().startswith("# crossconv crosscheck report")


def test_bad_options_exit_2(capsys):
    assert main(["crosscheck", "--ops", "conv3d"]) == 2
    assert main(["crosscheck", "--backends", "tensorflow"]) == 2
    assert main(["crosscheck", "--device", "tpu"]) == 2
    assert "unknown" in capsys.readouterr().out


@pytest.mark.skipif(device_problem("cuda") is None, reason="a CUDA device is here")
def test_device_cuda_without_a_gpu_exits_2_with_the_reason(capsys):
    assert main(["crosscheck", "--device", "cuda", "--ops", "conv2d"]) == 2
    assert "no CUDA device" in capsys.readouterr().out


def test_a_slow_implementation_runs_its_share_of_draws_and_boundary_cases_in_one_dtype(fake_backend):
    fake_backend("slow", {"avg_pool2d": torch_function("avg_pool2d")}, examples=0.5)
    report = crosscheck(examples=6, ops=["avg_pool2d"], backends=["slow"])
    records = _cell(report, "avg_pool2d", "slow").records
    assert sum(r.kind == "random" for r in records) == 3
    assert {r.case.dtype.name for r in records if r.kind == "boundary"} == {"float32"}
