"""DPO and GRPO through the standalone training script, run by the local backend on a tiny real model."""

import json
import time
from pathlib import Path

import pytest

from autotrain_agent.backends.base import is_terminal
from autotrain_agent.backends.local import LocalBackend
from autotrain_agent.monitor_metrics import read_trackio_metrics
from autotrain_agent.policy import Observation, parse_policy
from autotrain_agent.testing import build_tiny_chat_model

TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "train.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny") / "model")


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def preference_rows(count=8):
    return [
        {
            "prompt": [{"role": "user", "content": f"Add {i} to x."}],
            "chosen": [{"role": "assistant", "content": f"def add(x):\n    return x + {i}\n"}],
            "rejected": [{"role": "assistant", "content": "I do not know."}],
        }
        for i in range(count)
    ]


def code_prompt_rows(count=4):
    test = "def check(candidate):\n    assert candidate(2) == 3\n"
    return [
        {"prompt": [{"role": "user", "content": f"Write `inc(x)` that adds one. ({i})"}], "entry_point": "inc", "tests": [test]}
        for i in range(count)
    ]


def run_job(tmp_path, tiny_model, rows, **overrides):
    workdir = tmp_path / "run"
    workdir.mkdir(parents=True)
    config = {
        "run_id": "run-1",
        "model_path": str(tiny_model),
        "dataset_path": str(write_rows(tmp_path / "train.jsonl", rows)),
        "output_dir": str(workdir / "output"),
        "max_steps": 4,
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-3,
        "max_length": 128,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": None},
        "save_steps": 4,
        "trackio_project": "tests",
        "trackio_run_name": "run-1",
        **overrides,
    }
    config_path = workdir / "run_config.json"
    config_path.write_text(json.dumps(config))
    backend = LocalBackend(tmp_path / "jobs")

    job_id = backend.submit_job(run_id="run-1", script=TRAIN_SCRIPT, config_path=config_path, workdir=workdir)
    deadline = time.monotonic() + 120
    while not is_terminal(backend.inspect_job(job_id).stage) and time.monotonic() < deadline:
        time.sleep(0.1)
    output_dir = Path(config["output_dir"])
    return backend.inspect_job(job_id), output_dir, (workdir / "train.log")


def job_log(workdir_log):
    return workdir_log.read_text() if workdir_log.is_file() else ""


def test_lora_dpo_job_logs_preference_metrics(tmp_path, tiny_model):
    status, output_dir, log = run_job(tmp_path, tiny_model, preference_rows(), method="dpo", beta=0.1)

    assert status.stage == "succeeded", job_log(log)[-3000:]
    assert (output_dir / "final" / "adapter_config.json").is_file()
    metrics = read_trackio_metrics("tests", "run-1")
    assert [step for step, _ in metrics["train/rewards/margins"]] == [1, 2, 3, 4]
    assert len(metrics["train/rewards/accuracies"]) == 4
    # The shipped DPO rules name `rewards/margins`; a rule on the real series must see TRL's logged values.
    rule = {"rules": [{"name": "sees-dpo-metrics", "phase": "running", "action": "stop", "when": [
        {"signal": "method", "equals": "dpo"}, {"signal": "last", "metric": "rewards/accuracies", "at_least": 0},
        {"signal": "last", "metric": "rewards/margins", "above": -1e9}]}]}
    verdict = parse_policy(rule).evaluate(Observation(metrics=metrics, phase="running", step=4, method="dpo"))
    assert verdict is not None
    assert verdict.rule == "sees-dpo-metrics"


def test_lora_grpo_job_scores_code_in_sandbox(tmp_path, tiny_model):
    rewards = ["code_pass_fraction", "code_format"]

    status, output_dir, log = run_job(
        tmp_path, tiny_model, code_prompt_rows(), method="grpo", reward_functions=rewards,
        num_generations=2, max_completion_length=16, per_device_train_batch_size=2,
    )

    assert status.stage == "succeeded", job_log(log)[-3000:]
    assert (output_dir / "final" / "adapter_config.json").is_file()
    logged = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in logged if "rewards/code_pass_fraction/mean" in row]
    assert len(steps) == 4
    assert all(0.0 <= row["rewards/code_pass_fraction/mean"] <= 1.0 for row in steps)


def test_grpo_job_fails_on_wrong_reward_count(tmp_path, tiny_model):
    reward_file = tmp_path / "bad_reward.py"
    reward_file.write_text("def one_value(completions, **kwargs):\n    return [1.0]\n")

    status, output_dir, log = run_job(
        tmp_path, tiny_model, code_prompt_rows(), method="grpo", reward_functions=[f"{reward_file}:one_value"],
        num_generations=2, max_completion_length=8, per_device_train_batch_size=2,
    )

    assert status.stage == "failed"
    error = json.loads((output_dir / "status.json").read_text())["error"]
    assert "RewardFunctionError" in error
    assert "'one_value'" in error


def test_dpo_continues_saved_adapter(tmp_path, tiny_model):
    first, first_output, _ = run_job(tmp_path / "first", tiny_model, preference_rows(), method="dpo", max_steps=2)
    assert first.stage == "succeeded"

    second, second_output, log = run_job(
        tmp_path / "second", tiny_model, preference_rows(), method="dpo", max_steps=2,
        init_adapter_path=str(first_output / "final"),
    )

    assert second.stage == "succeeded", job_log(log)[-3000:]
    summary = json.loads((second_output / "train_summary.json").read_text())
    assert summary["global_step"] == 2
