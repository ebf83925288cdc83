"""Write metric streams into real Trackio projects under the test's `TRACKIO_DIR`."""

import os
from pathlib import Path

import pytest
import trackio


@pytest.fixture
def trackio_writes_to_test_dir(monkeypatch):
    """Send this process's trackio writes to the test's TRACKIO_DIR, because trackio 0.43 reads it once at import."""
    import trackio.sqlite_storage
    import trackio.utils

    trackio_dir = Path(os.environ["TRACKIO_DIR"])
    monkeypatch.setattr(trackio.sqlite_storage, "TRACKIO_DIR", trackio_dir)
    monkeypatch.setattr(trackio.utils, "TRACKIO_DIR", trackio_dir)


def log_rows(project, run_name, rows):
    """Write `(metrics, step)` pairs with trackio itself; `step=None` logs the way transformers' callback does."""
    trackio.init(project=project, name=run_name, auto_log_cpu=False, auto_log_gpu=False)
    for metrics, step in rows:
        trackio.log(metrics, step=step)
    trackio.finish()


def log_series(project, run_name, series):
    """Log `{metric: [(step, value), ...]}` the way transformers does: rows keyed by `train/global_step`."""
    by_step: dict[int, dict] = {}
    for metric, points in series.items():
        for step, value in points:
            by_step.setdefault(step, {})[metric] = value
    log_rows(project, run_name, [({**metrics, "train/global_step": step}, None) for step, metrics in sorted(by_step.items())])
