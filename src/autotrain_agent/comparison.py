"""Say in words whether a fine-tuned score differs from the base model's by more than the noise."""

from __future__ import annotations

import math
from typing import Literal

from .state import Experiment, Score


Direction = Literal["better", "worse", "no measurable change"]


def compare_scores(reference: Score, other: Score) -> tuple[float, float, Direction]:
    """Return `other - reference`, the standard error of that difference, and whether it exceeds the noise.

    The two scores are treated as independent samples, so the standard error of the difference is the root of
    the summed squared standard errors. A difference within one standard error, or with no standard error at all,
    is no measurable change.
    """
    delta = other.value - reference.value
    stderr = math.sqrt((reference.stderr or 0.0) ** 2 + (other.stderr or 0.0) ** 2)
    if stderr == 0.0 or abs(delta) <= stderr:
        return delta, stderr, "no measurable change"
    return delta, stderr, "better" if delta > 0 else "worse"


def describe_change(base: Score, tuned: Score) -> str:
    """Return the change from `base` to `tuned` with its standard error and what it means (see `compare_scores`)."""
    delta, stderr, direction = compare_scores(base, tuned)
    if direction == "no measurable change":
        meaning = "no measurable change: the difference is within one standard error"
    else:
        meaning = f"{direction} than the base model by more than one standard error"
    return f"{delta:+.3f} {tuned.metric} (standard error {stderr:.3f}): {meaning}"


def changes_from_base(experiment: Experiment) -> list[str]:
    """Return one line per scored run that compares its final checkpoint with the base model on each benchmark."""
    base_by_benchmark = {score.benchmark: score for score in experiment.baseline_scores}
    lines = []
    for run in experiment.runs:
        for score in run.checkpoints[-1].scores if run.checkpoints else []:
            base = base_by_benchmark.get(score.benchmark)
            if base is not None:
                lines.append(f"{run.run_id} vs base on {score.benchmark}: {describe_change(base, score)}")
    return lines
