"""Read a run's metrics back from Trackio and follow a job's progress until it ends."""

import json
import logging
import math
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from autotrain_agent.backends.base import JobBackend, JobStatus, is_terminal
from autotrain_agent.errors import IncompleteMetricsError

logger = logging.getLogger(__name__)

# transformers' Trackio callback logs without an explicit step, so Trackio's own `step` column is a row counter.
# The trainer's real step travels in this key of every row instead.
GLOBAL_STEP_KEY = "train/global_step"
_NON_METRIC_KEYS = frozenset({"step", "timestamp", GLOBAL_STEP_KEY})
_TRACKIO_DIR_LOCK = threading.Lock()


def read_trackio_metrics(
    project: str, run_name: str, *, after_step: int | None = None
) -> dict[str, list[tuple[int, float]]]:
    """Read every scalar metric of a Trackio run, as `(global step, value)` points sorted by step.

    Each point's step is the trainer's global step (`train/global_step` in the row) when the row has one, else the
    step the row was logged with, and never the row number. Reads are uncapped, so sparse series such as
    `eval/loss` come back with every point next to dense ones. Pass the last step already seen as `after_step` to
    get only newer points. When a step was logged twice for one metric (a resumed run), the later value wins.

    A tracker that cannot be read (missing project, locked or broken database) is not an error for training:
    the function logs a warning and returns `{}`.

    Args:
        project: Trackio project name; its database lives under `TRACKIO_DIR`.
        run_name: Trackio run name within the project.
        after_step: Return only points with a step greater than this. `None` returns all points.

    Raises:
        IncompleteMetricsError: If the store returned fewer rows than it counts for the run, so that no rule
            decides on a partial series.
    """
    from trackio import SQLiteStorage

    try:
        with _current_trackio_dir():
            rows = SQLiteStorage.get_logs(project, run_name, max_points=None)
            stored_count = SQLiteStorage.get_log_count(project, run_name)
    except (sqlite3.Error, OSError) as err:
        logger.warning("Could not read Trackio metrics of %s/%s: %s", project, run_name, err)
        return {}
    if len(rows) < stored_count:
        raise IncompleteMetricsError(
            f"Trackio returned {len(rows)} of the {stored_count} rows stored for run {run_name!r} in project "
            f"{project!r}; read again before deciding on these metrics."
        )

    values_by_metric: dict[str, dict[int, float]] = {}
    for row in rows:
        step = _row_step(row)
        if after_step is not None and step <= after_step:
            continue
        for name, value in row.items():
            if name in _NON_METRIC_KEYS or not _is_scalar(value):
                continue
            values_by_metric.setdefault(name, {})[step] = float(value)
    return {name: sorted(points.items()) for name, points in values_by_metric.items()}


class MetricsCursor:
    """Reads one Trackio run's metrics incrementally: each `read_new` returns only rows stored since the last.

    The cursor is the SQLite row id, so one read costs the same whether the run logged 100 steps or 100,000. Points
    carry the trainer's global step (see `read_trackio_metrics`), never the row number, and every series is read
    in full, sparse ones included. The project's database is opened read-only, so a reader can never block or
    damage the job's writes.
    """

    def __init__(self, project: str, run_name: str):
        self.project = project
        self.run_name = run_name
        self.last_row_id = 0
        """Highest row id read so far."""
        self.rows_read = 0
        """Rows read so far, over all calls."""

    def read_new(self, *, max_rows: int = 10_000) -> dict[str, list[tuple[int, float]]]:
        """Return the points stored since the last call, by metric, sorted by step.

        Reads at most `max_rows` rows per call; the rest come with the next call.

        Raises:
            sqlite3.Error: If the database exists but cannot be read. A missing database returns `{}`.
        """
        import orjson
        from trackio.sqlite_storage import SQLiteStorage, deserialize_values

        with _current_trackio_dir():
            db_path = SQLiteStorage.get_project_db_path(self.project)
        if not db_path.is_file():
            return {}
        connection = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = connection.execute(
                "SELECT id, step, metrics FROM metrics WHERE id > ? AND run_name = ? ORDER BY id LIMIT ?",
                (self.last_row_id, self.run_name, max_rows),
            ).fetchall()
        except sqlite3.OperationalError as err:
            if "no such table" in str(err):
                return {}
            raise
        finally:
            connection.close()

        values_by_metric: dict[str, dict[int, float]] = {}
        for row_id, row_step, metrics_json in rows:
            row = deserialize_values(orjson.loads(metrics_json))
            row.setdefault("step", row_step)
            step = _row_step(row)
            for name, value in row.items():
                if name not in _NON_METRIC_KEYS and _is_scalar(value):
                    values_by_metric.setdefault(name, {})[step] = float(value)
            self.last_row_id = row_id
        self.rows_read += len(rows)
        return {name: sorted(points.items()) for name, points in values_by_metric.items()}


