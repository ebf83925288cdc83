"""Hugging Face Jobs backend: runs the job script as a uv job on paid hardware, through `huggingface_hub`.

Transient failures (connection errors, 429 and 5xx responses) are retried with exponential backoff and logged.
Authentication, permission, quota and validation errors are not retried: they raise `JobsRequestError` with what
to do. The token is sent as the job's `HF_TOKEN` secret and never written to the state, a log or a message.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx2
from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status
from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_attempt, wait_exponential

from ..errors import BackendError, JobMismatchError, JobsRequestError
from .base import JobStatus

logger = logging.getLogger(__name__)

# Jobs stages (huggingface_hub 2.4 `JobStage`) mapped onto the backend protocol's stages.
STAGES = {
    "SCHEDULING": "pending",
    "RUNNING": "running",
    "COMPLETED": "succeeded",
    "ERROR": "failed",
    "CANCELED": "cancelled",
    "DELETED": "cancelled",
}
EXPERIMENT_LABEL = "autotrain-experiment"
RUN_LABEL = "autotrain-run"
SCRIPT_ENV = "AUTOTRAIN_JOB_SCRIPT_B64"
CONFIG_ENV = "AUTOTRAIN_RUN_CONFIG"
# The job's command writes the script and config from the environment, then starts training. Shipping them in
# the environment avoids `run_uv_job`'s upload of local scripts to a storage bucket before every job.
# NOTE: the Jobs API's size limit on the environment is not documented; the train script is about 20 KB encoded.
BOOTSTRAP = (
    "import base64,os,sys;"
    "open('/tmp/train.py','wb').write(base64.b64decode(os.environ['AUTOTRAIN_JOB_SCRIPT_B64']));"
    "open('/tmp/run_config.json','w').write(os.environ['AUTOTRAIN_RUN_CONFIG']);"
    "n=int(os.environ.get('AUTOTRAIN_NUM_GPUS','1'));"
    "cmd=['accelerate','launch','--num_processes',str(n)] if n>1 else [sys.executable];"
    "os.execvp(cmd[0],cmd+['/tmp/train.py','--config','/tmp/run_config.json'])"
)
# Outputs go to the job's own disk; checkpoints reach the Hub through the script's `hub_repo` push.
REMOTE_OUTPUT_DIR = "/tmp/run"


class HfJobsBackend:
    """Runs job scripts on Hugging Face Jobs.

    The prepared dataset file on this machine is uploaded to a private Hub dataset repository before each job, and
    the job downloads it from there.

    Limitations:
        Checkpoints leave the job only through the `hub_repo` push and Trackio logs stay in the job, so
        `monitor_run` finds no local checkpoints or metrics for a Jobs run and evaluating one is not built yet.
    """

    name = "hf-jobs"
    is_free = False
    """Every job costs money, so every submission passes the approval gate."""

    def __init__(
        self,
        *,
        experiment_id: str,
        api: HfApi | None = None,
        hub_api: HfApi | None = None,
        namespace: str | None = None,
        dependencies: list[str] | None = None,
        gpu_counts: dict[str, int] | None = None,
        max_attempts: int = 5,
        retry_wait_s: float = 1.0,
    ):
        """Create a backend for one experiment.

        Args:
            experiment_id: Put on every job as a label.
            api: Client to use; its `endpoint` and `token` pick the server and account. Default `HfApi()`.
            hub_api: Client for the dataset upload; default `api`.
            namespace: User or organization that owns the jobs; default the token's user (one `whoami` call).
            dependencies: Packages installed into the job; default the script's inline metadata dependencies.
            gpu_counts: GPUs per flavor name; flavors with more than one launch through `accelerate`.
            max_attempts: Tries per request, the first included, for transient failures.
            retry_wait_s: First backoff wait; it doubles per retry up to 30 s.
        """
        self.experiment_id = experiment_id
        self.api = api or HfApi()
        self.hub_api = hub_api or self.api
        self._namespace = namespace
        self.dependencies = dependencies
        self.gpu_counts = gpu_counts or {}
        self._retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_exponential(multiplier=retry_wait_s, max=30),
            stop=stop_after_attempt(max_attempts),
            before_sleep=before_sleep_log(logger, logging.WARNING),
            reraise=True,
        )

    @property
    def namespace(self) -> str:
        """The jobs' owner, looked up once from the token when not given."""
        if self._namespace is None:
            self._namespace = self._call("look up the token's user", lambda: self.api.whoami()["name"])
        return self._namespace

    def job_url(self, job_id: str) -> str:
        """Return the job's web page."""
        return f"{self.api.endpoint}/jobs/{self.namespace}/{job_id}"

    def submit_job(self, *, run_id: str, script: Path, config_path: Path, workdir: Path, env: dict[str, str] | None = None) -> str:
        """Start `script` with the run config as a uv job on the config's `flavor` and `timeout`; return the job id.

        Right after creation the job is inspected. If its flavor, timeout or secrets differ from the request, it is
        cancelled before training time is spent, and the `JobMismatchError` message states why.

        Raises:
            JobsRequestError: For authentication, permission, quota or validation errors.
            JobMismatchError: If the created job does not match the request; the job is cancelled.
            BackendError: If transient errors outlast the retries.
            BackendError: If the dataset is a local file and the config names no `hub_repo` or `dataset_upload_repo`.
        """
        config = json.loads(Path(config_path).read_text(encoding="utf-8"))
        flavor, timeout = config.get("flavor"), config.get("timeout")
        if not flavor or not timeout:
            raise BackendError(f"Run {run_id!r} has no approved `flavor` and `timeout` in its config; submit it through `submit_run`.")
        config.update(self._upload_dataset(config, run_id=run_id))
        job_env, secrets = self._job_environment(script, config, flavor, env)
        labels = {EXPERIMENT_LABEL: self.experiment_id, RUN_LABEL: run_id}
        dependencies = self.dependencies if self.dependencies is not None else read_script_dependencies(script)
        if self.gpu_counts.get(flavor, 1) > 1:
            dependencies = [*dependencies, "accelerate"]

        job = self._call(
            f"submit run {run_id}",
            lambda: self.api.run_uv_job(
                "python",
                script_args=["-c", BOOTSTRAP],
                dependencies=dependencies,
                env=job_env,
                secrets=secrets,
                flavor=flavor,
                timeout=timeout,
                labels=labels,
                namespace=self.namespace,
            ),
        )
        logger.info("%s: submitted run %s as Jobs job %s on %s, timeout %s", self.experiment_id, run_id, job.id, flavor, timeout)
        self._check_created_job(job.id, flavor=flavor, timeout=timeout, secret_names=set(secrets))
        return job.id

    def _upload_dataset(self, config: dict, *, run_id: str) -> dict:
        """Upload the local prepared dataset to a private Hub dataset repository; return the job's dataset keys.

        The repository is the config's `dataset_upload_repo`, else `<hub_repo>-data`. Each run's file goes to
        `<run_id>/<file name>`, so a rerun never changes the rows of an earlier run. A `dataset_path` that is
        no local file is passed to the job unchanged.
        """
        path = Path(str(config.get("dataset_path") or ""))
        if not path.is_file():
            return {}
        hub_repo = config.get("hub_repo")
        repo_id = config.get("dataset_upload_repo") or (f"{hub_repo}-data" if hub_repo else None)
        if not repo_id:
            raise BackendError(
                f"Run {run_id!r} trains on the local file {str(path)!r}, which a Jobs machine cannot read, and its "
                f"config names no Hub repository to upload it to; pass `--hub-repo`."
            )
        path_in_repo = f"{run_id}/{path.name}"
        self._call(
            f"create the dataset repository {repo_id}",
            lambda: self.hub_api.create_repo(repo_id, repo_type="dataset", private=True, exist_ok=True),
        )
        self._call(
            f"upload the dataset of run {run_id} to {repo_id}",
            lambda: self.hub_api.upload_file(
                path_or_fileobj=str(path), path_in_repo=path_in_repo, repo_id=repo_id, repo_type="dataset",
                commit_message=f"Add the prepared dataset of run {run_id} ({self.experiment_id})",
            ),
        )
        logger.info("%s: uploaded the dataset of run %s to the dataset repository %s", self.experiment_id, run_id, repo_id)
        return {"dataset_repo": repo_id, "dataset_path": path_in_repo, "dataset_upload_repo": None}

    def _job_environment(self, script: Path, config: dict, flavor: str, env: dict[str, str] | None) -> tuple[dict, dict]:
        remote_config = {**config, "model_path": config.get("base_model") or config["model_path"], "output_dir": REMOTE_OUTPUT_DIR}
        job_env = {
            **(env or {}),
            SCRIPT_ENV: base64.b64encode(Path(script).read_bytes()).decode("ascii"),
            CONFIG_ENV: json.dumps(remote_config),
            "AUTOTRAIN_NUM_GPUS": str(self.gpu_counts.get(flavor, 1)),
        }
        token = self.api.token or get_token()
        secrets = {"HF_TOKEN": token} if token else {}
        return job_env, secrets

    def _check_created_job(self, job_id: str, *, flavor: str, timeout: str, secret_names: set[str]) -> None:
        """Cancel the job and raise if the server changed the flavor, timeout or secrets that were requested."""
        raw = self._call(f"inspect job {job_id}", lambda: self._get_raw_job(job_id))
        requested_s = int(timeout.removesuffix("m")) * 60
        # NOTE: `JobInfo` in huggingface_hub 2.4 does not parse the timeout; the raw field name is assumed to be
        # the one the create request sends, `timeoutSeconds`.
        problems = []
        if raw.get("flavor") != flavor:
            problems.append(f"flavor {raw.get('flavor')!r} instead of {flavor!r}")
        if raw.get("timeoutSeconds") != requested_s:
            problems.append(f"timeout {raw.get('timeoutSeconds')!r} s instead of {requested_s} s")
        if not secret_names <= set(raw.get("secrets") or {}):
            problems.append("secrets missing from the job")
        if problems:
            self.cancel_job(job_id)
            raise JobMismatchError(f"Job {job_id} was created with {'; '.join(problems)}, so it was cancelled before training.")

    def _get_raw_job(self, job_id: str) -> dict[str, Any]:
        response = get_session().get(f"{self.api.endpoint}/api/jobs/{self.namespace}/{job_id}", headers=build_hf_headers(token=self.api.token))
        hf_raise_for_status(response)
        return response.json()

    def inspect_job(self, job_id: str) -> JobStatus:
        """Return the job's status from its stage; a job ends only when its stage is terminal."""
        job = self._call(f"inspect job {job_id}", lambda: self.api.inspect_job(job_id=job_id, namespace=self.namespace))
        stage = STAGES.get(str(getattr(job.status.stage, "value", job.status.stage)), "running")
        message = job.status.message
        failure_kind = None
        if stage == "failed":
            failure_kind = "timeout" if message and re.search(r"time ?out|timed out", message, re.IGNORECASE) else "crash"
        return JobStatus(job_id=job_id, stage=stage, failure_kind=failure_kind, message=message)  # type: ignore[arg-type]

    def fetch_job_logs(self, job_id: str, *, tail_lines: int | None = None) -> str:
        """Return the job's logs so far; this never waits for the job to end."""
        lines = self._call(
            f"fetch logs of job {job_id}",
            lambda: list(self.api.fetch_job_logs(job_id=job_id, namespace=self.namespace, follow=False, tail=tail_lines)),
        )
        return "\n".join(lines)

    def cancel_job(self, job_id: str) -> None:
        """Cancel the job; the Jobs API ignores a cancel of a finished job."""
        self._call(f"cancel job {job_id}", lambda: self.api.cancel_job(job_id=job_id, namespace=self.namespace))
        logger.info("%s: cancelled Jobs job %s", self.experiment_id, job_id)

    def find_jobs(self, *, run_id: str) -> list[str]:
        """Return the ids of this experiment's jobs labelled with `run_id`, oldest first."""
        labels = {EXPERIMENT_LABEL: self.experiment_id, RUN_LABEL: run_id}
        jobs = self._call(f"list jobs of run {run_id}", lambda: list(self.api.list_jobs(labels=labels, namespace=self.namespace)))
        jobs.sort(key=lambda job: job.created_at.timestamp() if job.created_at else 0.0)
        return [job.id for job in jobs]

    def _call(self, action: str, request):
        """Run `request` with retries for transient failures, translating the rest into actionable errors."""
        try:
            return self._retrying(request)
        except HfHubHTTPError as err:
            raise _request_error(action, err) from err
        except httpx2.HTTPError as err:
            raise BackendError(f"Could not {action} on {self.api.endpoint}: {type(err).__name__}; retried and gave up.") from err


