"""DPO and GRPO experiments through the whole loop on a tiny model: validation, real TRL training, evaluation."""

import json

import pytest

from autotrain_agent.config import Settings
from autotrain_agent.loop import open_experiment, run_experiment
from autotrain_agent.recipes import PlanOverrides, make_plan
from autotrain_agent.state import ExperimentStatus
from autotrain_agent.testing import build_tiny_chat_model

pytestmark = pytest.mark.slow


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def implicit_preference_rows(count=8):
    """Rows whose `chosen` and `rejected` conversations repeat the prompt: validation must make it explicit."""
    rows = []
    for i in range(count):
        question = {"role": "user", "content": f"Write `add_{i}(x)` that adds {i}."}
        rows.append({
            "chosen": [question, {"role": "assistant", "content": f"def add_{i}(x):\n    return x + {i}\n"}],
            "rejected": [question, {"role": "assistant", "content": "No."}],
        })
    return rows


def code_prompt_rows(count=4):
    test = "def check(candidate):\n    assert candidate(2) == 3\n"
    return [
        {"prompt": [{"role": "user", "content": f"Write `inc(x)` that adds one. ({i})"}], "entry_point": "inc", "tests": [test]}
        for i in range(count)
    ]


def run_tiny_experiment(tmp_path, goal, rows, **overrides):
    model_dir = build_tiny_chat_model(tmp_path / "tiny-model")
    dataset = write_rows(tmp_path / "rows.jsonl", rows)
    plan = make_plan(goal, PlanOverrides(model=str(model_dir), dataset=str(dataset), max_steps=2, eval_limit=1,
                                         eval_engine="transformers", **overrides))
    plan.benchmarks[0].max_new_tokens = 8
    plan.hyperparameters.max_length = 128
    plan.hyperparameters.learning_rate = 1e-2
    if plan.method == "grpo":
        plan.hyperparameters.num_generations = 2
        plan.hyperparameters.per_device_train_batch_size = 2
        plan.hyperparameters.max_completion_length = 8
    settings = Settings(output_dir=tmp_path / "work", cache_dir=tmp_path / "cache", progress=False, poll_interval_s=0.2)

    ctx, _ = open_experiment(plan, settings, echo=lambda line: None)
    with ctx.store.lock(ctx.experiment.id):
        result = run_experiment(ctx)
    return ctx, result


def test_dpo_experiment_runs_in_loop(tmp_path):
    ctx, result = run_tiny_experiment(tmp_path, "align code answers with DPO", implicit_preference_rows())

    assert result.state == "succeeded", result.failure
    run = ctx.experiment.runs[0]
    assert run.config["method"] == "dpo"
    assert run.config["beta"] == 0.1
    assert run.status == "succeeded"
    assert run.checkpoints[-1].scores
    report = result.report_path.read_text()
    assert "| DPO beta | 0.1 |" in report


def test_grpo_experiment_runs_in_loop(tmp_path):
    # A random tiny model never passes a test, so every group would tie at 0 and the adapter would not move;
    # a length reward varies within each group and gives the policy gradient a signal. It takes only
    # `completions`, so it also runs through the adapter's argument adaptation.
    length_file = tmp_path / "length_reward.py"
    length_file.write_text("def length(completions):\n    return [len(c) / 100 for c in completions]\n")
    rewards = ["code_pass_fraction", "code_format", f"{length_file}:length"]

    ctx, result = run_tiny_experiment(
        tmp_path, "improve code solving with GRPO", code_prompt_rows(), reward_functions=rewards,
        adapt_reward_functions=True,
    )

    assert result.state == "succeeded", result.failure
    run = ctx.experiment.runs[0]
    assert run.config["reward_functions"] == rewards
    assert run.status == "succeeded"
    assert run.checkpoints[-1].scores
    assert "| Reward functions | `code_pass_fraction`, `code_format`, " in result.report_path.read_text()
    decision = next(d for d in ctx.experiment.decisions if d.action == "adapt reward function length")
    assert "message text" in decision.reason
    assert "completion_ids" in decision.reason


def test_broken_reward_stops_before_submission(tmp_path):
    reward_file = tmp_path / "fixed_signature.py"
    reward_file.write_text(
        "def reward(prompts, completions):\n    return [1.0 if c.strip() == '4' else 0.0 for c in completions]\n"
    )

    ctx, result = run_tiny_experiment(
        tmp_path, "improve code solving with GRPO", code_prompt_rows(), reward_functions=[f"{reward_file}:reward"]
    )

    assert ctx.experiment.status == ExperimentStatus.FAILED
    assert "'reward'" in result.failure
    assert "unexpected keyword argument" in result.failure
    assert all(run.job_id is None for run in ctx.experiment.runs)


def test_grpo_with_tied_rewards_explains_unchanged_adapter(tmp_path):
    reward_file = tmp_path / "constant_reward.py"
    reward_file.write_text("def constant(completions, **kwargs):\n    return [0.0] * len(completions)\n")

    ctx, result = run_tiny_experiment(
        tmp_path, "improve code solving with GRPO", code_prompt_rows(), reward_functions=[f"{reward_file}:constant"]
    )

    assert ctx.experiment.status == ExperimentStatus.FAILED
    assert "GRPO got no gradient" in result.failure
    assert "`frac_reward_zero_std` = 1" in result.failure
