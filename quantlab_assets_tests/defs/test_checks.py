"""outputs_then_checks, in a real materialisation: a failed blocking check withholds the output and
everything published with it; a passing or advisory-only failure does not."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from quantlab_assets.defs.checks import Outputs, outputs_then_checks


def _withholding_asset(gate_results: list[bool], advisory_passes: bool, published: list[str]) -> dg.AssetsDefinition:
    gate_names = [f"gate_{i}" for i in range(len(gate_results))]

    @dg.asset(check_specs=[
        *(dg.AssetCheckSpec(name, asset="answer", blocking=True) for name in gate_names),
        dg.AssetCheckSpec("advisory", asset="answer", blocking=False),
    ])
    def answer() -> Outputs:
        checks = [dg.AssetCheckResult(check_name=name, passed=passed) for name, passed in zip(gate_names, gate_results)]
        advisory = dg.AssetCheckResult(check_name="advisory", passed=advisory_passes, severity=dg.AssetCheckSeverity.WARN)

        def outputs() -> Outputs:
            published.append("checkpoint")  # what is published with the output (a file, an MLflow run)
            yield dg.Output(42)

        yield from outputs_then_checks(outputs, checks, advisory=[advisory])

    return answer


def _run(gates: list[bool], advisory_passes: bool, tmp_path: Path) -> tuple[dg.ExecuteInProcessResult, list[str]]:
    published: list[str] = []
    result = dg.materialize([_withholding_asset(gates, advisory_passes, published)], raise_on_error=False,
                            resources={"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path))})
    return result, published


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}


def test_every_check_passed_gives_the_output_then_the_checks(tmp_path: Path) -> None:
    result, published = _run([True, True], True, tmp_path)
    assert result.success and published == ["checkpoint"]
    assert result.output_for_node("answer") == 42
    assert _checks(result) == {"gate_0": True, "gate_1": True, "advisory": True}


@pytest.mark.parametrize("gates", [[False, True], [True, False], [False, False]])
def test_one_failed_blocking_check_withholds_the_output_and_what_goes_with_it(gates: list[bool], tmp_path: Path) -> None:
    result, published = _run(gates, True, tmp_path)
    assert not result.success
    assert published == [] and result.get_asset_materialization_events() == []
    assert not (tmp_path / "answer").exists()
    # Every check is still reported, the passing ones too.
    assert _checks(result) == {"gate_0": gates[0], "gate_1": gates[1], "advisory": True}


def test_a_failed_advisory_check_is_reported_but_withholds_nothing(tmp_path: Path) -> None:
    result, published = _run([True, True], False, tmp_path)
    assert result.success and published == ["checkpoint"] and (tmp_path / "answer").exists()
    assert _checks(result) == {"gate_0": True, "gate_1": True, "advisory": False}


def test_a_single_check_result_is_accepted() -> None:
    produced = list(outputs_then_checks(lambda: iter([dg.Output(1)]), dg.AssetCheckResult(check_name="c", passed=True)))
    assert [type(event) for event in produced] == [dg.Output, dg.AssetCheckResult]
    withheld = list(outputs_then_checks(lambda: iter([dg.Output(1)]), dg.AssetCheckResult(check_name="c", passed=False)))
    assert [type(event) for event in withheld] == [dg.AssetCheckResult]
