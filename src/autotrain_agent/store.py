"""Persistence of experiment state: atomic snapshots, an append-only journal, and a process lock.

Layout under the experiments root (default `training_runs/`)::

    <experiment id>/state.json      the latest snapshot, replaced atomically
    <experiment id>/journal.jsonl   one JSON event per line, appended and fsynced
    <experiment id>/lock            held with flock by the process that drives the experiment
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import ExperimentLockedError, ExperimentNotFoundError, StateError
from .state import Experiment, utc_now

logger = logging.getLogger(__name__)


class ExperimentStore:
    """Saves and loads experiments below one root folder.

    Subclasses store other records with an `id` and an `updated_at` field (studies) by overriding
    `snapshot_name` and `record_type`.
    """

    snapshot_name = "state.json"
    """File name of the snapshot inside a record's folder."""
    record_type: type[BaseModel] = Experiment
    """The pydantic model that a snapshot parses into."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, experiment_id: str) -> Path:
        """Return the folder that holds an experiment's state, runs and journal."""
        return self.root / experiment_id

    def exists(self, experiment_id: str) -> bool:
        """Return whether a snapshot exists for `experiment_id`."""
        return (self.folder(experiment_id) / self.snapshot_name).is_file()

    def list_ids(self) -> list[str]:
        """Return the ids of all saved experiments, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob(f"*/{self.snapshot_name}"))

    def load(self, experiment_id: str) -> Experiment:
        """Load the latest snapshot of an experiment.

        Raises:
            ExperimentNotFoundError: If there is no snapshot.
            StateError: If the snapshot does not parse.
        """
        path = self.folder(experiment_id) / self.snapshot_name
        if not path.is_file():
            known = ", ".join(self.list_ids()) or "none"
            raise ExperimentNotFoundError(
                f"No experiment {experiment_id!r} under {self.root}; known experiments: {known}. Check the id with "
                f"`autotrain-agent status` and the folder with `--output-dir`."
            )
        try:
            return self.record_type.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError as err:
            raise StateError(
                f"The state file {path} is invalid ({err.error_count()} errors, first: {err.errors()[0]['msg']}); "
                f"restore it from the journal or delete the folder to start over."
            ) from err

    def save(self, experiment: Experiment, *, event: str, details: dict[str, Any] | None = None) -> None:
        """Write a new snapshot atomically and append `event` to the journal.

        The journal line is written first, so a crash between the two leaves the journal ahead of the snapshot,
        never behind it.
        """
        folder = self.folder(experiment.id)
        folder.mkdir(parents=True, exist_ok=True)
        experiment.updated_at = utc_now()
        self._append_journal(folder, event, details or {})

        snapshot = experiment.model_dump_json(indent=2)
        fd, tmp_name = tempfile.mkstemp(prefix=".state.", suffix=".json", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as tmp:
                tmp.write(snapshot)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, folder / self.snapshot_name)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        logger.debug("%s: saved state after %s", experiment.id, event)

    def read_journal(self, experiment_id: str) -> list[dict[str, Any]]:
        """Return every journal event of an experiment, oldest first; a torn last line is skipped."""
        path = self.folder(experiment_id) / "journal.jsonl"
        if not path.is_file():
            return []
        events = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("%s: skipped a torn journal line in %s", experiment_id, path)
        return events

    def lock(self, experiment_id: str) -> ExperimentLock:
        """Return a lock that stops a second process from driving the same experiment."""
        return ExperimentLock(self.folder(experiment_id) / "lock")

    @staticmethod
    def _append_journal(folder: Path, event: str, details: dict[str, Any]) -> None:
        line = json.dumps({"at": utc_now().isoformat(), "event": event, **details}, default=str)
        with open(folder / "journal.jsonl", "a", encoding="utf-8") as journal:
            journal.write(line + "\n")
            journal.flush()
            os.fsync(journal.fileno())


class ExperimentLock:
    """An exclusive, non-blocking `flock` on the experiment's lock file; the OS releases it if the process dies."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock.

        Raises:
            ExperimentLockedError: If another process holds it; the message names that process id.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ExperimentLockedError(
                f"Experiment folder {self.path.parent} is driven by another process (pid {holder}); "
                f"wait for it to finish or stop it before running this experiment again."
            ) from err
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        """Release the lock if held."""
        if self._fd is None:
            return
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> ExperimentLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
