"""Signals: the numbers and labels that policy rules compare, computed from a run's metrics and the state.

Every window is counted in global training steps (the step each point was logged at), never in points or rows,
so a metric logged every 10 steps and one logged every step cover the same stretch of training.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Series = list[tuple[int, float]]
Phase = Literal["running", "end"]


@dataclass
class Observation:
    """The input of a rule: one run's metric series by step and facts from the state, at one moment."""

    metrics: dict[str, Series]
    """Metric name to `(global step, value)` points sorted by step."""
    phase: Phase
    """`running` while the job runs, `end` once it reached a terminal stage."""
    step: int = 0
    """The last global step seen in any metric or in the job's progress file."""
    max_steps: int | None = None
    """Planned optimizer steps of the run, when known."""
    epoch: float | None = None
    """Epochs completed, when the job reports it."""
    job_state: str = "running"
    """`running`, `succeeded`, `failed` or `cancelled`."""
    failure_kind: str | None = None
    """For a failed job: `oom`, `nan`, `timeout`, `crash`, `killed` or `cancelled`."""
    failure_phase: str | None = None
    """For an out-of-memory failure: `training`, `evaluation`, `generation` or `saving`."""
    method: str = "sft"
    """The training method of the run."""
    per_device_train_batch_size: int = 1
    """The run's batch per device."""
    gradient_checkpointing: bool = False
    """Whether the run recomputes activations to save memory."""
    budget_left_minutes: float | None = None
    """Planned minutes left for the experiment; `None` when it has no time budget."""
    runs_left: int | None = None
    """Runs that may still be submitted; `None` when unlimited."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Room for signals added by callers."""
    finite_series: dict[str, FiniteSeries] = field(default_factory=dict, repr=False)
    """Finite points and running extremes by metric. A watcher passes the same dict to every poll, so each poll
    only processes the points added since the last one."""


class FiniteSeries:
    """The finite points of one metric with running minima and maxima, extended as the source series grows."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.points: Series = []
        self.prefix_min: list[float] = []
        self.prefix_max: list[float] = []
        self._source_length = 0
        self._source_last: tuple[int, float] | None = None

    def update(self, source: Series) -> None:
        """Take in the points `source` gained since the last call; start over if it changed in any other way."""
        grew = len(source) >= self._source_length and (
            self._source_length == 0 or source[self._source_length - 1] is self._source_last
        )
        if not grew:
            self._reset()
        for step, value in source[self._source_length :]:
            if not math.isfinite(value):
                continue
            self.points.append((step, value))
            self.prefix_min.append(min(value, self.prefix_min[-1]) if self.prefix_min else value)
            self.prefix_max.append(max(value, self.prefix_max[-1]) if self.prefix_max else value)
        self._source_length = len(source)
        self._source_last = source[-1] if source else None


@dataclass(frozen=True)
class SignalSpec:
    """One signal: its parameters and whether it yields a number, a label or a yes/no."""

    compute: Callable[..., Any]
    kind: Literal["number", "label", "flag"]
    parameters: dict[str, type] = field(default_factory=dict)
    """Parameter name to type; every parameter is required."""
    optional: dict[str, Any] = field(default_factory=dict)
    """Optional parameter name to its default."""
    description: str = ""


def find_series(observation: Observation, metric: str) -> Series:
    """Return the points of `metric`, trying the `train/` prefix that transformers' Trackio callback adds."""
    for name in (metric, f"train/{metric}", metric.removeprefix("train/")):
        if name in observation.metrics:
            return observation.metrics[name]
    return []


def _finite(observation: Observation, metric: str) -> FiniteSeries:
    finite = observation.finite_series.setdefault(metric, FiniteSeries())
    finite.update(find_series(observation, metric))
    return finite


def _window(points: Series, window_steps: int) -> Series:
    if not points:
        return []
    first = bisect.bisect_right(points, (points[-1][0] - window_steps, math.inf))
    return points[first:]


def last_value(observation: Observation, *, metric: str) -> float | None:
    """Return the metric's value at its latest step, or `None` before its first point."""
    points = find_series(observation, metric)
    return points[-1][1] if points else None


def slope(observation: Observation, *, metric: str, window_steps: int) -> float | None:
    """Return the least-squares slope per step of the finite points in the last `window_steps` steps.

    `None` when the window contains fewer than three points or spans a single step.
    """
    points = _window(_finite(observation, metric).points, window_steps)
    if len(points) < 3:
        return None
    mean_step = sum(step for step, _ in points) / len(points)
    mean_value = sum(value for _, value in points) / len(points)
    spread = sum((step - mean_step) ** 2 for step, _ in points)
    if spread == 0:
        return None
    return sum((step - mean_step) * (value - mean_value) for step, value in points) / spread


