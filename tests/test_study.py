"""Studies without training: reading goals, planning members, the whole-study approval, the CLI's plan."""

import dataclasses
import json

import pytest

from autotrain_agent.cli import main
from autotrain_agent.config import Settings
from autotrain_agent.errors import ConfigError
from autotrain_agent.recipes import PlanOverrides
from autotrain_agent.state import Checkpoint, DatasetSpec, Experiment, ExperimentStatus, Plan, Run, Score, Stage
from autotrain_agent.study import Study, StudyMember
from autotrain_agent.study_goals import read_study_goal
from autotrain_agent.study_loop import open_study, run_study
from autotrain_agent.study_plan import estimate_study, plan_study
from autotrain_agent.study_report import state_winner
from autotrain_agent.testing import build_tiny_chat_model, write_code_rows


@pytest.mark.parametrize(
    ("goal", "methods"),
    [
        ("SFT then DPO on my preferences", ("sft", "dpo")),
        ("improve code solving with SFT -> GRPO", ("sft", "grpo")),
        # "fine-tune" alone means SFT, but a stage that also names DPO is DPO.
        ("SFT followed by fine-tune with DPO", ("sft", "dpo")),
    ],
)
def test_goal_with_stages_is_pipeline(goal, methods):
    request = read_study_goal(goal, models=[], datasets=[], methods=[])

    assert request.kind == "pipeline"
    assert request.stage_methods == methods


def test_goal_ending_in_export_exports_last():
    request = read_study_goal("SFT then DPO then export to GGUF", models=[], datasets=[], methods=[])

    assert request.stage_methods == ("sft", "dpo")
    assert request.export


@pytest.mark.parametrize(
    "goal",
    [
        "improve code solving with SFT",
        # "best" without "which" does not ask for a comparison.
        "improve code solving with SFT and keep the best checkpoint",
    ],
)
def test_single_goal_is_no_study(goal):
    assert read_study_goal(goal, models=["m"], datasets=["d"], methods=[]).kind is None


def test_which_goal_is_model_comparison():
    request = read_study_goal("which small model is best for code solving?", models=[], datasets=[], methods=[])

    assert request.kind == "comparison"
    assert request.dimension == "model"
    assert request.candidates == ()


def test_goal_naming_methods_compares_them():
    request = read_study_goal("which is better for code, SFT or GRPO?", models=[], datasets=[], methods=[])

    assert (request.kind, request.dimension, request.candidates) == ("comparison", "method", ("sft", "grpo"))


def test_repeated_dataset_compares_datasets():
    request = read_study_goal("improve code solving", models=["m"], datasets=["a.jsonl", "b.jsonl"], methods=[])

    assert (request.kind, request.dimension, request.candidates) == ("comparison", "dataset", ("a.jsonl", "b.jsonl"))


def test_two_repeated_flags_rejected():
    with pytest.raises(ConfigError, match="`--model` and `--dataset`"):
        read_study_goal("compare", models=["a", "b"], datasets=["x", "y"], methods=[])


def test_pipeline_with_too_many_datasets_rejected():
    with pytest.raises(ConfigError, match="at most one `--dataset` per stage"):
        read_study_goal("SFT then DPO", models=[], datasets=["a", "b", "c"], methods=[])


@pytest.fixture
def tiny_inputs(tmp_path):
    first = build_tiny_chat_model(tmp_path / "tiny-a")
    second = build_tiny_chat_model(tmp_path / "tiny-b", hidden_size=32, seed=1)
    rows = write_code_rows(tmp_path / "rows.jsonl")
    return first, second, rows


def test_pipeline_plan_chains_stages(tiny_inputs):
    model, _, rows = tiny_inputs
    request = read_study_goal("SFT then SFT then export", models=[str(model)], datasets=[str(rows)] * 2, methods=[])

    study = plan_study("SFT then SFT then export", request, PlanOverrides(model=str(model)), datasets=[str(rows)] * 2, hub_reachable=False)

    first, second = study.members
    assert "method SFT: stage 2 of the pipeline the goal names" in second.plan.reasons
    assert first.base_from is None
    assert second.base_from == first.experiment_id
    assert Stage.EVALUATE_BASE in first.plan.stages
    assert Stage.EVALUATE_BASE not in second.plan.stages
    assert Stage.EXPORT not in first.plan.stages
    assert Stage.EXPORT in second.plan.stages


def test_pipeline_on_jobs_not_supported(tiny_inputs):
    model, _, rows = tiny_inputs
    request = read_study_goal("SFT then SFT", models=[], datasets=[], methods=[])
    overrides = PlanOverrides(model=str(model), backend="hf-jobs", hub_repo="me/tiny")

    with pytest.raises(NotImplementedError, match="local backend only"):
        plan_study("SFT then SFT", request, overrides, datasets=[str(rows)] * 2, hub_reachable=False)


def test_budget_under_summed_estimate_starts_nothing(tiny_inputs, tmp_path):
    first, second, rows = tiny_inputs
    goal = "compare models for code"
    request = read_study_goal(goal, models=[str(first), str(second)], datasets=[], methods=[])
    overrides = PlanOverrides(dataset=str(rows), max_steps=5, backend="hf-jobs", hub_repo="me/tiny")
    study = plan_study(goal, request, overrides, datasets=[str(rows)], hub_reachable=False)
    estimate_study(study, cache_dir=tmp_path / "cache")
    # Each member alone fits the budget; only their sum is over it.
    study.budget_usd = round(study.estimated_cost_usd - 0.01, 2)
    settings = Settings(output_dir=tmp_path / "work", cache_dir=tmp_path / "cache", progress=False)
    study, _ = open_study(study, settings)

    result = run_study(study, settings, approver=None, echo=lambda line: None)

    assert all(0 < member.estimated_cost_usd <= study.budget_usd for member in study.members)
    assert result.state == "needs_approval"
    assert result.member_states == {}
    assert study.status == ExperimentStatus.NEEDS_APPROVAL
    assert study.approvals[-1].approver == "budget"
    assert "over the" in study.approvals[-1].reason
    assert not any((settings.runs_dir / member.experiment_id).exists() for member in study.members)
    assert "| rejected | budget |" in result.report_path.read_text()


