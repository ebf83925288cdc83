"""Say in words whether a fine-tuned score differs from the base model's by more than the noise."""

from __future__ import annotations

import math

from .state import Experiment, Score


def describe_change(base: Score, tuned: Score) -> str:
    """Return the change from `base` to `tuned` with its standard error and what it means.

    The two scores are treated as independent samples, so the standard error of the difference is the root of
    the summed squared standard errors. A change within one standard error is reported as no measurable change.
    """
    delta = tuned.value - base.value
    stderr = math.sqrt((base.stderr or 0.0) ** 2 + (tuned.stderr or 0.0) ** 2)
    if stderr == 0.0 or abs(delta) <= stderr:
        meaning = "no measurable change: the difference is within one standard error"
    elif delta > 0:
        meaning = "better than the base model by more than one standard error"
    else:
        meaning = "worse than the base model by more than one standard error"
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
