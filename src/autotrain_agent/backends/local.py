"""Run job scripts as detached subprocesses on this machine, so the agent can exit and re-attach later."""

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from autotrain_agent.backends.base import JobStatus
from autotrain_agent.errors import BackendError

logger = logging.getLogger(__name__)

LOG_FILENAME = "train.log"
JOB_RECORD_FILENAME = "job.json"
EXIT_CODE_PREFIX = "exit_code."


class LocalBackend:
    """Run each job as a detached process group whose output goes to `workdir/train.log`.

    A job id is `local-<pid>-<start ticks>`: the process start time (from `/proc`) makes sure that a later process
    that reuses the pid is never taken for the job. Each submission writes a job record to `workdir/job.json` and a
    copy to `jobs_dir`, which `find_jobs` and `inspect_job` read, so a new agent process can re-attach.

    The stage comes from the process and the job's `status.json` (in the config's `output_dir`, else in `workdir`):
    a live process is running, a dead one is what `status.json` says, and a dead process whose status still says
    "running", or that wrote none, failed.

    Limitations:
        POSIX only, and reliable reuse detection needs Linux `/proc`; elsewhere only the pid is compared.
    """

    name = "local"
    is_free = True
    """Runs on this machine, so the approval gate asks only when the experiment requires approval."""

    def __init__(self, jobs_dir: Path | None = None, *, cancel_grace_s: float = 10.0):
        """Create a backend that keeps its job records in `jobs_dir` (default `.autotrain/jobs` in the cwd).

        Args:
            jobs_dir: Folder for the job records that `find_jobs` scans.
            cancel_grace_s: Seconds between SIGTERM and SIGKILL when cancelling.
        """
        self.jobs_dir = Path(jobs_dir) if jobs_dir is not None else Path.cwd() / ".autotrain" / "jobs"
        self.cancel_grace_s = cancel_grace_s
        self._children: dict[str, subprocess.Popen] = {}

    def submit_job(
        self, *, run_id: str, script: Path, config_path: Path, workdir: Path, env: dict[str, str] | None = None
    ) -> str:
        """Start `python script --config config_path` detached and return its job id.

        `OMP_NUM_THREADS` defaults to one thread per two cores, because two torch threads on two cores made small
        CPU runs several times slower than one. `env` entries override the inherited environment.

        Raises:
            BackendError: If the script or config is missing or the process cannot start.
        """
        script, config_path, workdir = Path(script).resolve(), Path(config_path).resolve(), Path(workdir).resolve()
        if not script.is_file():
            raise BackendError(f"Job script {str(script)!r} not found; pass the path of a script in `tools/`.")
        if not config_path.is_file():
            raise BackendError(f"Run config {str(config_path)!r} not found; write it before submitting run {run_id!r}.")

        workdir.mkdir(parents=True, exist_ok=True)
        status_path = _status_path(config_path, workdir)
        # A status.json left by an earlier job of this run would be read as this job's outcome.
        status_path.unlink(missing_ok=True)
        command = [sys.executable, str(script), "--config", str(config_path)]
        child_env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // 2)), "PYTHONUNBUFFERED": "1"}
        child_env.update(env or {})
        process = _start_detached(command, workdir=workdir, env=child_env)
        start_ticks = read_process_start_ticks(process.pid)
        job_id = f"local-{process.pid}-{start_ticks if start_ticks is not None else 0}"
        self._children[job_id] = process

        record = {
            "job_id": job_id,
            "run_id": run_id,
            "pid": process.pid,
            "start_ticks": start_ticks,
            "submitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": command,
            "workdir": str(workdir),
            "status_path": str(status_path),
            "cancelled": False,
        }
        self._write_record(record)
        logger.info("%s: submitted local job %s (pid %d)", run_id, job_id, process.pid)
        return job_id

    def inspect_job(self, job_id: str) -> JobStatus:
        """Return the job's stage from its process and `status.json`.

        Raises:
            BackendError: If no record of `job_id` exists in `jobs_dir`.
        """
        record = self._read_record(job_id)
        exit_code = self._poll_exit_code(record)
        if self._is_alive(record) and exit_code is None:
            return JobStatus(job_id=job_id, stage="running", exit_code=None, failure_kind=None, message=None)

        status = _read_json(Path(record["status_path"]))
        if record["cancelled"]:
            return JobStatus(job_id=job_id, stage="cancelled", exit_code=exit_code, failure_kind=None, message="cancelled by request")
        if status is not None and status.get("state") == "succeeded":
            return JobStatus(job_id=job_id, stage="succeeded", exit_code=exit_code, failure_kind=None, message=status.get("exit_reason"))
        if status is not None and status.get("state") == "failed":
            return JobStatus(
                job_id=job_id,
                stage="failed",
                exit_code=exit_code,
                failure_kind=status.get("failure_kind") or "crash",
                message=status.get("error") or status.get("exit_reason"),
            )
        return self._unexplained_exit(record, status, exit_code)

    def wait_for_exit(self, job_id: str, *, timeout_s: float) -> None:
        """Wait until the job's process ends or `timeout_s` passes, whichever comes first.

        Only a job started by this backend object can be waited on. For a re-attached job, this sleeps `timeout_s`.
        """
        child = self._children.get(job_id)
        if child is None:
            time.sleep(timeout_s)
            return
        try:
            child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass

    def fetch_job_logs(self, job_id: str, *, tail_lines: int | None = None) -> str:
        """Return the job's `train.log`, or its last `tail_lines` lines; an empty string before any output.

        Raises:
            BackendError: If no record of `job_id` exists.
        """
        record = self._read_record(job_id)
        log_path = Path(record["workdir"]) / LOG_FILENAME
        try:
            text = log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        if tail_lines is None:
            return text
        return "".join(text.splitlines(keepends=True)[-tail_lines:]) if tail_lines > 0 else ""

    def cancel_job(self, job_id: str) -> None:
        """Send SIGTERM to the job's process group, then SIGKILL after `cancel_grace_s`.

        A job that already ended is left as it is: its stage stays succeeded or failed.

        Raises:
            BackendError: If no record of `job_id` exists.
        """
        record = self._read_record(job_id)
        if not self._is_alive(record):
            logger.debug("Job %s already ended; nothing to cancel", job_id)
            return

        record["cancelled"] = True
        self._write_record(record)
        _signal_group(record["pid"], signal.SIGTERM)
        deadline = time.monotonic() + self.cancel_grace_s
        while self._is_alive(record) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._is_alive(record):
            logger.warning("Job %s ignored SIGTERM for %.0f s; sending SIGKILL", job_id, self.cancel_grace_s)
            _signal_group(record["pid"], signal.SIGKILL)
        logger.info("%s: cancelled local job %s", record["run_id"], job_id)

    def find_jobs(self, *, run_id: str) -> list[str]:
        """Return the ids of the jobs recorded for `run_id` in `jobs_dir`, oldest submission first."""
        records = []
        for path in sorted(self.jobs_dir.glob("*.json")):
            record = _read_json(path)
            if record is not None and record.get("run_id") == run_id:
                records.append(record)
        records.sort(key=lambda record: (record.get("submitted_at", ""), record.get("start_ticks") or 0))
        return [record["job_id"] for record in records]

    def _is_alive(self, record: dict) -> bool:
        pid = record["pid"]
        child = self._children.get(record["job_id"])
        if child is not None and child.poll() is not None:
            return False
        return is_same_process_alive(pid, record.get("start_ticks"))

    def _poll_exit_code(self, record: dict) -> int | None:
        child = self._children.get(record["job_id"])
        if child is not None and child.poll() is not None:
            return child.returncode
        text = _read_text(Path(record["workdir"]) / f"{EXIT_CODE_PREFIX}{record['pid']}")
        return int(text) if text is not None and text.strip().lstrip("-").isdigit() else None

    def _unexplained_exit(self, record: dict, status: dict | None, exit_code: int | None) -> JobStatus:
        last_line = self.fetch_job_logs(record["job_id"], tail_lines=1).strip() or None
        if status is not None and status.get("state") == "running":
            message = "the process ended while status.json still said running"
            return JobStatus(job_id=record["job_id"], stage="failed", exit_code=exit_code, failure_kind="killed", message=message)
        message = last_line or f"the process exited with code {exit_code} and wrote no status.json"
        return JobStatus(job_id=record["job_id"], stage="failed", exit_code=exit_code, failure_kind="crash", message=message)

    def _record_path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.json"

    def _write_record(self, record: dict) -> None:
        text = json.dumps(record, indent=2)
        for path in (self._record_path(record["job_id"]), Path(record["workdir"]) / JOB_RECORD_FILENAME):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)

    def _read_record(self, job_id: str) -> dict:
        record = _read_json(self._record_path(job_id))
        if record is None:
            raise BackendError(
                f"No local job {job_id!r} in {str(self.jobs_dir)!r}; use an id from `submit_job` or `find_jobs`."
            )
        return record


