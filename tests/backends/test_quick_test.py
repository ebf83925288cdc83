"""The quick test run before a paid full run, through the real client against the fake Jobs and Hub servers."""

import json

import pytest
from fake_jobs_server import JobBehavior

from autotrain_agent import quick_test
from autotrain_agent.approval import CallbackApprover
from autotrain_agent.errors import ApprovalRejectedError, QuickTestFailedError
from autotrain_agent.estimate import estimate_job
from autotrain_agent.hardware import load_price_table
from autotrain_agent.quick_test import SUMMARY_LOG_PREFIX, load_measurement, read_tokens_per_s
from autotrain_agent.tools.submit import submit_run

SUMMARY = {"train_runtime": 10.0, "tokens_seen": 20_000, "global_step": 5, "final_loss": 1.2}
PASSING = JobBehavior(stages=["RUNNING", "COMPLETED"], logs=["step 1 loss 2.0", SUMMARY_LOG_PREFIX + json.dumps(SUMMARY)])


@pytest.fixture
def quick_ctx(paid_ctx):
    paid_ctx.experiment.plan.quick_test_samples = 100
    paid_ctx.approver = CallbackApprover(lambda request: True)
    return paid_ctx


def created_run_ids(jobs_server):
    return [job.spec["labels"]["autotrain-run"] for job in jobs_server.jobs.values()]


def test_quick_test_precedes_full_run(quick_ctx, jobs_server):
    jobs_server.next_behavior = PASSING

    submit_run(quick_ctx)

    assert created_run_ids(jobs_server) == ["run-1-quick-test", "run-1"]
    quick_config = json.loads(jobs_server.jobs["job0001"].spec["environment"]["AUTOTRAIN_RUN_CONFIG"])
    assert quick_config["max_steps"] == 5
    assert quick_config["hub_repo"] is None
    assert [record.run_id for record in quick_ctx.experiment.approvals] == ["run-1-quick-test", "run-1"]
    assert all(record.approved for record in quick_ctx.experiment.approvals)


def test_quick_test_uploads_sample_rows(quick_ctx, jobs_server, hub_server):
    jobs_server.next_behavior = PASSING

    submit_run(quick_ctx)

    files = hub_server.files("me/qwen3-code-sft-data")
    assert files["run-1-quick-test/rows.jsonl"].count(b"\n") == 100
    assert files["run-1/rows.jsonl"].count(b"\n") == 500


def test_full_estimate_uses_measured_speed(quick_ctx, jobs_server):
    jobs_server.next_behavior = PASSING

    submit_run(quick_ctx)

    request = quick_ctx.experiment.approvals[-1].request
    plan = quick_ctx.experiment.plan
    flavor = load_price_table(cache_dir=quick_ctx.settings.cache_dir).flavor(request["flavor"])
    expected = estimate_job(plan, flavor, num_parameters=plan.num_parameters, num_rows=500, tokens_per_s=2000.0)
    assert load_measurement(quick_ctx).tokens_per_s == 2000.0
    assert request["estimated_minutes"] == expected.minutes
    assert "quick test run-1-quick-test passed" in request["notes"][0]
    assert "2000 tokens/s" in request["notes"][0]


def test_failed_quick_test_blocks_full_run(quick_ctx, jobs_server):
    jobs_server.next_behavior = JobBehavior(stages=["RUNNING", "ERROR"], final_message="CUDA out of memory")

    with pytest.raises(QuickTestFailedError, match="CUDA out of memory"):
        submit_run(quick_ctx)

    assert created_run_ids(jobs_server) == ["run-1-quick-test"]
    assert quick_ctx.experiment.runs[0].status == "pending"
    assert quick_ctx.experiment.decisions[-1].action == "quick test run-1-quick-test failed"


def test_failed_quick_test_retried_as_new_job(quick_ctx, jobs_server):
    jobs_server.next_behavior = JobBehavior(stages=["ERROR"], final_message="crashed")
    with pytest.raises(QuickTestFailedError):
        submit_run(quick_ctx)
    jobs_server.next_behavior = PASSING

    submit_run(quick_ctx)

    assert created_run_ids(jobs_server) == ["run-1-quick-test", "run-1-quick-test-2", "run-1"]


