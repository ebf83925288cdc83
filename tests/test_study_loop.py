"""Studies on tiny models: real TRL training, the real HumanEval harness, one loop per member experiment."""

import pytest

from autotrain_agent.approval import CallbackApprover
from autotrain_agent.config import Settings
from autotrain_agent.recipes import PlanOverrides
from autotrain_agent.state import ExperimentStatus, Stage
from autotrain_agent.store import ExperimentStore
from autotrain_agent.study_goals import read_study_goal
from autotrain_agent.study_loop import open_study, run_study
from autotrain_agent.study_plan import estimate_study, plan_study
from autotrain_agent.testing import build_tiny_chat_model, write_code_rows

pytestmark = pytest.mark.slow


def _tiny_overrides(model_dir, **changes):
    values = dict(model=str(model_dir), max_steps=2, eval_limit=2, eval_engine="transformers")
    values.update(changes)
    return PlanOverrides(**values)


def _shrink(study):
    """Keep each member under ten seconds: short generations and sequences."""
    for member in study.members:
        member.plan.benchmarks[0].max_new_tokens = 16
        member.plan.hyperparameters.max_length = 128
    return study


@pytest.fixture
def settings(tmp_path):
    return Settings(output_dir=tmp_path / "work", cache_dir=tmp_path / "cache", progress=False, poll_interval_s=0.2)


@pytest.fixture
def pipeline_study(tmp_path):
    model_dir = build_tiny_chat_model(tmp_path / "tiny-model")
    first = write_code_rows(tmp_path / "first.jsonl")
    second = write_code_rows(tmp_path / "second.jsonl", count=12)
    goal = "SFT then SFT on more code"
    request = read_study_goal(goal, models=[str(model_dir)], datasets=[str(first), str(second)], methods=[])
    study = plan_study(goal, request, _tiny_overrides(model_dir), datasets=[str(first), str(second)], hub_reachable=False)
    estimate_study(_shrink(study), cache_dir=tmp_path / "cache")
    return study


def test_pipeline_trains_stage_two_from_stage_one(pipeline_study, settings):
    study, resumed = open_study(pipeline_study, settings)

    result = run_study(study, settings, echo=lambda line: None)

    assert not resumed
    assert result.state == "succeeded", result.failure
    store = ExperimentStore(settings.runs_dir)
    first, second = (store.load(member.experiment_id) for member in study.members)
    merged = settings.runs_dir / study.id / "models" / first.id
    assert second.plan.base_model == str(merged)
    assert (merged / "config.json").is_file()
    assert Stage.EVALUATE_BASE not in second.completed_stages
    assert second.baseline_scores[0].value == first.runs[0].checkpoints[-1].scores[0].value
    assert second.runs[0].checkpoints[-1].scores[0].task_ids == first.baseline_scores[0].task_ids
    report = result.report_path.read_text()
    assert "## Scores Along the Pipeline" in report
    assert "| Base model `" in report
    assert "| stage 1: SFT (`" in report and "| stage 2: SFT (`" in report
    assert f"## stage 2: SFT: {second.id} - succeeded" in report
    assert "#### Training Parameters" in report and "### Plan" in report