def test_comparison_with_export_rejected(tiny_inputs):
    first, second, rows = tiny_inputs
    request = read_study_goal("compare", models=[str(first), str(second)], datasets=[], methods=[])
    request = dataclasses.replace(request, export=True)

    with pytest.raises(ConfigError, match="export the winner"):
        plan_study("compare", request, PlanOverrides(dataset=str(rows)), datasets=[], hub_reachable=False)


def test_resume_command_continues_study(tiny_inputs, tmp_path, capsys):
    first, second, rows = tiny_inputs
    request = read_study_goal("compare", models=[str(first), str(second)], datasets=[], methods=[])
    overrides = PlanOverrides(dataset=str(rows), max_steps=5, backend="hf-jobs", hub_repo="me/tiny")
    study = plan_study("compare", request, overrides, datasets=[], hub_reachable=False)
    estimate_study(study, cache_dir=tmp_path / "cache")
    study.budget_usd = 0.01
    settings = Settings(output_dir=tmp_path / "work", cache_dir=tmp_path / "cache", progress=False)
    open_study(study, settings)

    status = main(["resume", study.id, "--output-dir", str(tmp_path / "work"), "--no-progress"])

    output = capsys.readouterr().out
    assert status == 1
    assert f"Resuming study {study.id} (status active)." in output
    assert f"Study {study.id}: needs_approval." in output
    assert "over the $0.01 budget" in output


def test_rerun_with_other_plan_rejected(tiny_inputs, tmp_path):
    first, second, rows = tiny_inputs
    settings = Settings(output_dir=tmp_path / "work", cache_dir=tmp_path / "cache", progress=False)
    request = read_study_goal("compare", models=[str(first), str(second)], datasets=[], methods=[])
    study = plan_study("compare", request, PlanOverrides(dataset=str(rows), max_steps=2), datasets=[], hub_reachable=False)
    open_study(study, settings)
    changed = plan_study("compare", request, PlanOverrides(dataset=str(rows), max_steps=3), datasets=[], hub_reachable=False)

    with pytest.raises(ConfigError, match="max_steps: 2 -> 3"):
        open_study(changed, settings)


def test_cli_plan_only_prints_study_total(tiny_inputs, tmp_path, capsys):
    first, second, rows = tiny_inputs
    argv = ["which model is best for code?", "--model", str(first), "--model", str(second), "--dataset", str(rows),
            "--budget", "5", "--max-steps", "2", "--output-dir", str(tmp_path / "work"), "--plan-only"]

    status = main(argv)

    output = capsys.readouterr().out
    assert status == 0
    assert "Plan for study compare-models-tiny-a-vs-tiny-b: comparison of models, 2 experiments" in output
    assert "Experiment 2 of 2, tiny-b:" in output
    assert "for 2 experiments (estimate); budget $5.00" in output
    assert not (tmp_path / "work" / "training_runs").exists()


def test_cli_status_lists_studies(tiny_inputs, tmp_path, capsys):
    first, second, rows = tiny_inputs
    settings = Settings(output_dir=tmp_path / "work", cache_dir=tmp_path / "cache", progress=False)
    request = read_study_goal("compare", models=[str(first), str(second)], datasets=[], methods=[])
    study = plan_study("compare", request, PlanOverrides(dataset=str(rows), max_steps=2), datasets=[], hub_reachable=False)
    open_study(study, settings)

    main(["status", "--output-dir", str(tmp_path / "work"), "--json"])

    listing = json.loads(capsys.readouterr().out)
    assert listing == [{"id": study.id, "status": "active", "goal": "compare", "study": "comparison",
                        "members": [member.experiment_id for member in study.members]}]


def _scored_experiment(experiment_id, *, passed, total=40):
    value = passed / total
    stderr = (value * (1 - value) / (total - 1)) ** 0.5
    score = Score(benchmark="humaneval", metric="pass@1", value=value, num_samples=total, num_passed=passed, stderr=stderr)
    plan = Plan(goal="compare", base_model="m", dataset=DatasetSpec(reference="builtin:code-functions"))
    run = Run(run_id="run-1", title="SFT run 1", status="succeeded", output_dir="out", trackio_project="p", trackio_run="r",
              checkpoints=[Checkpoint(step=2, path=f"{experiment_id}/final", scores=[score])])
    return Experiment(id=experiment_id, goal="compare", plan=plan, runs=[run], status=ExperimentStatus.SUCCEEDED)


@pytest.mark.parametrize(
    ("passed", "verdict"),
    [
        # 30/40 against 10/40 is far outside one standard error.
        ((30, 10), "Winner: a, humaneval pass@1 0.750"),
        # 11/40 against 10/40 is within one standard error.
        ((11, 10), "No measurable difference: a scored highest"),
        ((10, 10), "No measurable difference: a and b tie at the top"),
    ],
)
def test_comparison_verdict_states_winner(passed, verdict):
    plan = Plan(goal="compare", base_model="m", dataset=DatasetSpec(reference="builtin:code-functions"))
    members = [StudyMember(experiment_id=name, label=name, plan=plan) for name in ("a", "b")]
    study = Study(id="s", kind="comparison", goal="compare", dimension="model", members=members)
    experiments = {name: _scored_experiment(name, passed=count) for name, count in zip(("a", "b"), passed)}

    assert state_winner(study, experiments).startswith(verdict)
