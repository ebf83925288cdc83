"""The job backend protocol: how a run's job script is started, inspected, followed and stopped."""

import logging
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel

logger = logging.getLogger(__name__)

JobStage = Literal["pending", "running", "succeeded", "failed", "cancelled"]
TERMINAL_JOB_STAGES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


def is_terminal(stage: JobStage) -> bool:
    """Return whether a job in `stage` will never change stage again."""
    return stage in TERMINAL_JOB_STAGES


class JobStatus(BaseModel):
    """A snapshot of one job as the backend sees it."""

    job_id: str
    """Identifier returned by `submit_job`."""
    stage: JobStage
    """Where the job is in its life. `succeeded`, `failed` and `cancelled` are terminal."""
    exit_code: int | None = None
    """Process exit status when the backend knows it, else `None` (still running, or exited unobserved)."""
    failure_kind: str | None = None
    """For a failed job: "oom", "nan", "crash" or "killed", as the job script or the backend classified it."""
    message: str | None = None
    """A one-line explanation for a person: the job's last error or why the backend chose this stage."""


@runtime_checkable
class JobBackend(Protocol):
    """Something that runs job scripts from the top-level `tools/` folder and reports on them."""

    name: str
    """Short backend name used in configs and reports, such as "local"."""

    def submit_job(
        self, *, run_id: str, script: Path, config_path: Path, workdir: Path, env: dict[str, str] | None = None
    ) -> str:
        """Start `script --config config_path` for `run_id` and return the job id."""
        ...

    def inspect_job(self, job_id: str) -> JobStatus:
        """Return the current status of a job."""
        ...

    def fetch_job_logs(self, job_id: str, *, tail_lines: int | None = None) -> str:
        """Return the job's combined stdout and stderr, or its last `tail_lines` lines."""
        ...

    def cancel_job(self, job_id: str) -> None:
        """Stop a job; cancelling a finished job does nothing."""
        ...

    def find_jobs(self, *, run_id: str) -> list[str]:
        """Return the ids of the jobs submitted for `run_id`, oldest first, so a restarted agent can re-attach."""
        ...
