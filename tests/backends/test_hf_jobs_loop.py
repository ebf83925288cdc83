"""The experiment loop on the Hugging Face Jobs backend, against the fake Jobs server.

The fake server simulates each job's stages instead of running the training script: a real run would need a GPU
image and minutes of CPU per test, and `tools/train.py` has its own tests. So these runs end with no checkpoints,
and the loop stops after training; the report still has every section, with the job links.
"""

import logging

from conftest import FAKE_TOKEN
from fake_jobs_server import JobBehavior

from autotrain_agent.approval import CallbackApprover
from autotrain_agent.loop import run_experiment
from autotrain_agent.state import Stage


def all_written_text(root) -> str:
    return "\n".join(path.read_text(errors="replace") for path in root.rglob("*") if path.is_file())


def test_approved_run_succeeds_with_job_links(paid_ctx, jobs_server, tmp_path):
    paid_ctx.approver = CallbackApprover(lambda request: True)
    jobs_server.next_behavior = JobBehavior(stages=["SCHEDULING", "RUNNING", "RUNNING", "COMPLETED"])

    result = run_experiment(paid_ctx, max_steps=6)

    run = paid_ctx.experiment.runs[0]
    report = result.report_path.read_text()
    assert result.state == "succeeded"
    assert run.status == "succeeded"
    assert run.job_url == f"{jobs_server.endpoint}/jobs/fake-user/{run.job_id}"
    assert f"[`{run.job_id}`]({run.job_url})" in report
    for section in ("## Base Model & Dataset", "## Plan", "### Run Status", "### Trackio Logs", "## Experiment Evaluations", "## Approvals", "## Decisions"):
        assert section in report
    assert "| approved | callback | l4x1 |" in report
    assert "bundled snapshot" in report


def test_job_with_early_log_end_fails_run(paid_ctx, jobs_server):
    paid_ctx.approver = CallbackApprover(lambda request: True)
    jobs_server.next_behavior = JobBehavior(stages=["RUNNING", "RUNNING", "RUNNING", "ERROR"], final_message="CUDA out of memory")

    run_experiment(paid_ctx, max_steps=4)

    run = paid_ctx.experiment.runs[0]
    assert run.status == "failed"
    assert run.failure.message == "CUDA out of memory"
    assert Stage.TRAIN not in paid_ctx.experiment.completed_stages


def test_rejected_run_submits_nothing(paid_ctx, jobs_server):
    paid_ctx.approver = CallbackApprover(lambda request: False)

    result = run_experiment(paid_ctx, max_steps=4)

    assert result.state == "needs_approval"
    assert jobs_server.count("create") == 0
    assert "| rejected | callback |" in result.report_path.read_text()


def test_token_reaches_no_file_or_log(paid_ctx, jobs_server, tmp_path, caplog):
    paid_ctx.approver = CallbackApprover(lambda request: True)
    jobs_server.next_behavior = JobBehavior(stages=["RUNNING", "ERROR"], final_message="crashed")
    jobs_server.add_fault("inspect", 500, "reset")

    with caplog.at_level(logging.DEBUG):
        run_experiment(paid_ctx, max_steps=6)

    assert jobs_server.received_secrets == [{"HF_TOKEN": FAKE_TOKEN}]
    assert FAKE_TOKEN not in all_written_text(tmp_path)
    assert FAKE_TOKEN not in caplog.text
    assert FAKE_TOKEN not in (paid_ctx.experiment.failure or "")


def test_job_without_timeout_cancelled_and_recorded(paid_ctx, jobs_server):
    paid_ctx.approver = CallbackApprover(lambda request: len(paid_ctx.experiment.runs) == 1)
    jobs_server.next_behavior = JobBehavior(keep_timeout=False)  # the server's 30-minute default would apply

    run_experiment(paid_ctx, max_steps=4)

    first = paid_ctx.experiment.runs[0]
    assert jobs_server.jobs["job0001"].cancelled
    assert first.status == "cancelled"
    assert "timeout None s instead of" in first.failure.message
    assert jobs_server.count("create") == 1
