"""The `monitor_run` tool applies policy rules to a job's live metrics and survives a broken tracker."""

import json
import logging
import sqlite3
import sys
import urllib.error

import pytest
from trackio_streams import log_series, trackio_writes_to_test_dir  # noqa: F401 - pytest fixture

from autotrain_agent.backends.base import JobStatus
from autotrain_agent.config import Settings
from autotrain_agent.context import ExperimentContext
from autotrain_agent.monitor_metrics import MetricsCursor
from autotrain_agent.planner import choose_next_call
from autotrain_agent.recipes import make_plan
from autotrain_agent.report import render_report
from autotrain_agent.state import Experiment, ExperimentStatus, Run, Stage
from autotrain_agent.store import ExperimentStore
from autotrain_agent.tools.monitor import monitor_run
from autotrain_agent.tools.submit import submit_run

pytestmark = pytest.mark.usefixtures("trackio_writes_to_test_dir")


class ScriptedBackend:
    """A backend whose job reports the scripted stages in order, then stays at the last one."""

    name = "local"
    is_free = True  # free like the local backend, so the approval gate lets its jobs through

    def __init__(self, stages, *, failure_kind=None, message=None):
        self.stages = list(stages)
        self.failure_kind = failure_kind
        self.message = message
        self.cancelled: list[str] = []
        self.submitted: list[str] = []

    def submit_job(self, *, run_id, script, config_path, workdir, env=None):
        self.submitted.append(run_id)
        return f"job-{run_id}"

    def inspect_job(self, job_id):
        if self.cancelled:
            return JobStatus(job_id=job_id, stage="cancelled", message="cancelled")
        stage = self.stages.pop(0) if len(self.stages) > 1 else self.stages[0]
        failure = self.failure_kind if stage == "failed" else None
        return JobStatus(job_id=job_id, stage=stage, failure_kind=failure, message=self.message if failure else None)

    def fetch_job_logs(self, job_id, *, tail_lines=None):
        return "last log line"

    def cancel_job(self, job_id):
        self.cancelled.append(job_id)

    def find_jobs(self, *, run_id):
        return []


def make_ctx(tmp_path, backend, *, batch_size=2):
    plan = make_plan("improve code solving")
    plan.hyperparameters.per_device_train_batch_size = batch_size
    experiment = Experiment(id="exp", goal="improve code solving", plan=plan)
    experiment.completed_stages = [Stage.PLAN, Stage.VALIDATE, Stage.EVALUATE_BASE]
    experiment.dataset_path = str(tmp_path / "rows.jsonl")
    ctx = ExperimentContext(
        experiment=experiment,
        store=ExperimentStore(tmp_path / "training_runs"),
        settings=Settings(output_dir=tmp_path, poll_interval_s=0.001),
        backend=backend,
        echo=lambda line: None,
    )
    submit_run(ctx)
    return ctx


def write_local_copy(run: Run, losses):
    with open(f"{run.output_dir}/metrics.jsonl", "w") as out:
        out.writelines(json.dumps({"step": step, "loss": loss}) + "\n" for step, loss in losses)


DIVERGING = [(1, 2.0), (2, 1.5), (3, 1.0), (4, 2.5), (5, 4.0)]


def test_divergence_cancels_job_and_stores_verdict(tmp_path):
    backend = ScriptedBackend(["running", "running", "running"])
    ctx = make_ctx(tmp_path, backend)
    run = ctx.experiment.latest_run
    log_series("exp", ctx.experiment.run("run-1").trackio_run, {"train/loss": DIVERGING})

    monitor_run(ctx, "run-1")

    assert backend.cancelled == ["job-run-1"]
    assert run.status == "cancelled"
    assert run.verdict.rule == "resubmit-on-divergence"
    assert run.verdict.evidence["divergence_ratio(metric=loss, min_steps=3) at_least 3.0"] == pytest.approx(4.0)
    decision = ctx.experiment.decisions[-1]
    assert decision.by == "policy"
    assert decision.evidence["rule"] == "resubmit-on-divergence"
    assert Stage.TRAIN not in ctx.experiment.completed_stages