def relative_improvement(observation: Observation, *, metric: str, window_steps: int, mode: str = "min") -> float | None:
    """Return how much the best value improved within the last `window_steps` steps, relative to the best before.

    For `mode: min` (losses) this is `(best before - best inside) / |best before|`; for `mode: max` (accuracies,
    margins) the sign is turned so that improvement stays positive. `None` until the series is longer than the
    window, so a plateau is never declared on the first steps.
    """
    finite = _finite(observation, metric)
    points = finite.points
    if not points or points[-1][0] - points[0][0] <= window_steps:
        return None
    inside_start = len(points) - len(_window(points, window_steps))
    if inside_start == 0:
        return None
    inside = [value for _, value in points[inside_start:]]
    if mode == "min":
        reference = finite.prefix_min[inside_start - 1]
        change = reference - min(inside)
    else:
        reference = finite.prefix_max[inside_start - 1]
        change = max(inside) - reference
    return change / max(abs(reference), 1e-12)


def window_extreme(observation: Observation, *, metric: str, window_steps: int, largest: bool) -> float | None:
    """Return the largest or smallest finite value in the last `window_steps` steps.

    `None` until the series spans the whole window, so a few early points never stand for the window.
    """
    points = _finite(observation, metric).points
    if not points or points[-1][0] - points[0][0] < window_steps - 1:
        return None
    values = [value for _, value in _window(points, window_steps)]
    return max(values) if largest else min(values)


def nonfinite_streak(observation: Observation, *, metric: str) -> int:
    """Return how many of the metric's latest points in a row are NaN or infinite."""
    count = 0
    for _, value in reversed(find_series(observation, metric)):
        if math.isfinite(value):
            break
        count += 1
    return count


def divergence_ratio(observation: Observation, *, metric: str, min_steps: int = 0) -> float | None:
    """Return the latest finite value divided by the lowest one so far, once `min_steps` steps are logged.

    A ratio of 3 means the loss is three times its best. `None` before `min_steps` or when the minimum is not
    positive.
    """
    finite = _finite(observation, metric)
    points = finite.points
    if not points or points[-1][0] < min_steps:
        return None
    lowest = finite.prefix_min[-1]
    return points[-1][1] / lowest if lowest > 0 else None


def progress(observation: Observation) -> float | None:
    """Return the fraction of planned steps done, from 0 to 1, when the run's planned steps are known."""
    if not observation.max_steps:
        return None
    return min(observation.step / observation.max_steps, 1.0)


SIGNALS: dict[str, SignalSpec] = {
    "last": SignalSpec(last_value, "number", {"metric": str}, description="latest value of a metric"),
    "slope": SignalSpec(slope, "number", {"metric": str, "window_steps": int}, description="change per step over a window"),
    "relative_improvement": SignalSpec(
        relative_improvement,
        "number",
        {"metric": str, "window_steps": int},
        {"mode": "min"},
        description="relative improvement of the best value within a window; a plateau is a small value",
    ),
    "window_max": SignalSpec(
        functools.partial(window_extreme, largest=True), "number", {"metric": str, "window_steps": int},
        description="largest value within a window that the series spans",
    ),
    "window_min": SignalSpec(
        functools.partial(window_extreme, largest=False), "number", {"metric": str, "window_steps": int},
        description="smallest value within a window that the series spans",
    ),
    "nonfinite_streak": SignalSpec(nonfinite_streak, "number", {"metric": str}, description="consecutive NaN/inf points"),
    "divergence_ratio": SignalSpec(
        divergence_ratio, "number", {"metric": str}, {"min_steps": 0}, description="latest value over the minimum so far"
    ),
    "step": SignalSpec(lambda o: o.step, "number", description="global step reached"),
    "epoch": SignalSpec(lambda o: o.epoch, "number", description="epochs reached"),
    "progress": SignalSpec(progress, "number", description="fraction of the planned steps done"),
    "job_state": SignalSpec(lambda o: o.job_state, "label", description="running, succeeded, failed or cancelled"),
    "failure_kind": SignalSpec(lambda o: o.failure_kind, "label", description="oom, nan, timeout, crash, killed"),
    "failure_phase": SignalSpec(lambda o: o.failure_phase, "label", description="where an OOM happened"),
    "method": SignalSpec(lambda o: o.method, "label", description="sft, dpo or grpo"),
    "batch_size": SignalSpec(lambda o: o.per_device_train_batch_size, "number", description="batch per device"),
    "gradient_checkpointing": SignalSpec(lambda o: o.gradient_checkpointing, "flag", description="activation recomputation on"),
    "budget_left_minutes": SignalSpec(lambda o: o.budget_left_minutes, "number", description="minutes of budget left"),
    "runs_left": SignalSpec(lambda o: o.runs_left, "number", description="runs that may still be submitted"),
}
"""Every signal a rule may name, by name."""


def classify_failure_phase(message: str | None) -> str:
    """Guess where an out-of-memory error happened from its last error line.

    NOTE: this reads words in the message ("eval", "generate", "save"); a job script that reports the phase
    itself would be exact.
    """
    text = (message or "").lower()
    if "generat" in text:
        return "generation"
    if "eval" in text or "predict" in text:
        return "evaluation"
    if "save" in text or "checkpoint" in text or "safetensors" in text:
        return "saving"
    return "training"
