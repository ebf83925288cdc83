"""The experiment context that every tool function receives: state, store, settings and backend."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .approval import Approver
from .backends.base import JobBackend
from .config import Settings
from .state import Decision, Experiment, ExperimentStatus, Stage
from .store import ExperimentStore

logger = logging.getLogger(__name__)


@dataclass
class ExperimentContext:
    """Binds tool functions to one experiment; every change goes through `record`, which saves and re-renders."""

    experiment: Experiment
    store: ExperimentStore
    settings: Settings
    backend: JobBackend
    echo: Callable[[str], None] = field(default=print)
    """Writes one line for the user; the CLI prints, tests collect."""
    approver: Approver | None = None
    """Answers the approval gate before paid submissions; `None` rejects every one (the gate fails closed)."""

    @property
    def folder(self) -> Path:
        """The experiment's folder under `training_runs/`."""
        return self.store.folder(self.experiment.id)

    @property
    def report_path(self) -> Path:
        """The experiment's Markdown report."""
        return self.settings.reports_dir / f"{self.experiment.id}.md"

    def record(self, event: str, **details: Any) -> None:
        """Save the state with a journal event, then rewrite the report from the saved state."""
        self.store.save(self.experiment, event=event, details=details)
        # Imported here because the report renders the whole state and imports most modules.
        from .report import write_report

        try:
            write_report(self.experiment, self.report_path, runs_root=self.store.root)
        except OSError as err:
            logger.warning("%s: could not write the report %s: %s", self.experiment.id, self.report_path, err)

    def decide(self, *, by: str, action: str, reason: str, **evidence: Any) -> Decision:
        """Store a decision with its evidence and save."""
        decision = Decision(by=by, action=action, reason=reason, evidence=evidence)  # type: ignore[arg-type]
        self.experiment.decisions.append(decision)
        self.record("decision", by=by, action=action)
        return decision

    def complete_stage(self, stage: Stage, **details: Any) -> None:
        """Mark `stage` finished so that a resumed experiment skips it."""
        if stage not in self.experiment.completed_stages:
            self.experiment.completed_stages.append(stage)
        logger.info("%s: stage %s completed", self.experiment.id, stage.value)
        self.record("stage_completed", stage=stage.value, **details)

    def await_approval(self, message: str) -> None:
        """Mark the experiment as waiting for an approval that was rejected or not given, with `message` as the reason."""
        self.experiment.status = ExperimentStatus.NEEDS_APPROVAL
        self.experiment.failure = message
        logger.warning("%s: stopped for approval: %s", self.experiment.id, message)
        self.record("approval_needed", message=message)

    def fail(self, message: str) -> None:
        """Mark the experiment failed with `message` as the reason."""
        self.experiment.status = ExperimentStatus.FAILED
        self.experiment.failure = message
        logger.error("%s: experiment failed: %s", self.experiment.id, message)
        self.record("experiment_failed", message=message)