def test_resubmission_lowers_learning_rate_once(tmp_path):
    backend = ScriptedBackend(["running", "running"])
    ctx = make_ctx(tmp_path, backend)
    log_series("exp", ctx.experiment.run("run-1").trackio_run, {"train/loss": DIVERGING})
    monitor_run(ctx, "run-1")

    call = choose_next_call(ctx)
    submit_run(ctx)
    submit_run(ctx)

    assert call.tool == "submit_run"
    assert "resubmit-on-divergence" in call.reason
    first, second = ctx.experiment.runs
    assert second.config["learning_rate"] == pytest.approx(first.config["learning_rate"] * 0.1)
    assert second.parent_run_id == "run-1"
    assert first.verdict.applied
    assert backend.submitted == ["run-1", "run-2"]


def test_saved_verdict_cancels_without_deciding_again(tmp_path):
    backend = ScriptedBackend(["running"])
    ctx = make_ctx(tmp_path, backend)
    log_series("exp", ctx.experiment.run("run-1").trackio_run, {"train/loss": DIVERGING})
    monitor_run(ctx, "run-1")
    run = ctx.experiment.latest_run
    run.status = "running"
    decisions = len(ctx.experiment.decisions)

    monitor_run(ctx, "run-1")

    assert [d for d in ctx.experiment.decisions[decisions:] if d.by == "policy"] == []
    assert run.status == "cancelled"


def test_training_oom_resubmits_with_half_batch(tmp_path):
    backend = ScriptedBackend(["running", "failed"], failure_kind="oom", message="CUDA out of memory in forward")
    ctx = make_ctx(tmp_path, backend, batch_size=4)

    monitor_run(ctx, "run-1")
    submit_run(ctx)

    first, second = ctx.experiment.runs
    assert first.verdict.rule == "halve-batch-on-oom"
    assert second.config["per_device_train_batch_size"] == 2
    assert second.config["gradient_accumulation_steps"] == first.config["gradient_accumulation_steps"] * 2


def test_policy_stop_ends_experiment_as_stopped(tmp_path):
    backend = ScriptedBackend(["running", "running"])
    ctx = make_ctx(tmp_path, backend)
    ctx.experiment.plan.max_runs = 1
    log_series("exp", ctx.experiment.run("run-1").trackio_run, {"train/loss": DIVERGING})

    monitor_run(ctx, "run-1")
    call = choose_next_call(ctx)

    assert ctx.experiment.latest_run.verdict.rule == "stop-on-divergence"
    assert call.tool == "final_answer"
    assert ctx.experiment.status == ExperimentStatus.STOPPED
    assert "stop-on-divergence" in ctx.experiment.failure
    assert "no retry is left" in ctx.experiment.failure


def test_report_lists_verdict_with_numbers(tmp_path):
    backend = ScriptedBackend(["running", "running"])
    ctx = make_ctx(tmp_path, backend)
    log_series("exp", ctx.experiment.run("run-1").trackio_run, {"train/loss": DIVERGING})
    monitor_run(ctx, "run-1")
    submit_run(ctx)

    report = render_report(ctx.experiment)

    assert "## Policy Verdicts" in report
    assert "| run-1 | resubmit-on-divergence | running, 5 | resubmit learning_rate_factor=0.1 |" in report
    assert "divergence_ratio(metric=loss, min_steps=3) at_least 3.0 = 4.0" in report
    assert "run-2: learning_rate" in report


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.DatabaseError("database disk image is malformed"),  # a broken local store
        urllib.error.HTTPError("http://127.0.0.1/space", 429, "Too Many Requests", {}, None),  # a rate-limited Space
    ],
)
def test_broken_tracker_degrades_but_run_goes_on(tmp_path, monkeypatch, caplog, error):
    def broken_read(self, **kwargs):
        raise error

    monkeypatch.setattr(MetricsCursor, "read_new", broken_read)
    backend = ScriptedBackend(["running", "running", "succeeded"])
    ctx = make_ctx(tmp_path, backend)
    run = ctx.experiment.latest_run
    write_local_copy(run, [(step, 2.0 - 0.01 * step) for step in range(1, 21)])

    with caplog.at_level(logging.WARNING):
        monitor_run(ctx, "run-1")

    assert run.status == "succeeded"
    assert run.metrics_summary["steps"] == 20
    assert ctx.experiment.metrics_degraded
    assert any("metrics degraded" in warning for warning in ctx.experiment.warnings)
    assert "Trackio could not be read" in caplog.text
    assert "**Metrics degraded:**" in render_report(ctx.experiment)


