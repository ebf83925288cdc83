"""`autotrain-agent serve` on a real GGUF file: llama.cpp's OpenAI-compatible server on 127.0.0.1 answers."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from autotrain_agent.gguf_convert import convert_hf_to_gguf
from autotrain_agent.state import GgufFile
from autotrain_agent.store import ExperimentStore

_CLI = "import sys; from autotrain_agent.cli import main; sys.exit(main())"
_START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request_completion(port: int, server: subprocess.Popen) -> dict:
    """Post a completion request until the server answers; fail if it exits or stays silent."""
    body = json.dumps({"prompt": "def add(a, b):", "max_tokens": 4, "temperature": 0.0}).encode()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited with status {server.returncode}: {server.stdout.read()[-2000:]}")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    pytest.fail(f"the server did not answer on port {port} within {_START_TIMEOUT_S:g} s")


@pytest.mark.slow
def test_serve_answers_an_openai_completion_on_loopback(tiny_llama_dir, converter_cache, exported_experiment,
                                                        tmp_path):
    gguf = convert_hf_to_gguf(tiny_llama_dir, tmp_path / "tiny-f16.gguf", cache_dir=converter_cache)
    exported_experiment.export.files = [
        GgufFile(path=str(gguf), quant_type="F16", size_bytes=gguf.stat().st_size, bits_per_weight=16.0)
    ]
    ExperimentStore(tmp_path / "training_runs").save(exported_experiment, event="created", details={})
    port = free_port()

    server = subprocess.Popen(
        [sys.executable, "-c", _CLI, "serve", "exp", "--port", str(port), "--output-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        completion = request_completion(port, server)
    finally:
        os.kill(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
            server.wait()

    assert completion["object"] == "text_completion"
    assert completion["usage"]["completion_tokens"] > 0
    assert completion["model"].endswith("tiny-f16.gguf")
    assert "127.0.0.1" in server.stdout.read()
