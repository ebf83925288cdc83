"""Notifications for unattended experiments: a command or a URL receives a small JSON event.

Events: `approval_requested`, `policy_stop`, `run_failed`, `experiment_finished`. A failing notification is
logged as a warning and never stops the experiment.
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

NotifyEvent = Literal["approval_requested", "policy_stop", "run_failed", "experiment_finished"]
NOTIFY_TIMEOUT_S = 10.0


def send_notification(
    *,
    experiment_id: str,
    event: NotifyEvent,
    summary: str,
    report_path: Path,
    command: str | None = None,
    url: str | None = None,
) -> bool:
    """Send `{experiment, event, summary, report}` to `command` (on stdin) and to `url` (as an HTTP POST).

    The command is split like a shell would but run without a shell. Nothing is raised: a failure, a non-zero
    exit or a timeout after `NOTIFY_TIMEOUT_S` is logged as a warning.

    Returns:
        Whether every configured target accepted the event; `True` when none is configured.
    """
    body = json.dumps({"experiment": experiment_id, "event": event, "summary": summary, "report": str(report_path)})
    delivered = True
    if command:
        delivered &= _run_command(command, body, experiment_id, event)
    if url:
        delivered &= _post(url, body, experiment_id, event)
    return delivered


def _run_command(command: str, body: str, experiment_id: str, event: str) -> bool:
    try:
        completed = subprocess.run(
            shlex.split(command), input=body, text=True, capture_output=True, timeout=NOTIFY_TIMEOUT_S, check=False
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as err:
        logger.warning("%s: notification command for %s failed: %s", experiment_id, event, err)
        return False
    if completed.returncode != 0:
        logger.warning(
            "%s: notification command for %s exited with %d: %s",
            experiment_id, event, completed.returncode, completed.stderr.strip()[-200:],
        )
        return False
    return True


def _post(url: str, body: str, experiment_id: str, event: str) -> bool:
    request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=NOTIFY_TIMEOUT_S) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        logger.warning("%s: notification POST for %s failed: %s", experiment_id, event, err)
        return False
    return True


def notify(ctx, event: NotifyEvent, summary: str) -> bool:
    """Send `event` for the context's experiment to the targets in its settings; see `send_notification`."""
    settings = ctx.settings
    if not settings.notify_command and not settings.notify_url:
        return True
    return send_notification(
        experiment_id=ctx.experiment.id,
        event=event,
        summary=summary,
        report_path=ctx.report_path,
        command=settings.notify_command,
        url=settings.notify_url,
    )
