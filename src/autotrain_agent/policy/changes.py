"""Turn a verdict into the job config of the next run: a retry with changes, or an extension of a finished run."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StateError
from .rules import Action


@dataclass(frozen=True)
class Extension:
    """A new schedule that continues a finished run from its saved weights."""

    max_steps: int
    """Optimizer steps of the new run; always more than zero."""
    init_adapter_path: str
    """The checkpoint whose weights (LoRA adapter or full model) the new run starts from."""
    learning_rate_choice: str
    """The learning-rate schedule chosen, for the report."""
    optimizer_state: str = "reset"
    """`reset`: the optimizer starts fresh, because the old schedule had decayed to zero at its last step."""


def read_trainer_progress(checkpoint_dir: Path) -> tuple[int, int]:
    """Return `(global_step, max_steps)` from a checkpoint's `trainer_state.json`.

    Raises:
        StateError: If the file is missing or lacks either field.
    """
    path = Path(checkpoint_dir) / "trainer_state.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        return int(state["global_step"]), int(state["max_steps"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StateError(f"Cannot read the training progress from {str(path)!r}: {err}") from err


def check_resume_has_steps(checkpoint_dir: Path) -> int:
    """Return the steps a plain resume from `checkpoint_dir` would still train.

    Raises:
        StateError: If no steps remain: resuming a finished schedule ends at once, so extend it with
            `plan_extension` instead.
    """
    global_step, max_steps = read_trainer_progress(checkpoint_dir)
    remaining = max_steps - global_step
    if remaining <= 0:
        raise StateError(
            f"No steps remain in {str(checkpoint_dir)!r}: it is at step {global_step} of {max_steps}, so resuming "
            f"would train 0 steps. Plan a new schedule with `plan_extension` instead."
        )
    return remaining


def plan_extension(
    checkpoint_dir: Path, *, extra_steps: int | None = None, extra_epochs: float | None = None, learning_rate: float | None = None
) -> Extension:
    """Plan a new run that trains `extra_steps` (or `extra_epochs` of the old run's epoch length) from a checkpoint.

    The old run's steps per epoch are its `max_steps` over its `num_train_epochs` in `trainer_state.json`.

    Raises:
        StateError: If the checkpoint's progress is unreadable, or the request gives no positive step count.
    """
    global_step, max_steps = read_trainer_progress(checkpoint_dir)
    if extra_steps is None:
        state = json.loads((Path(checkpoint_dir) / "trainer_state.json").read_text(encoding="utf-8"))
        epochs = float(state.get("num_train_epochs") or 1.0)
        extra_steps = math.ceil(max_steps / epochs * (extra_epochs if extra_epochs is not None else 1.0))
    if extra_steps <= 0:
        raise StateError(f"An extension of {str(checkpoint_dir)!r} must train more than 0 steps, got {extra_steps}.")
    choice = (
        f"a fresh warmup and decay to {learning_rate:g}" if learning_rate else "a fresh warmup and decay at the old peak"
    ) + f", starting from the weights of step {global_step}"
    return Extension(max_steps=extra_steps, init_adapter_path=str(checkpoint_dir), learning_rate_choice=choice)


def resubmission_config(config: dict[str, Any], action: Action) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the next run's job config after a `resubmit` verdict, and the changes made (old and new values).

    `halve_batch` halves the per-device batch and doubles gradient accumulation, so the effective batch holds;
    at batch 1 it turns gradient checkpointing on instead.
    """
    new = dict(config)
    changes: dict[str, Any] = {}
    parameters = action.parameters
    if "learning_rate_factor" in parameters:
        new["learning_rate"] = float(config["learning_rate"]) * parameters["learning_rate_factor"]
    if parameters.get("halve_batch"):
        if config["per_device_train_batch_size"] > 1:
            new["per_device_train_batch_size"] = config["per_device_train_batch_size"] // 2
            new["gradient_accumulation_steps"] = config["gradient_accumulation_steps"] * 2
        else:
            new["gradient_checkpointing"] = True
    if parameters.get("gradient_checkpointing"):
        new["gradient_checkpointing"] = True
    if parameters.get("halve_eval_batch"):
        new["per_device_eval_batch_size"] = max(1, int(config.get("per_device_eval_batch_size", 8)) // 2)
    for key, value in new.items():
        if config.get(key) != value:
            changes[key] = {"from": config.get(key), "to": value}
    return new, changes


def extension_config(config: dict[str, Any], final_checkpoint: Path, action: Action) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the next run's job config after an `extend` verdict: a new schedule from the finished run's weights.

    Raises:
        StateError: If the finished run's step count is unknown, or the extension would train 0 steps.
    """
    old_steps = config.get("max_steps")
    steps = action.parameters.get("steps")
    if steps is None:
        if not old_steps:
            raise StateError("Cannot extend by a fraction of a run planned in epochs; use `steps` in the rule.")
        steps = math.ceil(old_steps * action.parameters["steps_fraction"])
    if steps <= 0:
        raise StateError(f"An extension must train more than 0 steps, got {steps}.")
    new = dict(config, max_steps=steps)
    if config.get("lora"):
        new["init_adapter_path"] = str(final_checkpoint)
    else:
        new["model_path"] = str(final_checkpoint)
    changes = {
        "max_steps": {"from": old_steps, "to": steps},
        "starts_from": str(final_checkpoint),
        "optimizer_state": "reset",
        "learning_rate": f"a fresh warmup and decay at the old peak {config.get('learning_rate')}",
    }
    return new, changes
