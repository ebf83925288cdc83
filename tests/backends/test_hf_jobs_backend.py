"""The Hugging Face Jobs backend through the real huggingface_hub client, against the fake Jobs server."""

import json

import pytest
from conftest import FAKE_TOKEN

from autotrain_agent.backends.base import JobBackend
from autotrain_agent.backends.hf_jobs import BOOTSTRAP, CONFIG_ENV, RUN_LABEL, SCRIPT_ENV
from autotrain_agent.errors import BackendError, JobMismatchError, JobsRequestError
from fake_jobs_server import JobBehavior

SCRIPT = """# /// script
# dependencies = ["trl>=1.16,<2"]
# ///
print("training")
"""


@pytest.fixture
def job_files(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    config = tmp_path / "run_config.json"
    config.write_text(json.dumps({"run_id": "run-1", "model_path": "/local/model", "base_model": "Qwen/Qwen3-0.6B",
                                  "dataset_path": str(tmp_path / "rows.jsonl"), "flavor": "a10g-large", "timeout": "90m"}))
    return script, config


def submit(backend, job_files, run_id="run-1"):
    script, config = job_files
    return backend.submit_job(run_id=run_id, script=script, config_path=config, workdir=config.parent)


def test_backend_follows_protocol(jobs_backend):
    assert isinstance(jobs_backend, JobBackend)


def test_submit_sends_uv_job_spec(jobs_backend, jobs_server, job_files):
    job_id = submit(jobs_backend, job_files)

    spec = jobs_server.jobs[job_id].spec
    assert spec["flavor"] == "a10g-large"
    assert spec["timeoutSeconds"] == 90 * 60
    assert spec["command"][:2] == ["uv", "run"]
    assert ["--with", "trl>=1.16,<2"] == spec["command"][2:4]
    assert spec["command"][-3:] == ["python", "-c", BOOTSTRAP]
    assert spec["labels"]["autotrain-experiment"] == "exp-1"
    assert spec["labels"][RUN_LABEL] == "run-1"
    assert json.loads(spec["environment"][CONFIG_ENV])["model_path"] == "Qwen/Qwen3-0.6B"
    assert SCRIPT_ENV in spec["environment"]


def test_token_sent_only_as_named_secret(jobs_backend, jobs_server, job_files):
    job_id = submit(jobs_backend, job_files)

    assert jobs_server.received_secrets == [{"HF_TOKEN": FAKE_TOKEN}]
    assert FAKE_TOKEN not in json.dumps(jobs_server.jobs[job_id].spec["environment"])


def test_multi_gpu_flavor_adds_accelerate(jobs_backend, jobs_server, job_files):
    script, config = job_files
    config.write_text(json.dumps({**json.loads(config.read_text()), "flavor": "a10g-largex2"}))

    job_id = submit(jobs_backend, job_files)

    spec = jobs_server.jobs[job_id].spec
    assert "accelerate" in spec["command"]
    assert spec["environment"]["AUTOTRAIN_NUM_GPUS"] == "2"
    assert "accelerate','launch'" in BOOTSTRAP


def test_missing_timeout_is_cancelled(jobs_backend, jobs_server, job_files):
    jobs_server.next_behavior = JobBehavior(keep_timeout=False)

    with pytest.raises(JobMismatchError, match="timeout None s instead of 5400 s"):
        submit(jobs_backend, job_files)

    assert jobs_server.jobs["job0001"].cancelled
    assert jobs_server.count("cancel") == 1


def test_changed_flavor_is_cancelled(jobs_backend, jobs_server, job_files):
    jobs_server.next_behavior = JobBehavior(flavor_override="t4-small")

    with pytest.raises(JobMismatchError, match="flavor 't4-small' instead of 'a10g-large'"):
        submit(jobs_backend, job_files)

    assert jobs_server.jobs["job0001"].cancelled


def test_status_comes_from_terminal_stage(jobs_backend, jobs_server, job_files):
    jobs_server.next_behavior = JobBehavior(stages=["SCHEDULING", "RUNNING", "RUNNING", "ERROR"], final_message="CUDA error")
    job_id = submit(jobs_backend, job_files)  # the creation check consumes the SCHEDULING inspection

    logs = jobs_backend.fetch_job_logs(job_id)
    while_running = jobs_backend.inspect_job(job_id)
    jobs_backend.inspect_job(job_id)
    final = jobs_backend.inspect_job(job_id)

    assert logs == "step 1 loss 2.0\nstep 2 loss 1.5"  # the stream ended while the job still runs
    assert while_running.stage == "running"
    assert final.stage == "failed"
    assert final.failure_kind == "crash"
    assert final.message == "CUDA error"


@pytest.mark.parametrize(
    ("behavior", "stage", "kind"),
    [
        (JobBehavior(stages=["RUNNING", "COMPLETED"]), "succeeded", None),
        (JobBehavior(stages=["RUNNING", "CANCELED"]), "cancelled", None),
        (JobBehavior(stages=["RUNNING", "COMPLETED"], run_s=6000), "failed", "timeout"),  # over its 90 min timeout
    ],
)
def test_terminal_stages_map(jobs_backend, jobs_server, job_files, behavior, stage, kind):
    jobs_server.next_behavior = behavior
    job_id = submit(jobs_backend, job_files)

    status = jobs_backend.inspect_job(job_id)

    assert status.stage == stage
    assert status.failure_kind == kind


def test_cancel_ends_job(jobs_backend, jobs_server, job_files):
    job_id = submit(jobs_backend, job_files)

    jobs_backend.cancel_job(job_id)

    assert jobs_backend.inspect_job(job_id).stage == "cancelled"


def test_find_jobs_by_run_label(jobs_backend, jobs_server, job_files):
    first = submit(jobs_backend, job_files)
    submit(jobs_backend, job_files, run_id="run-2")

    assert jobs_backend.find_jobs(run_id="run-1") == [first]
    assert jobs_backend.find_jobs(run_id="run-3") == []


@pytest.mark.parametrize(
    "fault",
    [
        429,  # rate limited
        500,  # server error
        503,  # unavailable
        "reset",  # connection reset without a response
        ("slow", 0.2),  # a slow response is waited for
    ],
)
def test_transient_faults_are_retried(jobs_backend, jobs_server, job_files, fault, caplog):
    job_id = submit(jobs_backend, job_files)
    jobs_server.add_fault("inspect", fault)

    status = jobs_backend.inspect_job(job_id)

    assert status.stage == "running"
    assert jobs_server.count("inspect") == (2 if fault != ("slow", 0.2) else 1) + 1


def test_retries_give_up_after_max_attempts(jobs_backend, jobs_server, job_files):
    job_id = submit(jobs_backend, job_files)
    jobs_server.add_fault("inspect", *[500] * 5)

    with pytest.raises(BackendError, match="HTTP 500 after every retry"):
        jobs_backend.inspect_job(job_id)

    assert jobs_server.count("inspect") == 1 + 5


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "hf auth login"),  # bad token
        (402, "billing"),  # no credits
        (403, "job.write"),  # no permission
        (422, "flavor, timeout"),  # invalid spec
    ],
)
def test_permanent_errors_not_retried(jobs_backend, jobs_server, job_files, status, hint):
    jobs_server.add_fault("create", status)

    with pytest.raises(JobsRequestError, match=hint) as raised:
        submit(jobs_backend, job_files)

    assert jobs_server.count("create") == 1
    assert FAKE_TOKEN not in str(raised.value)


