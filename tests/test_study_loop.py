"""Studies on tiny models: real TRL training, the real HumanEval harness, one loop per member experiment."""

import json

import pytest

from autotrain_agent.approval import CallbackApprover
from autotrain_agent.config import Settings
from autotrain_agent.recipes import PlanOverrides
from autotrain_agent.state import ExperimentStatus, Stage
from autotrain_agent.store import ExperimentStore
from autotrain_agent.study import StudyStore
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
    assert "| stage 1: SFT (`" in report
    assert "| stage 2: SFT (`" in report
    assert f"## stage 2: SFT: {second.id} - succeeded" in report
    assert "#### Training Parameters" in report
    assert "### Plan" in report


@pytest.fixture
def comparison_study(tmp_path):
    first = build_tiny_chat_model(tmp_path / "tiny-a")
    second = build_tiny_chat_model(tmp_path / "tiny-b", hidden_size=32, seed=1)
    rows = write_code_rows(tmp_path / "rows.jsonl")
    goal = "which model is best for code solving?"
    request = read_study_goal(goal, models=[str(first), str(second)], datasets=[str(rows)], methods=[])
    study = plan_study(goal, request, _tiny_overrides(None, dataset=str(rows)), datasets=[str(rows)], hub_reachable=False)
    estimate_study(_shrink(study), cache_dir=tmp_path / "cache")
    return study


def test_comparison_reports_table_and_verdict(comparison_study, settings):
    requests = []
    comparison_study.require_approval = True
    study, _ = open_study(comparison_study, settings)

    result = run_study(study, settings, approver=CallbackApprover(lambda request: requests.append(request) or True), echo=lambda line: None)

    assert result.state == "succeeded", result.failure
    assert len(requests) == 1
    assert requests[0].estimated_minutes == study.estimated_minutes
    assert [line.split(":")[0] for line in requests[0].member_lines] == ["tiny-a", "tiny-b"]
    store = ExperimentStore(settings.runs_dir)
    members = [store.load(member.experiment_id) for member in study.members]
    assert [m.approvals[0].approver for m in members] == ["study", "study"]
    assert members[0].baseline_scores[0].task_ids == members[1].baseline_scores[0].task_ids
    report = result.report_path.read_text()
    assert "| Candidate | Base score | Fine-tuned score | Change from its base | Train time | Cost | Status |" in report
    assert "| tiny-a | humaneval pass@1 " in report
    assert "| tiny-b | humaneval pass@1 " in report
    assert "No measurable difference: " in report or "Winner: " in report
    assert "Every score covers the same 2 problems: HumanEval/0, HumanEval/1." in report


def test_rerun_skips_finished_members(pipeline_study, settings):
    lines = []

    def interrupt_in_stage_two(line):
        lines.append(line)
        if line.startswith("Submitted run") and any("experiment 2 of 2" in seen for seen in lines):
            raise KeyboardInterrupt

    study, _ = open_study(pipeline_study, settings)
    with pytest.raises(KeyboardInterrupt):
        run_study(study, settings, echo=interrupt_in_stage_two)
    store = ExperimentStore(settings.runs_dir)
    first_id, second_id = (member.experiment_id for member in study.members)
    first_events = len(store.read_journal(first_id))
    again, resumed = open_study(pipeline_study, settings)
    result = run_study(again, settings, echo=lambda line: None)

    assert resumed
    assert result.state == "succeeded", result.failure
    assert len(store.read_journal(first_id)) == first_events
    second_events = [event["event"] for event in store.read_journal(second_id)]
    assert second_events.count("run_submitted") == 1
    study_events = [event for event in StudyStore(settings.runs_dir).read_journal(study.id) if event["event"] == "member_finished"]
    assert [event["experiment_id"] for event in study_events] == [first_id, second_id]
    assert store.load(second_id).status == ExperimentStatus.SUCCEEDED


def _write_code_prompts(path, count=4):
    test = "def check(candidate):\n    assert candidate(2) == 3\n"
    rows = [{"prompt": [{"role": "user", "content": f"Write `inc(x)` that adds one. ({index})"}], "entry_point": "inc", "tests": [test]}
            for index in range(count)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_pipeline_sft_then_grpo(tmp_path, settings):
    model_dir = build_tiny_chat_model(tmp_path / "tiny-model")
    datasets = [str(write_code_rows(tmp_path / "sft.jsonl")), str(_write_code_prompts(tmp_path / "prompts.jsonl"))]
    goal = "improve code solving with SFT then GRPO"
    request = read_study_goal(goal, models=[str(model_dir)], datasets=datasets, methods=[])
    # A random tiny model never passes a test, so every group would tie at 0 and the adapter would not move; a
    # length reward varies within each group and gives the policy gradient a signal.
    length_file = tmp_path / "length_reward.py"
    length_file.write_text("def length(completions, **kwargs):\n    return [len(str(c)) / 100 for c in completions]\n")
    rewards = ["code_pass_fraction", "code_format", f"{length_file}:length"]
    study = _shrink(plan_study(goal, request, _tiny_overrides(model_dir, reward_functions=rewards), datasets=datasets, hub_reachable=False))
    grpo = study.members[1].plan.hyperparameters
    grpo.num_generations, grpo.max_completion_length, grpo.per_device_train_batch_size = 2, 8, 2
    grpo.learning_rate = 1e-2
    study, _ = open_study(study, settings)

    result = run_study(study, settings, echo=lambda line: None)

    assert result.state == "succeeded", result.failure
    store = ExperimentStore(settings.runs_dir)
    first, second = (store.load(member.experiment_id) for member in study.members)
    assert (first.plan.method, second.plan.method) == ("sft", "grpo")
    assert second.plan.reward_functions == rewards
    assert first.plan.reward_functions == []
    assert second.plan.base_model == str(settings.runs_dir / study.id / "models" / first.id)
    assert second.runs[0].metrics_summary["steps"] == 2
    assert second.runs[0].checkpoints[-1].scores[0].task_ids == first.baseline_scores[0].task_ids
    assert "| stage 2: GRPO (`" in result.report_path.read_text()


def test_dataset_comparison_scores_base_once(tmp_path, settings):
    model_dir = build_tiny_chat_model(tmp_path / "tiny-model")
    datasets = [str(write_code_rows(tmp_path / "small.jsonl", count=8)), str(write_code_rows(tmp_path / "large.jsonl"))]
    goal = "compare datasets for code solving"
    request = read_study_goal(goal, models=[str(model_dir)], datasets=datasets, methods=[])
    study = _shrink(plan_study(goal, request, _tiny_overrides(model_dir), datasets=datasets, hub_reachable=False))
    study, _ = open_study(study, settings)

    result = run_study(study, settings, echo=lambda line: None)

    assert result.state == "succeeded", result.failure
    store = ExperimentStore(settings.runs_dir)
    first, second = (store.load(member.experiment_id) for member in study.members)
    assert Stage.EVALUATE_BASE in first.completed_stages
    assert Stage.EVALUATE_BASE not in second.completed_stages
    assert second.baseline_scores == first.baseline_scores
    assert any(d.action == "carry over the base scores" and first.id in d.reason for d in second.decisions)
    assert "| small | humaneval pass@1 " in result.report_path.read_text()
