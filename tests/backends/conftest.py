"""Fixtures for backend tests: the fake Jobs and Hub servers and real `HfApi` clients pointed at them."""

import huggingface_hub.constants
import pytest
from fake_hub_server import FakeHub
from fake_jobs_server import FakeJobsServer
from huggingface_hub import HfApi

from autotrain_agent.backends.hf_jobs import HfJobsBackend
from autotrain_agent.config import Settings
from autotrain_agent.loop import ApprovalLimits, open_experiment
from autotrain_agent.recipes import PlanOverrides, make_plan
from autotrain_agent.state import Stage

FAKE_TOKEN = "hf_fakeTOKENforTESTSonly0123456789"


@pytest.fixture
def jobs_server(monkeypatch):
    # huggingface_hub's offline mode blocks every request, even to 127.0.0.1, so it is switched off here.
    monkeypatch.setattr(huggingface_hub.constants, "is_offline_mode", lambda: False)
    server = FakeJobsServer().start()
    yield server
    server.stop()


@pytest.fixture
def hub_server(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "is_offline_mode", lambda: False)
    with FakeHub() as hub:
        yield hub


@pytest.fixture
def jobs_backend(jobs_server, hub_server):
    api = HfApi(endpoint=jobs_server.endpoint, token=FAKE_TOKEN)
    hub_api = HfApi(endpoint=hub_server.endpoint, token=FAKE_TOKEN)
    return HfJobsBackend(
        experiment_id="exp-1", api=api, hub_api=hub_api, namespace="fake-user", retry_wait_s=0, gpu_counts={"a10g-largex2": 2}
    )


@pytest.fixture
def paid_ctx(tmp_path, jobs_backend):
    plan = make_plan("improve code solving", PlanOverrides(model="Qwen/Qwen3-0.6B", backend="hf-jobs", hub_repo="me/qwen3-code-sft"))
    plan.num_parameters, plan.parameter_source = 600_000_000, "--params"
    plan.stages = [Stage.PLAN, Stage.VALIDATE, Stage.EVALUATE_BASE, Stage.TRAIN, Stage.REPORT]
    settings = Settings(output_dir=tmp_path / "out", cache_dir=tmp_path / "cache", poll_interval_s=0.01, progress=False)
    ctx, _ = open_experiment(plan, settings, backend=jobs_backend, limits=ApprovalLimits(budget_usd=5.0), echo=lambda line: None)
    dataset = tmp_path / "rows.jsonl"
    dataset.write_text('{"messages": []}\n' * 500)
    ctx.experiment.dataset_path = str(dataset)
    ctx.experiment.completed_stages += [Stage.PLAN, Stage.VALIDATE, Stage.EVALUATE_BASE]
    return ctx
