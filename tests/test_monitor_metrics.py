"""Reading Trackio metrics back by step, and following a job to its end."""

import json
import logging
import sqlite3

import pytest
from trackio import SQLiteStorage
from trackio_streams import log_rows, trackio_writes_to_test_dir  # noqa: F401 - pytest fixture

from autotrain_agent.backends.base import JobStatus
from autotrain_agent.errors import IncompleteMetricsError
from autotrain_agent.monitor_metrics import follow_job, read_trackio_metrics

pytestmark = pytest.mark.usefixtures("trackio_writes_to_test_dir")


def test_explicit_steps_are_kept():
    log_rows("proj", "run", [({"eval/loss": 2.0}, 0), ({"eval/loss": 1.5}, 50), ({"eval/loss": 1.2}, 100)])

    metrics = read_trackio_metrics("proj", "run")

    assert metrics["eval/loss"] == [(0, 2.0), (50, 1.5), (100, 1.2)]


def test_trainer_global_step_replaces_row_number():
    rows = [({"train/loss": 3.0 - i, "train/global_step": i * 50}, None) for i in range(3)]
    log_rows("proj", "run", rows)

    metrics = read_trackio_metrics("proj", "run")

    assert metrics["train/loss"] == [(0, 3.0), (50, 2.0), (100, 1.0)]
    assert "train/global_step" not in metrics


def test_shuffled_writes_read_in_step_order():
    log_rows("proj", "run", [({"eval/loss": 1.2}, 100), ({"eval/loss": 2.0}, 0), ({"eval/loss": 1.5}, 50)])

    metrics = read_trackio_metrics("proj", "run")

    assert [step for step, _ in metrics["eval/loss"]] == [0, 50, 100]


def test_after_step_returns_only_newer_points():
    log_rows("proj", "run", [({"train/loss": float(10 - step)}, step) for step in range(1, 6)])
    first = read_trackio_metrics("proj", "run")
    log_rows("proj", "run", [({"train/loss": float(10 - step)}, step) for step in range(6, 9)])

    newer = read_trackio_metrics("proj", "run", after_step=first["train/loss"][-1][0])

    assert [step for step, _ in first["train/loss"]] == [1, 2, 3, 4, 5]
    assert newer == {"train/loss": [(6, 4.0), (7, 3.0), (8, 2.0)]}


def test_sparse_eval_series_complete_next_to_dense_ones():
    rows = []
    for step in range(1, 801):
        dense = {f"train/metric_{i}": step * 0.001 + i for i in range(9)}
        rows.append(({**dense, "train/global_step": step}, None))
        if step % 10 == 0:
            rows.append(({"eval/loss": 1.0 / step, "train/global_step": step}, None))
    log_rows("proj", "run", rows)

    metrics = read_trackio_metrics("proj", "run")

    assert len(metrics["eval/loss"]) == 80
    assert metrics["eval/loss"][-1] == (800, 1.0 / 800)
    assert all(len(metrics[f"train/metric_{i}"]) == 800 for i in range(9))


def test_partial_store_read_raises_incomplete(monkeypatch):
    log_rows("proj", "run", [({"eval/loss": 1.0 / step}, step) for step in range(10, 810, 10)])
    full_get_logs = SQLiteStorage.get_logs
    monkeypatch.setattr(SQLiteStorage, "get_logs", lambda *args, **kwargs: full_get_logs(*args, **kwargs)[:70])

    with pytest.raises(IncompleteMetricsError, match="70 of the 80 rows"):
        read_trackio_metrics("proj", "run")


def test_unreadable_store_warns_and_returns_empty(monkeypatch, caplog):
    def broken_get_logs(*args, **kwargs):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(SQLiteStorage, "get_logs", broken_get_logs)

    with caplog.at_level(logging.WARNING, logger="autotrain_agent.monitor_metrics"):
        metrics = read_trackio_metrics("proj", "run")

    assert metrics == {}
    assert "malformed" in caplog.text


def test_missing_project_returns_empty():
    assert read_trackio_metrics("no-such-project", "run") == {}


class ScriptedBackend:
    """Returns the given stages in order, and writes a progress file for each poll."""

    name = "scripted"

    def __init__(self, stages, progress_path):
        self.stages = list(stages)
        self.progress_path = progress_path
        self.polls = 0

    def inspect_job(self, job_id):
        stage = self.stages[min(self.polls, len(self.stages) - 1)]
        self.polls += 1
        progress = {"step": self.polls, "max_steps": len(self.stages), "loss": 1.0 / self.polls, "eta_s": 1.0}
        self.progress_path.write_text(json.dumps(progress))
        return JobStatus(job_id=job_id, stage=stage, exit_code=None, failure_kind=None, message=None)


def test_follow_job_returns_terminal_status(tmp_path):
    progress_path = tmp_path / "progress.json"
    backend = ScriptedBackend(["pending", "running", "running", "failed"], progress_path)
    sleeps = []

    status = follow_job(backend, "job-1", progress_path=progress_path, poll_interval_s=5.0, sleep=sleeps.append)

    assert status.stage == "failed"
    assert backend.polls == 4
    assert sleeps == [5.0, 5.0, 5.0]


def test_follow_job_tolerates_missing_progress(tmp_path):
    class DoneBackend:
        name = "done"

        def inspect_job(self, job_id):
            return JobStatus(job_id=job_id, stage="succeeded", exit_code=0, failure_kind=None, message=None)

    status = follow_job(DoneBackend(), "job-1", progress_path=tmp_path / "absent.json", sleep=lambda s: None)

    assert status.stage == "succeeded"
