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


_HUMANEVAL = BenchmarkImplementation(name="humaneval", harness="autotrain_agent.evaluation.sandbox")
BENCHMARKS = {"humaneval": _HUMANEVAL}
"""Built-in implementations by canonical name."""
ALIASES = {"openai_humaneval": "humaneval", "openai/openai_humaneval": "humaneval"}
"""Other names users give the same benchmark, such as the Hub dataset id."""
# lighteval 0.13 ships no HumanEval task, so every benchmark here runs on the built-in harness under lighteval too.
# NOTE: no `lighteval` extra registers a custom HumanEval task on this harness yet (lighteval 0.13 is on PyPI; its
# task registry needs the network at import, which a custom task would have to patch), so `lighteval` only
# names the backend.
_LIGHTEVAL_TASKS: frozenset[str] = frozenset()


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
    if backend == "lighteval" and canonical not in _LIGHTEVAL_TASKS:
        logger.debug("lighteval has no %s task; the built-in harness scores it", canonical)
        note = f"lighteval has no {canonical} task, so the built-in sandboxed harness scores it"
        return BenchmarkImplementation(name=canonical, harness=implementation.harness, note=note)
    return implementation
