"""The rule-based planner picks the next tool call from the persisted state alone."""

import pytest

from autotrain_agent.backends.local import LocalBackend
from autotrain_agent.config import Settings
from autotrain_agent.context import ExperimentContext
from autotrain_agent.planner import FINAL_ANSWER, RuleBasedPlanner, choose_next_call
from autotrain_agent.recipes import make_plan
from autotrain_agent.state import (
    Experiment,
    ExperimentStatus,
    Failure,
    Run,
    Stage,
    with_export_stage,
)
from autotrain_agent.store import ExperimentStore


@pytest.fixture
def ctx(tmp_path):
    experiment = Experiment(id="exp", goal="improve code solving", plan=make_plan("improve code solving"))
    return ExperimentContext(
        experiment=experiment,
        store=ExperimentStore(tmp_path / "training_runs"),
        settings=Settings(output_dir=tmp_path),
        backend=LocalBackend(tmp_path / "jobs"),
        echo=lambda line: None,
    )


def _run(status: str) -> Run:
    return Run(run_id="run-1", title="t", output_dir="o", trackio_project="p", trackio_run="run-1", status=status, job_id="j")


def test_fresh_experiment_validates_first(ctx):
    call = choose_next_call(ctx)

    assert call.tool == "validate_dataset"
    assert Stage.PLAN in ctx.experiment.completed_stages


def test_base_model_scored_before_training(ctx):
    ctx.experiment.completed_stages += [Stage.PLAN, Stage.VALIDATE]

    call = choose_next_call(ctx)

    assert (call.tool, call.arguments) == ("evaluate_model", {"target": "base"})


def test_running_run_is_monitored_not_resubmitted(ctx):
    ctx.experiment.completed_stages += [Stage.PLAN, Stage.VALIDATE, Stage.EVALUATE_BASE]
    ctx.experiment.runs.append(_run("running"))

    call = choose_next_call(ctx)

    assert (call.tool, call.arguments) == ("monitor_run", {"run_id": "run-1"})


def test_succeeded_run_is_evaluated(ctx):
    ctx.experiment.completed_stages += [Stage.PLAN, Stage.VALIDATE, Stage.EVALUATE_BASE, Stage.TRAIN]
    ctx.experiment.runs.append(_run("succeeded"))

    call = choose_next_call(ctx)

    assert (call.tool, call.arguments) == ("evaluate_model", {"target": "run-1"})


def test_failed_run_ends_experiment(ctx):
    ctx.experiment.completed_stages += [Stage.PLAN, Stage.VALIDATE, Stage.EVALUATE_BASE]
    run = _run("failed")
    run.failure = Failure(kind="oom", message="CUDA out of memory")
    ctx.experiment.runs.append(run)

    call = choose_next_call(ctx)

    assert call.tool == FINAL_ANSWER
    assert ctx.experiment.status == ExperimentStatus.FAILED
    assert "out of memory" in ctx.experiment.failure


def test_planner_message_carries_tool_call_and_decision(ctx):
    planner = RuleBasedPlanner(ctx)

    message = planner.generate([])

    assert message.tool_calls[0].function.name == "validate_dataset"
    assert ctx.experiment.decisions[-1].action == "call validate_dataset()"
    assert ctx.store.exists("exp")


def test_default_plan_has_no_export_stage(ctx):
    assert Stage.EXPORT not in ctx.experiment.plan.stages


def test_export_stage_sits_before_report():
    stages = with_export_stage([Stage.EVALUATE_RUN, Stage.REPORT])

    assert stages == [Stage.EVALUATE_RUN, Stage.EXPORT, Stage.REPORT]
    assert with_export_stage(stages) == stages


def test_evaluated_run_is_exported_when_planned(ctx):
    ctx.experiment.plan.stages = with_export_stage(ctx.experiment.plan.stages)
    ctx.experiment.completed_stages += [Stage.PLAN, Stage.VALIDATE, Stage.EVALUATE_BASE, Stage.TRAIN, Stage.EVALUATE_RUN]
    ctx.experiment.runs.append(_run("succeeded"))

    call = choose_next_call(ctx)

    assert (call.tool, call.arguments) == ("export_model", {"run_id": "run-1"})
