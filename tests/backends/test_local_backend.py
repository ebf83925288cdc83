"""The local backend on real detached processes: submit, inspect, logs, cancel and re-attach."""

import json
import os
import textwrap
import time

import pytest

from autotrain_agent.backends.base import JobBackend, is_terminal
from autotrain_agent.backends.local import LocalBackend, read_process_start_ticks
from autotrain_agent.errors import BackendError

# A job script that follows the status.json contract of tools/train.py. Its config's `mode` picks the behaviour.
JOB_SCRIPT = textwrap.dedent(
    """
    import argparse, json, os, subprocess, sys, time
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    config = json.load(open(parser.parse_args().config))
    out = config["output_dir"]
    os.makedirs(out, exist_ok=True)
    def write_status(state, **fields):
        json.dump({"run_id": config["run_id"], "state": state, "pid": os.getpid(), **fields}, open(out + "/status.json", "w"))
    print("job started", flush=True)
    mode = config["mode"]
    if mode == "succeed":
        write_status("succeeded", exit_reason="done")
    elif mode == "hang":
        write_status("running")
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open(out + "/child.pid", "w").write(str(child.pid))
        time.sleep(60)
    elif mode == "vanish":
        write_status("running")
    elif mode == "crash":
        raise SystemExit("config value out of range")
    """
)


@pytest.fixture
def backend(tmp_path):
    return LocalBackend(tmp_path / "jobs", cancel_grace_s=5.0)


def submit(backend, tmp_path, mode, run_id="run-1"):
    script = tmp_path / "job.py"
    script.write_text(JOB_SCRIPT)
    workdir = tmp_path / run_id
    workdir.mkdir(exist_ok=True)
    config_path = workdir / "run_config.json"
    config_path.write_text(json.dumps({"run_id": run_id, "output_dir": "out", "mode": mode}))
    return backend.submit_job(run_id=run_id, script=script, config_path=config_path, workdir=workdir)


def wait_until(predicate, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def wait_for_end(backend, job_id):
    wait_until(lambda: is_terminal(backend.inspect_job(job_id).stage))
    return backend.inspect_job(job_id)


def is_pid_running(pid):
    return read_process_start_ticks(pid) is not None and "Z" not in open(f"/proc/{pid}/stat").read().split(")")[-1][:3]


def test_local_backend_matches_protocol(backend):
    assert isinstance(backend, JobBackend)


def test_succeeding_job_reports_succeeded_and_logs(backend, tmp_path):
    job_id = submit(backend, tmp_path, "succeed")

    status = wait_for_end(backend, job_id)

    assert status.stage == "succeeded"
    assert status.exit_code == 0
    assert status.message == "done"
    assert "job started" in backend.fetch_job_logs(job_id)
    assert (tmp_path / "run-1" / "job.json").is_file()


def test_running_job_reports_running(backend, tmp_path):
    job_id = submit(backend, tmp_path, "hang")

    status = backend.inspect_job(job_id)
    backend.cancel_job(job_id)

    assert status.stage == "running"


def test_cancel_kills_process_group(backend, tmp_path):
    job_id = submit(backend, tmp_path, "hang")
    child_pid_file = tmp_path / "run-1" / "out" / "child.pid"
    wait_until(lambda: child_pid_file.is_file() and child_pid_file.read_text())
    child_pid = int(child_pid_file.read_text())

    backend.cancel_job(job_id)

    assert backend.inspect_job(job_id).stage == "cancelled"
    wait_until(lambda: not is_pid_running(child_pid), timeout_s=5.0)


def test_cancel_of_finished_job_keeps_its_stage(backend, tmp_path):
    job_id = submit(backend, tmp_path, "succeed")
    wait_for_end(backend, job_id)

    backend.cancel_job(job_id)

    assert backend.inspect_job(job_id).stage == "succeeded"


def test_crash_without_status_is_failed_with_last_log_line(backend, tmp_path):
    job_id = submit(backend, tmp_path, "crash")

    status = wait_for_end(backend, job_id)

    assert status.stage == "failed"
    assert status.failure_kind == "crash"
    assert status.exit_code == 1
    assert "config value out of range" in status.message


def test_exit_with_running_status_is_failed_killed(backend, tmp_path):
    job_id = submit(backend, tmp_path, "vanish")

    status = wait_for_end(backend, job_id)

    assert status.stage == "failed"
    assert status.failure_kind == "killed"


def test_new_backend_reattaches_through_find_jobs(backend, tmp_path):
    first = submit(backend, tmp_path, "succeed", run_id="run-a")
    wait_for_end(backend, first)
    second = submit(backend, tmp_path, "hang", run_id="run-a")
    submit(backend, tmp_path, "succeed", run_id="run-b")
    restarted = LocalBackend(tmp_path / "jobs")

    job_ids = restarted.find_jobs(run_id="run-a")
    status = restarted.inspect_job(second)
    restarted.cancel_job(second)

    assert job_ids == [first, second]
    assert status.stage == "running"
    assert restarted.inspect_job(second).stage == "cancelled"


def test_reused_pid_not_taken_for_job(backend, tmp_path):
    # A record whose pid now belongs to another live process (this one) with another start time.
    job_id = submit(backend, tmp_path, "succeed")
    wait_for_end(backend, job_id)
    record_path = tmp_path / "jobs" / f"{job_id}.json"
    record = json.loads(record_path.read_text())
    record.update(pid=os.getpid(), start_ticks=read_process_start_ticks(os.getpid()) + 1)
    record_path.write_text(json.dumps(record))
    restarted = LocalBackend(tmp_path / "jobs")

    status = restarted.inspect_job(job_id)

    assert status.stage == "succeeded"


def test_tail_lines_limits_logs(backend, tmp_path):
    job_id = submit(backend, tmp_path, "crash")
    wait_for_end(backend, job_id)

    tail = backend.fetch_job_logs(job_id, tail_lines=1)

    assert tail.count("\n") <= 1
    assert "config value out of range" in tail


def test_unknown_job_id_raises(backend):
    with pytest.raises(BackendError, match="local-1-2"):
        backend.inspect_job("local-1-2")


def test_missing_script_raises(backend, tmp_path):
    config_path = tmp_path / "run_config.json"
    config_path.write_text("{}")

    with pytest.raises(BackendError, match="not found"):
        backend.submit_job(run_id="r", script=tmp_path / "absent.py", config_path=config_path, workdir=tmp_path / "w")


def test_wait_for_exit_returns_when_job_ends(backend, tmp_path):
    job_id = submit(backend, tmp_path, "succeed")

    started = time.monotonic()
    backend.wait_for_exit(job_id, timeout_s=60.0)
    waited_s = time.monotonic() - started

    assert waited_s < 30.0
    assert backend.inspect_job(job_id).stage == "succeeded"


def test_wait_for_exit_times_out_on_running_job(backend, tmp_path):
    job_id = submit(backend, tmp_path, "hang")

    started = time.monotonic()
    backend.wait_for_exit(job_id, timeout_s=0.5)
    waited_s = time.monotonic() - started
    backend.cancel_job(job_id)

    assert 0.4 <= waited_s < 10.0


def test_follow_job_notices_end_before_poll_interval(backend, tmp_path):
    from autotrain_agent.monitor_metrics import follow_job

    job_id = submit(backend, tmp_path, "succeed")

    started = time.monotonic()
    status = follow_job(backend, job_id, progress_path=tmp_path / "absent.json", poll_interval_s=120.0)
    followed_s = time.monotonic() - started

    assert status.stage == "succeeded"
    assert followed_s < 60.0