def test_retry_is_logged_without_token(jobs_backend, jobs_server, job_files, caplog):
    job_id = submit(jobs_backend, job_files)
    jobs_server.add_fault("inspect", 429)

    with caplog.at_level("DEBUG"):
        jobs_backend.inspect_job(job_id)

    assert any("Retrying" in record.getMessage() for record in caplog.records)
    assert FAKE_TOKEN not in caplog.text


def test_submitted_script_pushes_checkpoints(jobs_backend, jobs_server, tmp_path):
    import base64
    import importlib.util

    from autotrain_agent._resources import resource_dir

    script = resource_dir("tools") / "train.py"
    config = tmp_path / "run_config.json"
    config.write_text(json.dumps({"run_id": "run-1", "model_path": "m", "dataset_path": "d.jsonl", "flavor": "l4x1", "timeout": "15m", "hub_repo": "me/out"}))
    job_id = jobs_backend.submit_job(run_id="run-1", script=script, config_path=config, workdir=tmp_path)
    environment = jobs_server.jobs[job_id].spec["environment"]
    shipped = tmp_path / "shipped_train.py"
    shipped.write_bytes(base64.b64decode(environment[SCRIPT_ENV]))
    spec = importlib.util.spec_from_file_location("shipped_train", shipped)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    arguments = module.hub_push_arguments(json.loads(environment[CONFIG_ENV])["hub_repo"])

    assert arguments["push_to_hub"] is True
    assert arguments["hub_model_id"] == "me/out"
    assert arguments["hub_strategy"] == "every_save"  # each checkpoint leaves the job's disk as it is saved
    assert "**hub_push_arguments(config[\"hub_repo\"])" in shipped.read_text()