def follow_job(
    backend: JobBackend,
    job_id: str,
    *,
    progress_path: Path,
    poll_interval_s: float = 2.0,
    sleep: Callable[[float], None] | None = None,
    on_poll: Callable[[JobStatus, dict | None], bool] | None = None,
) -> JobStatus:
    """Poll a job until it reaches a terminal stage, showing a progress bar with step, loss and ETA.

    The bar reads the job's `progress.json`, which the training script rewrites at each logging step. A failed or
    cancelled job is returned, not raised; inspect `status.stage`. A missing or half-written progress file only
    leaves the bar unchanged. The bar is hidden when stderr is not a terminal.

    Args:
        backend: Backend that runs the job.
        job_id: Identifier returned by `submit_job`.
        progress_path: The job's `progress.json`.
        poll_interval_s: Seconds between polls.
        sleep: Function that waits between polls; tests pass a fake one. `None` waits with the backend's
            `wait_for_exit` where it has one, which returns as soon as the job's process ends, else `time.sleep`.
        on_poll: Called after each poll of a running job with its status and progress (or `None`); returning
            `True` stops following, for example after a policy cancelled the job.

    Returns:
        The first status with a terminal stage, or the last status seen when `on_poll` stopped following.
    """
    from tqdm.auto import tqdm

    if sleep is None:
        wait_for_exit = getattr(backend, "wait_for_exit", None)
        sleep = (lambda seconds: wait_for_exit(job_id, timeout_s=seconds)) if wait_for_exit else time.sleep
    printer = _ProgressLines(job_id)
    with tqdm(total=None, unit="step", desc=job_id, disable=None) as bar:
        while True:
            status = backend.inspect_job(job_id)
            progress = _read_progress(Path(progress_path))
            _update_bar(bar, progress)
            if bar.disable:
                printer.maybe_print(progress)
            if is_terminal(status.stage):
                logger.debug("Job %s ended as %s", job_id, status.stage)
                return status
            if on_poll is not None and on_poll(status, _read_progress(Path(progress_path))):
                return status
            sleep(poll_interval_s)


@contextmanager
def _current_trackio_dir() -> Iterator[None]:
    # trackio 0.43 reads TRACKIO_DIR once, at import, so a later change of the variable (a new experiment folder,
    # or a test's temporary folder) is ignored. Point its storage at the current value for the read. Drop this
    # once trackio resolves the folder per call.
    import trackio.sqlite_storage as storage

    wanted = os.environ.get("TRACKIO_DIR")
    with _TRACKIO_DIR_LOCK:
        previous = storage.TRACKIO_DIR
        if wanted:
            storage.TRACKIO_DIR = Path(wanted)
        try:
            yield
        finally:
            storage.TRACKIO_DIR = previous


def _row_step(row: dict) -> int:
    global_step = row.get(GLOBAL_STEP_KEY)
    if _is_scalar(global_step):
        return int(global_step)
    return int(row["step"])


def _is_scalar(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_progress(path: Path) -> dict | None:
    try:
        progress = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return progress if isinstance(progress, dict) else None


class _ProgressLines:
    """Plain progress lines on stderr where no bar can be drawn (output to a file or a pipe), at most every 30 s."""

    interval_s = 30.0

    def __init__(self, job_id: str):
        self.job_id = job_id
        self.last_step = -1
        self.last_print = -math.inf

    def maybe_print(self, progress: dict | None) -> None:
        if progress is None or not isinstance(progress.get("step"), int) or progress["step"] == self.last_step:
            return
        now = time.monotonic()
        finished = progress["step"] == progress.get("max_steps")
        if now - self.last_print < self.interval_s and not finished:
            return
        self.last_step, self.last_print = progress["step"], now
        parts = [f"step {progress['step']}/{progress.get('max_steps') or '?'}"]
        if _is_scalar(progress.get("loss")):
            parts.append(f"loss {progress['loss']:.4g}")
        if _is_scalar(progress.get("eta_s")):
            parts.append(f"about {progress['eta_s'] / 60:.1f} min left")
        print(f"{self.job_id}: {', '.join(parts)}", file=sys.stderr, flush=True)


def _update_bar(bar, progress: dict | None) -> None:
    if progress is None:
        return
    max_steps = progress.get("max_steps")
    if isinstance(max_steps, int) and max_steps > 0 and bar.total != max_steps:
        bar.total = max_steps
    step = progress.get("step")
    if isinstance(step, int) and step > bar.n:
        bar.update(step - bar.n)
    postfix = {}
    loss = progress.get("loss")
    if _is_scalar(loss):
        postfix["loss"] = f"{loss:.4g}" if math.isfinite(loss) else str(loss)
    eta_s = progress.get("eta_s")
    if _is_scalar(eta_s):
        postfix["eta"] = f"{eta_s:.0f}s"
    if postfix:
        bar.set_postfix(postfix, refresh=False)
    bar.refresh()