def test_rejected_quick_test_submits_nothing(quick_ctx, jobs_server):
    quick_ctx.approver = CallbackApprover(lambda request: False)

    with pytest.raises(ApprovalRejectedError, match="run-1-quick-test"):
        submit_run(quick_ctx)

    assert jobs_server.count("create") == 0
    assert quick_ctx.experiment.approvals[-1].approved is False


def test_passed_quick_test_not_repeated(quick_ctx, jobs_server):
    jobs_server.next_behavior = PASSING
    submit_run(quick_ctx)
    quick_ctx.experiment.runs[0].status = "failed"

    submit_run(quick_ctx)

    assert created_run_ids(jobs_server) == ["run-1-quick-test", "run-1", "run-2"]


def test_quick_test_cost_counts_as_spent(quick_ctx, jobs_server):
    jobs_server.next_behavior = PASSING

    submit_run(quick_ctx)

    measurement = load_measurement(quick_ctx)
    assert quick_ctx.experiment.spent_usd == measurement.cost_usd
    assert json.loads(jobs_server.jobs["job0001"].spec["environment"]["AUTOTRAIN_RUN_CONFIG"])["flavor"] == measurement.flavor


def test_plan_without_quick_test_submits_full_run_only(paid_ctx, jobs_server):
    paid_ctx.approver = CallbackApprover(lambda request: True)

    submit_run(paid_ctx)

    assert created_run_ids(jobs_server) == ["run-1"]


@pytest.mark.parametrize(
    ("logs", "expected"),
    [
        ([SUMMARY_LOG_PREFIX + json.dumps(SUMMARY)], 2000.0),
        (["2026-01-01 INFO train: " + SUMMARY_LOG_PREFIX + json.dumps(SUMMARY)], 2000.0),  # with the log prefix
        ([SUMMARY_LOG_PREFIX + json.dumps({"train_runtime": 0.0, "tokens_seen": 10})], None),  # no time measured
        (["step 1 loss 2.0"], None),  # the job ended before its summary
    ],
)
def test_speed_read_from_summary_line(logs, expected):
    assert read_tokens_per_s("\n".join(logs)) == expected


@pytest.mark.slow  # trains a tiny model for 5 steps in a subprocess: about 25 s on 2 cores
def test_small_local_model_tested_on_this_machine(quick_ctx, jobs_server, tmp_path):
    from autotrain_agent.testing import build_tiny_chat_model, write_code_rows

    model_dir = build_tiny_chat_model(tmp_path / "tiny-model")
    rows = write_code_rows(tmp_path / "code-rows.jsonl", count=16)
    quick_ctx.experiment.model_path = str(model_dir)
    quick_ctx.experiment.dataset_path = str(rows)
    quick_ctx.experiment.plan.num_parameters = 100_000

    submit_run(quick_ctx)

    measurement = load_measurement(quick_ctx)
    assert measurement.backend == "local"
    assert measurement.succeeded
    assert measurement.tokens_per_s > 0
    assert created_run_ids(jobs_server) == ["run-1"]
    assert [record.run_id for record in quick_ctx.experiment.approvals] == ["run-1"]


def test_started_quick_test_reattached_without_approval(quick_ctx, jobs_server):
    jobs_server.next_behavior = JobBehavior(stages=["RUNNING", "COMPLETED"])

    def stop_while_waiting(ctx, backend, job_id, *, timeout_s):
        raise KeyboardInterrupt  # the agent stops while the quick test runs

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(quick_test, "_wait_for_job", stop_while_waiting)
        with pytest.raises(KeyboardInterrupt):
            submit_run(quick_ctx)
    approvals = len(quick_ctx.experiment.approvals)

    submit_run(quick_ctx)

    assert created_run_ids(jobs_server) == ["run-1-quick-test", "run-1"]
    assert [record.run_id for record in quick_ctx.experiment.approvals[approvals:]] == ["run-1"]
    assert load_measurement(quick_ctx).job_id == "job0001"