def read_process_start_ticks(pid: int) -> int | None:
    """Return the start time of process `pid` in clock ticks since boot, or `None` if unknown or not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses, so split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def is_same_process_alive(pid: int, start_ticks: int | None) -> bool:
    """Return whether `pid` runs and, where `/proc` tells, is the process that started at `start_ticks`."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    if not Path("/proc").is_dir():
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return False
    return start_ticks is None or int(fields[19]) == start_ticks


def _start_detached(command: list[str], *, workdir: Path, env: dict[str, str]) -> subprocess.Popen:
    # The shell records the exit status in a file, because after an agent restart the job is no longer our child
    # and its exit status cannot be collected with waitpid.
    quoted = " ".join(shlex.quote(part) for part in command)
    # The file name carries the shell's pid ($$, the job's pid), so a later job in the same workdir never reads it.
    wrapper = f"{quoted}; code=$?; echo $code > {EXIT_CODE_PREFIX}$$; exit $code"
    try:
        with open(workdir / LOG_FILENAME, "ab") as log:
            return subprocess.Popen(
                ["/bin/sh", "-c", wrapper],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as err:
        raise BackendError(f"Could not start {command[1]!r} in {str(workdir)!r}: {err}") from err


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


def _status_path(config_path: Path, workdir: Path) -> Path:
    config = _read_json(config_path) or {}
    output_dir = config.get("output_dir")
    # The job runs with `workdir` as its cwd, so a relative `output_dir` is relative to it.
    return (workdir / output_dir if output_dir else workdir) / "status.json"


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _read_json(path: Path) -> dict | None:
    text = _read_text(path)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