def test_tracker_gap_is_reported(tmp_path):
    backend = ScriptedBackend(["running", "succeeded"])
    ctx = make_ctx(tmp_path, backend)
    run = ctx.experiment.latest_run
    losses = [(step, 2.0 - 0.01 * step) for step in range(1, 21)]
    write_local_copy(run, losses)
    log_series("exp", ctx.experiment.run("run-1").trackio_run, {"train/loss": losses[:15]})

    monitor_run(ctx, "run-1")

    assert ctx.experiment.metrics_degraded
    assert any("Trackio holds 15 of the 20 loss points" in warning for warning in ctx.experiment.warnings)


def test_follow_up_beyond_max_runs_stops(tmp_path):
    backend = ScriptedBackend(["running", "failed"], failure_kind="oom", message="out of memory")
    ctx = make_ctx(tmp_path, backend, batch_size=4)
    monitor_run(ctx, "run-1")
    ctx.experiment.plan.max_runs = 1

    call = choose_next_call(ctx)

    assert call.tool == "final_answer"
    assert ctx.experiment.status == ExperimentStatus.STOPPED


def test_notification_command_receives_event(tmp_path):
    backend = ScriptedBackend(["running", "running"])
    ctx = make_ctx(tmp_path, backend)
    ctx.experiment.plan.max_runs = 1
    received = tmp_path / "event.json"
    ctx.settings.notify_command = f"{sys.executable} -c \"import sys; open({str(received)!r}, 'w').write(sys.stdin.read())\""
    log_series("exp", ctx.experiment.run("run-1").trackio_run, {"train/loss": DIVERGING})

    monitor_run(ctx, "run-1")

    event = json.loads(received.read_text())
    assert event["experiment"] == "exp"
    assert event["event"] == "policy_stop"
    assert "stop-on-divergence" in event["summary"]
    assert event["report"].endswith("exp.md")


def test_failing_notification_is_logged_not_raised(tmp_path, caplog):
    backend = ScriptedBackend(["running", "failed"], failure_kind="crash", message="boom")
    ctx = make_ctx(tmp_path, backend)
    ctx.settings.notify_command = f"{sys.executable} -c \"raise SystemExit(3)\""
    ctx.settings.notify_url = "http://127.0.0.1:9/unreachable"

    with caplog.at_level(logging.WARNING):
        summary = monitor_run(ctx, "run-1")

    assert "crash" in summary
    assert "exited with 3" in caplog.text
    assert "notification POST for run_failed failed" in caplog.text


