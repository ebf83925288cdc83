"""The standalone evaluation job script, run as a subprocess on a tiny real model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autotrain_agent.testing import build_tiny_chat_model

EVALUATE_SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "evaluate.py"

pytestmark = pytest.mark.slow


def run_script(config_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, str(EVALUATE_SCRIPT), "--config", str(config_path)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_script_writes_score_and_status(tmp_path):
    model_dir = build_tiny_chat_model(tmp_path / "model")
    config = {"label": "tiny", "model_path": str(model_dir), "output_dir": str(tmp_path / "out"), "limit": 2,
              "max_new_tokens": 4, "cache_dir": str(tmp_path / "cache")}
    (tmp_path / "config.json").write_text(json.dumps(config))

    completed = run_script(tmp_path / "config.json")

    assert completed.returncode == 0, completed.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "tiny-humaneval.json").read_text())
    assert summary["num_problems"] == 2
    assert summary["harness"] == "autotrain_agent.evaluation.sandbox"
    assert json.loads((tmp_path / "out" / "status.json").read_text())["state"] == "succeeded"
    assert len((tmp_path / "out" / "tiny-humaneval.jsonl").read_text().splitlines()) == 2


def test_script_rejects_adapter_without_base(tmp_path):
    adapter_dir = tmp_path / "adapter"
    adapter_dir.mkdir()
    (adapter_dir / "adapter_config.json").write_text("{}")
    config = {"label": "a", "model_path": str(adapter_dir), "output_dir": str(tmp_path / "out")}
    (tmp_path / "config.json").write_text(json.dumps(config))

    completed = run_script(tmp_path / "config.json")

    assert completed.returncode == 2
    assert "set `base_model_path`" in completed.stderr