def load_shipped_script(environment, tmp_path):
    import base64
    import importlib.util

    shipped = tmp_path / "shipped_train.py"
    shipped.write_bytes(base64.b64decode(environment[SCRIPT_ENV]))
    spec = importlib.util.spec_from_file_location("shipped_train", shipped)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_rows_config(tmp_path, **overrides):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    config = tmp_path / "run_config.json"
    values = {"run_id": "run-1", "model_path": "m", "dataset_path": str(rows), "flavor": "l4x1", "timeout": "15m", "hub_repo": "me/out"}
    config.write_text(json.dumps({**values, **overrides}))
    return rows, config


def test_submit_uploads_dataset_to_private_repo(jobs_backend, jobs_server, hub_server, tmp_path):
    from autotrain_agent._resources import resource_dir

    rows, config = write_rows_config(tmp_path)

    job_id = jobs_backend.submit_job(run_id="run-1", script=resource_dir("tools") / "train.py", config_path=config, workdir=tmp_path)

    remote = json.loads(jobs_server.jobs[job_id].spec["environment"][CONFIG_ENV])
    assert hub_server.created == ["me/out-data"]
    assert hub_server.create_requests[0]["type"] == "dataset"
    assert hub_server.create_requests[0]["visibility"] == "private"
    assert hub_server.files("me/out-data") == {"run-1/rows.jsonl": rows.read_bytes()}
    assert remote["dataset_repo"] == "me/out-data"
    assert remote["dataset_path"] == "run-1/rows.jsonl"


def test_job_script_downloads_uploaded_dataset(jobs_backend, jobs_server, hub_server, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from autotrain_agent._resources import resource_dir

    rows, config = write_rows_config(tmp_path)
    job_id = jobs_backend.submit_job(run_id="run-1", script=resource_dir("tools") / "train.py", config_path=config, workdir=tmp_path)
    environment = jobs_server.jobs[job_id].spec["environment"]
    module = load_shipped_script(environment, tmp_path)
    # The job reads HF_ENDPOINT when huggingface_hub is imported; here the URL template it builds is patched instead.
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub_server.endpoint)
    monkeypatch.setattr(huggingface_hub.constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub_server.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    remote = tmp_path / "remote_config.json"
    remote.write_text(environment[CONFIG_ENV])

    downloaded = module.fetch_dataset_file(module.load_run_config(remote))

    assert open(downloaded, "rb").read() == rows.read_bytes()


def test_local_dataset_without_repo_is_rejected(jobs_backend, jobs_server, tmp_path):
    _, config = write_rows_config(tmp_path, hub_repo=None)

    with pytest.raises(BackendError, match="--hub-repo"):
        jobs_backend.submit_job(run_id="run-1", script=job_files_script(tmp_path), config_path=config, workdir=tmp_path)

    assert jobs_server.count("create") == 0


def job_files_script(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    return script
