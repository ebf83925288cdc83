"""Call every reward function once, before launch, with the arguments TRL will pass it during training."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from autotrain_agent.errors import RewardFunctionError
from autotrain_agent.rewards.adapter import RewardAdapter

logger = logging.getLogger(__name__)

# Sample completions for the dry run on training rows: an empty one, prose, and a fenced code block.
SAMPLE_COMPLETIONS = ("", "The answer is 4.", "```python\ndef solve(x):\n    return x\n```")


@dataclass
class RewardDryRun:
    """Outcome of one reward function's dry run."""

    name: str
    """The reward function's name, as TRL logs it."""
    rewards: list[float | None]
    """The returned rewards, after the adapter's checks."""
    adaptations: list[str] = field(default_factory=list)
    """Argument changes the adapter made, one sentence each; empty without adaptation."""


def dry_run_reward_functions(
    functions: Sequence[Callable],
    *,
    prompts: list,
    completions: list,
    completion_ids: list[list[int]],
    columns: Mapping[str, list] | None = None,
    adapt: bool = False,
) -> list[RewardDryRun]:
    """Call each reward function once through a `RewardAdapter`, exactly as TRL 1.16's GRPO trainer calls it.

    The keywords are `prompts`, `completions`, `completion_ids`, the other dataset columns, and TRL's
    `trainer_state`, `log_extra` and `log_metric`. Every function is tried, so one error lists every failure.

    Args:
        functions: Reward functions, plain or already wrapped in `RewardAdapter`.
        prompts: One prompt per completion: strings, or lists of message dicts for a conversational dataset.
        completions: Completions in the shape TRL passes: strings, or lists of message dicts.
        completion_ids: Token ids of each completion.
        columns: The dataset's other columns, one value per completion.
        adapt: Wrap plain functions with adaptation on: message text instead of message lists, unknown keywords
            dropped.

    Returns:
        One result per function, in order.

    Raises:
        RewardFunctionError: If any function raised or returned an invalid result; the message names each function
            and its exact error. Nothing else is raised for a failing function.
    """
    from transformers import TrainerState

    keywords = {
        "prompts": prompts,
        "completions": completions,
        "completion_ids": completion_ids,
        **dict(columns or {}),
        "trainer_state": TrainerState(),
        "log_extra": lambda *args, **kwargs: None,
        "log_metric": lambda *args, **kwargs: None,
    }
    results, failures = [], []
    for function in functions:
        adapter = function if isinstance(function, RewardAdapter) else RewardAdapter(function, adapt=adapt)
        try:
            rewards = adapter(**keywords)
        except RewardFunctionError as err:
            failures.append(str(err))
            continue
        except Exception as err:  # noqa: BLE001 - any error of user code must be reported with the function's name.
            failures.append(f"Reward function {adapter.name!r} raised {type(err).__name__}: {err}")
            continue
        results.append(RewardDryRun(name=adapter.name, rewards=rewards, adaptations=list(adapter.adaptations)))
        logger.debug("Reward function %s passed its dry run with %s", adapter.name, rewards)

    if failures:
        hint = "" if adapt else " Fix the function, or turn on reward adaptation to pass message text and drop unknown keywords."
        raise RewardFunctionError("The reward dry run failed: " + " ".join(failures) + hint)
    return results


def dry_run_on_rows(functions: Sequence[Callable], rows: Sequence[Mapping], *, adapt: bool = False) -> list[RewardDryRun]:
    """Run `dry_run_reward_functions` on sample completions for the first training rows, in the rows' prompt shape.

    Each of the first rows gets one sample completion from `SAMPLE_COMPLETIONS`, as a message list when its prompt is
    conversational. The other columns are passed with the rows' own values.

    Raises:
        RewardFunctionError: If a row has no `prompt`, or a reward function fails.
    """
    sample = list(rows[: len(SAMPLE_COMPLETIONS)])
    if not sample or any("prompt" not in row for row in sample):
        raise RewardFunctionError("The reward dry run needs training rows with a `prompt` column; validate the dataset first.")

    prompts = [row["prompt"] for row in sample]
    completions = [
        [{"role": "assistant", "content": answer}] if isinstance(prompt, list) else answer
        for prompt, answer in zip(prompts, SAMPLE_COMPLETIONS)
    ]
    completion_ids = [list(range(1, len(answer) % 7 + 2)) for answer in SAMPLE_COMPLETIONS[: len(sample)]]
    other_keys = [key for key in sample[0] if key not in ("prompt", "completion", "completion_ids")]
    columns = {key: [row.get(key) for row in sample] for key in other_keys}
    return dry_run_reward_functions(
        functions, prompts=prompts, completions=completions, completion_ids=completion_ids, columns=columns, adapt=adapt
    )


def dry_run_for_run(config: Mapping) -> list[RewardDryRun]:
    """Dry-run the reward functions of a GRPO run config on the first rows of its training file.

    The functions are loaded exactly as the job script loads them, with the config's adaptation setting.

    Raises:
        RewardFunctionError: If a function cannot be loaded, raises, or returns an invalid result.
    """
    import json
    from pathlib import Path

    from autotrain_agent.rewards.registry import load_reward_functions

    adapt = bool(config.get("adapt_reward_functions"))
    functions = load_reward_functions(list(config.get("reward_functions") or []), adapt=adapt)
    if not functions:
        raise RewardFunctionError("A GRPO run needs at least one reward function; pass `--reward`.")
    rows = []
    with open(Path(config["dataset_path"]), encoding="utf-8") as file:
        for line in file:
            rows.append(json.loads(line))
            if len(rows) == len(SAMPLE_COMPLETIONS):
                break
    return dry_run_on_rows(functions, rows, adapt=adapt)
