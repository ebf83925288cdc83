"""Settings that locate an experiment's files and tune the agent's behaviour, independent of any plan."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


def default_cache_dir() -> Path:
    """Return `$AUTOTRAIN_AGENT_CACHE`, or `~/.cache/autotrain-agent` when it is unset or empty.

    The cache contains what experiments share: converted models, built datasets and llama.cpp's converter.
    """
    configured = os.environ.get("AUTOTRAIN_AGENT_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "autotrain-agent"


class Settings(BaseModel):
    """File locations and user-facing behaviour of the agent."""

    model_config = ConfigDict(extra="forbid")

    output_dir: Path = Field(default_factory=Path.cwd)
    """Working folder that contains `training_runs/` (state, checkpoints, logs) and `training_reports/`."""
    cache_dir: Path = Field(default_factory=default_cache_dir)
    """Reusable artifacts shared by experiments: converted models, built datasets, llama.cpp's converter."""
    progress: bool = True
    """Show progress bars on long steps."""
    poll_interval_s: float = Field(2.0, gt=0)
    """Seconds between two status checks of a running job."""
    notify_command: str | None = None
    """Command run with a JSON event on stdin on approval requests, policy stops, failures and the end."""
    notify_url: str | None = None
    """URL that receives the same JSON event as an HTTP POST."""

    @property
    def runs_dir(self) -> Path:
        """Folder with one subfolder per experiment."""
        return self.output_dir / "training_runs"

    @property
    def reports_dir(self) -> Path:
        """Folder with one Markdown report per experiment."""
        return self.output_dir / "training_reports"
