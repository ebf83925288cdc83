"""The standalone training script run through the local backend on a tiny real model."""

import json
import time
from pathlib import Path

import pytest

from autotrain_agent.backends.base import is_terminal
from autotrain_agent.backends.local import LocalBackend
from autotrain_agent.monitor_metrics import read_trackio_metrics
from autotrain_agent.testing import build_tiny_chat_model

TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "train.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny") / "model")


def write_chat_dataset(path, rows=16):
    with open(path, "w") as f:
        for i in range(rows):
            messages = [
                {"role": "user", "content": f"Write a function that adds {i}."},
                {"role": "assistant", "content": f"def add_{i}(x):\n    return x + {i}\n"},
            ]
            f.write(json.dumps({"messages": messages}) + "\n")
    return path


def run_training(tmp_path, tiny_model, **overrides):
    workdir = tmp_path / "run"
    workdir.mkdir()
    config = {
        "run_id": "run-1",
        "model_path": str(tiny_model),
        "dataset_path": str(write_chat_dataset(tmp_path / "train.jsonl")),
        "output_dir": str(workdir / "output"),
        "method": "sft",
        "max_steps": 4,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "linear",
        "warmup_ratio": 0.0,
        "max_length": 128,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": None},
        "logging_steps": 1,
        "save_steps": 2,
        "save_total_limit": None,
        "seed": 0,
        "trackio_project": "tests",
        "trackio_run_name": "run-1",
        "assistant_only_loss": True,
        "gradient_checkpointing": False,
        "use_cpu": None,
        **overrides,
    }
    config_path = workdir / "run_config.json"
    config_path.write_text(json.dumps(config))
    backend = LocalBackend(tmp_path / "jobs")

    started = time.monotonic()
    job_id = backend.submit_job(run_id="run-1", script=TRAIN_SCRIPT, config_path=config_path, workdir=workdir)
    deadline = started + 120
    while not is_terminal(backend.inspect_job(job_id).stage) and time.monotonic() < deadline:
        time.sleep(0.1)
    wall_s = time.monotonic() - started
    return backend, job_id, Path(config["output_dir"]), wall_s


def test_lora_sft_job_succeeds_with_artifacts(tmp_path, tiny_model):
    backend, job_id, output_dir, wall_s = run_training(tmp_path, tiny_model)

    status = backend.inspect_job(job_id)
    status_file = json.loads((output_dir / "status.json").read_text())
    progress = json.loads((output_dir / "progress.json").read_text())
    summary = json.loads((output_dir / "train_summary.json").read_text())
    print(f"4-step LoRA SFT through the local backend: {wall_s:.1f} s")

    assert status.stage == "succeeded", backend.fetch_job_logs(job_id, tail_lines=30)
    assert status.exit_code == 0
    assert (output_dir / "checkpoint-2").is_dir()
    assert (output_dir / "checkpoint-4").is_dir()
    assert (output_dir / "final" / "adapter_model.safetensors").is_file()
    assert (output_dir / "final" / "tokenizer.json").is_file()
    assert status_file["state"] == "succeeded"
    assert status_file["failure_kind"] is None
    assert status_file["finished_at"] is not None
    assert progress["step"] == 4
    assert progress["max_steps"] == 4
    assert progress["tokens_seen"] > 0
    assert summary["global_step"] == 4
    assert summary["final_loss"] is not None
    assert len((output_dir / "metrics.jsonl").read_text().splitlines()) >= 4


def test_trackio_metrics_readable_by_global_step(tmp_path, tiny_model):
    backend, job_id, output_dir, _ = run_training(tmp_path, tiny_model)

    metrics = read_trackio_metrics("tests", "run-1")

    assert backend.inspect_job(job_id).stage == "succeeded"
    assert [step for step, _ in metrics["train/loss"]] == [1, 2, 3, 4]
    assert read_trackio_metrics("tests", "run-1", after_step=2)["train/loss"][0][0] == 3


def test_full_fine_tune_saves_full_model(tmp_path, tiny_model):
    backend, job_id, output_dir, _ = run_training(tmp_path, tiny_model, lora=None, assistant_only_loss=False)

    status = backend.inspect_job(job_id)

    assert status.stage == "succeeded", backend.fetch_job_logs(job_id, tail_lines=30)
    assert (output_dir / "final" / "model.safetensors").is_file()
    assert not (output_dir / "final" / "adapter_config.json").exists()


def test_unsupported_method_fails_with_clear_error(tmp_path, tiny_model):
    backend, job_id, output_dir, _ = run_training(tmp_path, tiny_model, method="ppo")

    status = backend.inspect_job(job_id)

    assert status.stage == "failed"
    assert status.exit_code == 2
    assert "`method` 'ppo' is not supported" in status.message


def test_missing_model_fails_with_status_file(tmp_path, tiny_model):
    backend, job_id, output_dir, _ = run_training(tmp_path, tiny_model, model_path=str(tmp_path / "no-model"))

    status = backend.inspect_job(job_id)
    status_file = json.loads((output_dir / "status.json").read_text())

    assert status.stage == "failed"
    assert status.failure_kind == "crash"
    assert status_file["state"] == "failed"
    assert "no-model" in status_file["error"]


def load_train_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_script", TRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("error_factory", "expected"),
    [
        # torch's own out-of-memory error
        (lambda m: __import__("torch").OutOfMemoryError("CUDA out of memory"), "oom"),
        # a backend that reports OOM as a plain RuntimeError
        (lambda m: RuntimeError("DefaultCPUAllocator: can't allocate memory: out of memory"), "oom"),
        # the script's own stop on non-finite loss
        (lambda m: m.NonFiniteLossError("loss was non-finite"), "nan"),
        # SIGTERM from a cancel
        (lambda m: m.JobTerminated("received SIGTERM"), "killed"),
        # anything else
        (lambda m: ValueError("bad column"), "crash"),
    ],
)
def test_failure_kind_classification(error_factory, expected):
    train_script = load_train_script()

    assert train_script.classify_failure(error_factory(train_script)) == expected
