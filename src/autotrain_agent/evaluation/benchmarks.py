"""Resolve a benchmark name to the implementation that scores it, before any job or GPU time is spent."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from autotrain_agent.errors import ConfigError

logger = logging.getLogger(__name__)

EvaluationBackend = Literal["builtin", "lighteval"]
"""Who runs benchmarks: the built-in harnesses, or lighteval where it has the task."""


@dataclass(frozen=True)
class BenchmarkImplementation:
    """The code that scores a benchmark, named for the report."""

    name: str
    """Canonical benchmark name, as stored in plans and scores."""
    harness: str
    """Module that executes and scores the answers."""
    note: str = ""
    """Why this implementation was chosen when it is not the requested backend's own."""
    lighteval_task: str = ""
    """lighteval task name under the `lighteval` backend, for completion-style prompts (add `_chat` for chat
    models); empty for the built-in harness. The task needs the `lighteval` extra."""


_HUMANEVAL = BenchmarkImplementation(name="humaneval", harness="autotrain_agent.evaluation.sandbox")
BENCHMARKS = {"humaneval": _HUMANEVAL}
"""Built-in implementations by canonical name."""
ALIASES = {"openai_humaneval": "humaneval", "openai/openai_humaneval": "humaneval"}
"""Other names users give the same benchmark, such as the Hub dataset id."""
# lighteval 0.13 ships no HumanEval task. The `lighteval` extra adds one (`lighteval_humaneval.py`) whose metric runs
# the code in the built-in sandbox, so the built-in harness still produces the score.
_LIGHTEVAL_HUMANEVAL = BenchmarkImplementation(
    name="humaneval",
    harness=_HUMANEVAL.harness,
    note="lighteval has no humaneval task; the custom task humaneval_sandbox (the `lighteval` extra) scores it in "
    "the built-in sandboxed harness",
    lighteval_task="humaneval_sandbox",
)
_LIGHTEVAL_TASKS = {"humaneval": _LIGHTEVAL_HUMANEVAL}
"""Implementations under the `lighteval` backend by canonical name."""


def resolve_benchmark(name: str, *, backend: EvaluationBackend = "builtin") -> BenchmarkImplementation:
    """Return the implementation that scores the benchmark `name` under the evaluation `backend`.

    A benchmark that the backend lacks falls back to the built-in harness, and the returned `note` says so, so the
    report can name the harness that produced the score.

    Raises:
        ConfigError: If the name is unknown (the message lists the known names) or `backend` is invalid.
    """
    if backend not in ("builtin", "lighteval"):
        raise ConfigError(f"Unknown evaluation backend {backend!r}; use 'builtin' or 'lighteval'.")
    canonical = ALIASES.get(name.strip().lower(), name.strip().lower())
    if canonical not in BENCHMARKS:
        known = sorted([*BENCHMARKS, *ALIASES])
        raise ConfigError(f"Unknown benchmark {name!r}; known benchmarks: {', '.join(known)}.")

    implementation = BENCHMARKS[canonical]
    if backend == "builtin":
        return implementation
    if canonical in _LIGHTEVAL_TASKS:
        return _LIGHTEVAL_TASKS[canonical]
    logger.debug("lighteval has no %s task; the built-in harness scores it", canonical)
    note = f"lighteval has no {canonical} task, so the built-in sandboxed harness scores it"
    return BenchmarkImplementation(name=canonical, harness=implementation.harness, note=note)