def is_transient(err: BaseException) -> bool:
    """Return whether retrying `err` may succeed: connection failures, 429 and 5xx responses."""
    if isinstance(err, HfHubHTTPError):
        status = err.response.status_code if err.response is not None else None
        return status == 429 or (status is not None and status >= 500)
    return isinstance(err, (httpx2.TransportError, httpx2.DecodingError))


def _request_error(action: str, err: HfHubHTTPError) -> BackendError | JobsRequestError:
    """Return the error to raise for a failed request, saying what to do. The message never contains the token."""
    status = err.response.status_code if err.response is not None else None
    hints = {
        401: "authentication failed; set HF_TOKEN to a valid token or run `hf auth login`",
        402: "payment or quota is required; add a payment method or credits on huggingface.co/settings/billing",
        403: "the token may not run jobs in this namespace; use a token with the `job.write` permission",
        400: "the job spec was rejected; check the flavor, timeout and labels",
        422: "the job spec was rejected; check the flavor, timeout and labels",
    }
    if status in hints:
        return JobsRequestError(f"Could not {action}: HTTP {status}, {hints[status]}.")
    if status == 429 or (status is not None and status >= 500):
        return BackendError(f"Could not {action}: HTTP {status} after every retry; try again later.")
    return BackendError(f"Could not {action}: HTTP {status}.")


def read_script_dependencies(script: Path) -> list[str]:
    """Return the `dependencies` of a script's inline metadata block (PEP 723)."""
    import tomllib

    lines = Path(script).read_text(encoding="utf-8").splitlines()
    try:
        start = lines.index("# /// script")
        end = lines.index("# ///", start + 1)
    except ValueError:
        return []
    metadata = tomllib.loads("\n".join(line.removeprefix("#").removeprefix(" ") for line in lines[start + 1 : end]))
    return list(metadata.get("dependencies", []))
