"""Unattended runs on a tiny model: a diverging run is retried, and the agent survives kill -9 anywhere."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autotrain_agent.config import Settings
from autotrain_agent.loop import open_experiment, run_experiment
from autotrain_agent.recipes import PlanOverrides, make_plan
from autotrain_agent.state import ExperimentStatus, Stage
from autotrain_agent.testing import build_tiny_chat_model

pytestmark = pytest.mark.slow

RUNNER = Path(__file__).with_name("agent_crash_runner.py")


def write_rows(path, count=16):
    with open(path, "w") as out:
        for index in range(count):
            messages = [
                {"role": "user", "content": f"Write a Python function `add_{index}(a, b)`. Return the sum of a and b."},
                {"role": "assistant", "content": f"```python\ndef add_{index}(a, b):\n    return a + b\n```"},
            ]
            out.write(json.dumps({"messages": messages}) + "\n")
    return path


def tiny_plan(tmp_path, *, max_steps, stages):
    model_dir = build_tiny_chat_model(tmp_path / "tiny-model")
    rows = write_rows(tmp_path / "rows.jsonl")
    overrides = PlanOverrides(model=str(model_dir), dataset=str(rows), max_steps=max_steps, eval_limit=1, eval_engine="transformers")
    plan = make_plan("improve code solving with SFT", overrides)
    plan.benchmarks[0].max_new_tokens = 8
    plan.hyperparameters.max_length = 96
    plan.hyperparameters.save_steps = 100
    plan.stages = stages
    return plan


def test_diverging_run_is_stopped_and_retried_lower(tmp_path):
    plan = tiny_plan(tmp_path, max_steps=12, stages=[Stage.PLAN, Stage.VALIDATE, Stage.TRAIN, Stage.REPORT])
    # Adam with a learning rate of 10 moves every weight of a full fine-tune by about 10 per step, so the logits and
    # the loss blow up within a few steps. LoRA at such rates collapses to a flat loss instead of diverging.
    plan.lora = None
    plan.hyperparameters.learning_rate = 10.0
    plan.hyperparameters.warmup_ratio = 0.0
    plan.max_runs = 2
    settings = Settings(output_dir=tmp_path / "work", cache_dir=tmp_path / "cache", progress=False, poll_interval_s=0.2)
    ctx, _ = open_experiment(plan, settings, echo=lambda line: None)

    with ctx.store.lock(ctx.experiment.id):
        run_experiment(ctx)

    first, second = ctx.experiment.runs[:2]
    assert first.verdict is not None
    assert first.verdict.action == "resubmit"
    assert first.status == "cancelled"
    assert first.verdict.rule in ("resubmit-on-divergence", "resubmit-on-nonfinite-loss")
    assert second.parent_run_id == first.run_id
    assert second.config["learning_rate"] == pytest.approx(1.0)
    assert second.job_id is not None
    policy_decisions = [d for d in ctx.experiment.decisions if d.by == "policy"]
    assert policy_decisions[0].evidence["rule"] == first.verdict.rule


KILL_POINTS = [
    "evaluation",  # while scoring the base model
    "before:run_created",  # the first run is about to be saved
    "submit",  # the job started, the state does not know its id yet
    "after:run_monitoring",  # the job runs detached while no agent watches it
    "before:decision:policy",  # the job ended; the end verdict is not saved yet
    "after:decision:policy",  # the extend verdict is saved; the follow-up run is not created
    "after:run_created",  # the follow-up run is saved as pending, not submitted
    "submit",  # the follow-up job started, the state does not know its id yet
    "before:run_succeeded",  # the follow-up job ended; its outcome is not saved yet
    "evaluation",  # while scoring the extended run
    "before:stage_completed",  # the run is scored; the stage is not marked done
]


def test_agent_killed_anywhere_resumes_without_double_submission(tmp_path):
    stages = [Stage.PLAN, Stage.VALIDATE, Stage.EVALUATE_BASE, Stage.TRAIN, Stage.EVALUATE_RUN, Stage.REPORT]
    plan = tiny_plan(tmp_path, max_steps=3, stages=stages)
    policy = tmp_path / "extend-once.yaml"
    policy.write_text(
        "rules:\n"
        "  - name: extend-once\n"
        "    phase: end\n"
        "    when: [{signal: job_state, equals: succeeded}]\n"
        "    action: {type: extend, steps: 2}\n"
        "    max_times: 1\n"
    )
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "plan": plan.model_dump(mode="json"),
        "output_dir": str(tmp_path / "work"),
        "cache_dir": str(tmp_path / "cache"),
        "policy_files": [str(policy)],
    }))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}

    exit_codes = []
    for point in [*KILL_POINTS, "none"]:
        completed = subprocess.run([sys.executable, str(RUNNER), str(spec), point], env=env, capture_output=True, text=True, timeout=120, check=False)
        exit_codes.append(completed.returncode)
    settings = Settings(output_dir=tmp_path / "work", cache_dir=tmp_path / "cache", progress=False)
    ctx, _ = open_experiment(plan, settings, echo=lambda line: None)

    assert exit_codes == [-9] * len(KILL_POINTS) + [0], completed.stderr[-2000:]
    experiment = ctx.experiment
    assert experiment.status == ExperimentStatus.SUCCEEDED, experiment.failure
    assert [run.status for run in experiment.runs] == ["succeeded", "succeeded"]
    assert experiment.runs[1].config["max_steps"] == 2
    job_records = list((ctx.folder / "jobs").glob("*.json"))
    assert len(job_records) == len(experiment.runs)
    assert experiment.runs[1].checkpoints[-1].scores