def log_through_callbacks(run: Run, steps: int):
    """Log `steps` training steps the way the job does: to Trackio and through the job's progress callback."""
    import importlib.util
    from pathlib import Path
    from types import SimpleNamespace

    import trackio

    script = Path(__file__).resolve().parents[2] / "tools" / "train.py"
    spec = importlib.util.spec_from_file_location("train_script_for_monitor", script)
    train_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_script)
    progress = train_script.ProgressCallback(Path(run.output_dir), max_nonfinite_losses=3)
    trackio.init(project=run.trackio_project, name=run.trackio_run, auto_log_cpu=False, auto_log_gpu=False)
    for step in range(1, steps + 1):
        logs = {"loss": 2.0 - 0.01 * step}
        trackio.log({"train/loss": logs["loss"], "train/global_step": step})
        state = SimpleNamespace(global_step=step, max_steps=steps, epoch=step / steps, num_input_tokens_seen=step * 100)
        progress.on_log(None, state, SimpleNamespace(should_training_stop=False), logs=logs)
    trackio.finish()


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.DatabaseError("database disk image is malformed"),  # a broken local store
        urllib.error.HTTPError("http://127.0.0.1/space", 429, "Too Many Requests", {}, None),  # a rate-limited Space
    ],
)
def test_failed_tracker_writes_keep_local_copy(tmp_path, monkeypatch, error):
    from trackio.sqlite_storage import SQLiteStorage

    def broken_write(*args, **kwargs):
        raise error

    monkeypatch.setattr(SQLiteStorage, "bulk_log", broken_write)
    backend = ScriptedBackend(["running", "succeeded"])
    ctx = make_ctx(tmp_path, backend)
    run = ctx.experiment.latest_run

    with pytest.warns(UserWarning, match="could not be persisted"):
        log_through_callbacks(run, 20)
    monitor_run(ctx, "run-1")

    assert run.status == "succeeded"
    assert len((tmp_path / "training_runs" / "exp" / "run-1" / "metrics.jsonl").read_text().splitlines()) == 20
    assert run.metrics_summary["steps"] == 20
    assert any("Trackio holds 0 of the 20 loss points" in warning for warning in ctx.experiment.warnings)
    assert "**Metrics degraded:**" in render_report(ctx.experiment)


def finished_run_with_rule(tmp_path, action):
    backend = ScriptedBackend(["succeeded"])
    ctx = make_ctx(tmp_path, backend)
    rules = tmp_path / "result-rule.yaml"
    rules.write_text(json.dumps({"rules": [{"name": "act-on-result", "phase": "end", "when": [{"signal": "step", "at_least": 0}], "action": action}]}))
    ctx.experiment.policy_files = [str(rules)]
    run = ctx.experiment.latest_run
    for name in ("checkpoint-2", "checkpoint-4", "final"):
        (tmp_path / "training_runs" / "exp" / "run-1" / name).mkdir(parents=True)
    monitor_run(ctx, "run-1")
    return ctx, run


def test_export_verdict_adds_export_stage(tmp_path):
    ctx, run = finished_run_with_rule(tmp_path, "export")

    assert run.verdict.action == "export"
    assert run.verdict.applied
    assert Stage.EXPORT in ctx.experiment.plan.stages
    assert Stage.TRAIN in ctx.experiment.completed_stages


def test_pick_best_verdict_scores_every_checkpoint(tmp_path):
    from autotrain_agent.tools.evaluate import _checkpoints_to_score

    ctx, run = finished_run_with_rule(tmp_path, {"type": "pick_best_checkpoint", "metric": "pass@1"})

    scored = _checkpoints_to_score(ctx, run)
    assert ctx.experiment.plan.checkpoints_to_evaluate == "all"
    assert [checkpoint.step for checkpoint in scored] == [2, 4]  # checkpoint-4 is the final one
    assert scored[-1] is run.checkpoints[-1]


def test_evaluate_checkpoint_verdict_adds_that_step(tmp_path):
    from autotrain_agent.tools.evaluate import _checkpoints_to_score

    ctx, run = finished_run_with_rule(tmp_path, {"type": "evaluate_checkpoint", "step": 2})

    scored = _checkpoints_to_score(ctx, run)
    assert [checkpoint.step for checkpoint in scored] == [2, 4]
    assert scored[-1] is run.checkpoints[-1]
    assert ctx.experiment.warnings == []


def test_evaluate_missing_checkpoint_warns(tmp_path):
    ctx, run = finished_run_with_rule(tmp_path, {"type": "evaluate_checkpoint", "step": 3})

    assert "step 3" in ctx.experiment.warnings[-1]
    assert run.verdict.applied
