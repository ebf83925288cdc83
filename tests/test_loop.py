"""The whole loop on a tiny model: real TRL training, real Trackio, the real HumanEval harness."""

import json

import pytest

from autotrain_agent.config import Settings
from autotrain_agent.loop import open_experiment, run_experiment
from autotrain_agent.recipes import PlanOverrides, make_plan
from autotrain_agent.state import ExperimentStatus, Stage
from autotrain_agent.testing import build_tiny_chat_model

pytestmark = pytest.mark.slow

FUNCTIONS = [
    ("add(a, b)", "Return the sum of a and b.", "def add(a, b):\n    return a + b"),
    ("is_even(n)", "Return True when n is even.", "def is_even(n):\n    return n % 2 == 0"),
    ("reverse(text)", "Return text reversed.", "def reverse(text):\n    return text[::-1]"),
    ("largest(items)", "Return the largest item.", "def largest(items):\n    return max(items)"),
]


def _write_rows(path, count=16):
    with open(path, "w") as out:
        for index in range(count):
            signature, doc, code = FUNCTIONS[index % len(FUNCTIONS)]
            messages = [
                {"role": "user", "content": f"Write a Python function `{signature}`. {doc}"},
                {"role": "assistant", "content": f"```python\n{code}\n```"},
            ]
            out.write(json.dumps({"messages": messages}) + "\n")
    return path


@pytest.fixture
def tiny_setup(tmp_path):
    model_dir = build_tiny_chat_model(tmp_path / "tiny-model")
    rows = _write_rows(tmp_path / "rows.jsonl")
    overrides = PlanOverrides(model=str(model_dir), dataset=str(rows), max_steps=3, eval_limit=2, eval_engine="transformers")
    plan = make_plan("improve code solving with SFT", overrides)
    plan.benchmarks[0].max_new_tokens = 16
    plan.hyperparameters.max_length = 128
    settings = Settings(output_dir=tmp_path / "work", cache_dir=tmp_path / "cache", progress=False, poll_interval_s=0.2)
    return plan, settings


def test_loop_runs_every_stage(tiny_setup):
    plan, settings = tiny_setup
    lines = []

    ctx, resumed = open_experiment(plan, settings, echo=lines.append)
    with ctx.store.lock(ctx.experiment.id):
        result = run_experiment(ctx)

    assert not resumed
    assert result.state == "succeeded", result.failure
    experiment = ctx.experiment
    assert experiment.completed_stages == experiment.plan.stages
    assert Stage.EXPORT not in experiment.completed_stages
    assert experiment.baseline_scores[0].num_samples == 2
    run = experiment.runs[0]
    assert run.status == "succeeded"
    assert run.metrics_summary["steps"] == 3
    assert run.checkpoints[-1].scores[0].task_ids == experiment.baseline_scores[0].task_ids
    report = result.report_path.read_text()
    assert "## Base Model & Dataset" in report
    assert "- **Validation:** ready for SFT" in report
    assert "rows kept: 16 of 16 checked (0 dropped)" in report
    assert f"## {run.title} - " in report and " - succeeded" in report
    assert "| Base model | humaneval pass@1 |" in report
    assert any("trackio show --project" in line for line in lines)


def test_rerun_does_not_redo_finished_stages(tiny_setup):
    plan, settings = tiny_setup
    ctx, _ = open_experiment(plan, settings, echo=lambda line: None)
    with ctx.store.lock(ctx.experiment.id):
        run_experiment(ctx)
    events_before = len(ctx.store.read_journal(ctx.experiment.id))

    again, resumed = open_experiment(plan, settings, echo=lambda line: None)
    with again.store.lock(again.experiment.id):
        result = run_experiment(again)

    assert resumed
    assert result.state == "succeeded"
    assert len(again.experiment.runs) == 1
    new_events = [e["event"] for e in again.store.read_journal(again.experiment.id)[events_before:]]
    assert "run_submitted" not in new_events
    assert "stage_completed" not in new_events
    assert again.experiment.status == ExperimentStatus.SUCCEEDED


def test_loop_scores_every_checkpoint_and_picks_best(tiny_setup):
    plan, settings = tiny_setup
    plan.hyperparameters.max_steps = 4
    plan.hyperparameters.save_steps = 2
    plan.hyperparameters.warmup_ratio = 0.0
    plan.checkpoints_to_evaluate = "all"

    ctx, _ = open_experiment(plan, settings, echo=lambda line: None)
    with ctx.store.lock(ctx.experiment.id):
        result = run_experiment(ctx)

    assert result.state == "succeeded", result.failure
    run = ctx.experiment.runs[0]
    assert [(c.step, bool(c.scores)) for c in run.checkpoints] == [(2, True), (4, False), (4, True)]
    assert run.best_checkpoint_path in {run.checkpoints[0].path, run.checkpoints[-1].path}
    selections = [d for d in ctx.experiment.decisions if d.action.startswith("select run-1 checkpoint")]
    assert len(selections) == 1
    assert set(selections[0].evidence["scores"]) == {"step 2", "step 4 (final)"}
