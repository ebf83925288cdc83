"""Fixtures for backend tests: the fake Jobs server and a real `HfApi` client pointed at it."""

import huggingface_hub.constants
import pytest
from fake_jobs_server import FakeJobsServer
from huggingface_hub import HfApi

from autotrain_agent.backends.hf_jobs import HfJobsBackend

FAKE_TOKEN = "hf_fakeTOKENforTESTSonly0123456789"


@pytest.fixture
def jobs_server(monkeypatch):
    # huggingface_hub's offline mode blocks every request, even to 127.0.0.1, so it is switched off here.
    monkeypatch.setattr(huggingface_hub.constants, "is_offline_mode", lambda: False)
    server = FakeJobsServer().start()
    yield server
    server.stop()


@pytest.fixture
def jobs_backend(jobs_server):
    api = HfApi(endpoint=jobs_server.endpoint, token=FAKE_TOKEN)
    return HfJobsBackend(experiment_id="exp-1", api=api, namespace="fake-user", retry_wait_s=0, gpu_counts={"a10g-largex2": 2})
