"""Wrap GRPO reward functions so that a wrong result fails loudly before TRL turns it into a training signal.

TRL 1.16 calls every reward function with keyword arguments only: `prompts`, `completions`, `completion_ids`, every
other dataset column as a list, and `trainer_state`, `log_extra` and `log_metric`. Completions are strings for
string prompts and lists of message dicts for conversational prompts. It accepts `None` for a completion that a
function does not score.
"""

from __future__ import annotations

import inspect
import logging
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from autotrain_agent.errors import RewardFunctionError

logger = logging.getLogger(__name__)

RewardFunction = Callable[..., Sequence[float | None]]


class RewardAdapter:
    """A reward function wrapped with checks on its output and, optionally, adaptation of its arguments.

    Every call must return one finite number or `None` per completion. A single value is never broadcast to the
    batch, because one score for a whole batch would give every completion the same advantage.

    With `adapt=True`, conversational prompts and completions are passed as their message text, and keyword
    arguments that the function's signature does not accept are dropped. Each adaptation made is listed once in
    `adaptations`.
    """

    def __init__(self, function: RewardFunction, *, adapt: bool = False):
        if not callable(function):
            raise RewardFunctionError(f"A reward function must be callable, got {function!r}.")
        self.function = function
        self.name = reward_function_name(function)
        # TRL names the logged metrics `rewards/<__name__>/mean`, so the wrapper keeps the function's name.
        self.__name__ = self.name
        self.adapt = adapt
        self.adaptations: list[str] = []

    def __call__(self, *, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        """Call the wrapped function with TRL's arguments and return its checked rewards.

        Raises:
            RewardFunctionError: If the result is not a list with one finite number or `None` per completion.
        """
        arguments = {"prompts": prompts, "completions": completions, **kwargs}
        if self.adapt:
            arguments = self._adapt_arguments(arguments)
        rewards = self.function(**arguments)
        return check_rewards(rewards, expected_count=len(completions), name=self.name)

    def _adapt_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        adapted = dict(arguments)
        for key in ("prompts", "completions"):
            if _is_conversational(adapted[key]):
                adapted[key] = [message_text(messages) for messages in adapted[key]]
                self._note(f"passed the message text of conversational `{key}`")

        accepted = _accepted_keywords(self.function)
        if accepted is not None:
            dropped = sorted(key for key in adapted if key not in accepted)
            for key in dropped:
                del adapted[key]
            if dropped:
                self._note(f"dropped keywords the function does not accept: {', '.join(dropped)}")
        return adapted

    def _note(self, adaptation: str) -> None:
        if adaptation not in self.adaptations:
            logger.info("Reward function %s: %s", self.name, adaptation)
            self.adaptations.append(adaptation)


def check_rewards(rewards: object, *, expected_count: int, name: str) -> list[float | None]:
    """Return `rewards` unchanged if it holds one finite number or `None` per completion.

    Args:
        rewards: What the reward function returned.
        expected_count: Completions in the batch.
        name: The reward function's name, for the error message.

    Raises:
        RewardFunctionError: If `rewards` is not a list or tuple (a bare number included), has another length than
            `expected_count`, or holds a value that is not a finite number or `None`.
    """
    if hasattr(rewards, "tolist") and not isinstance(rewards, (list, tuple)):
        rewards = rewards.tolist()
    if not isinstance(rewards, (list, tuple)):
        raise RewardFunctionError(
            f"Reward function {name!r} returned {type(rewards).__name__} {rewards!r}, not a list: {expected_count} "
            f"values expected, one per completion. A single value is never broadcast to the batch; return a list, "
            f"with None for completions the function does not score."
        )
    if len(rewards) != expected_count:
        raise RewardFunctionError(
            f"Reward function {name!r} returned the wrong number of rewards: {expected_count} expected, "
            f"{len(rewards)} received. Return one value per completion, with None for completions it does not score."
        )
    for index, value in enumerate(rewards):
        if value is None:
            continue
        if not isinstance(value, numbers.Real):
            raise RewardFunctionError(
                f"Reward function {name!r} returned {type(value).__name__} {value!r} at index {index}; "
                f"each reward must be a number or None."
            )
        if not math.isfinite(value):
            raise RewardFunctionError(
                f"Reward function {name!r} returned the non-finite value {value!r} at index {index}; return a "
                f"finite number, or None for a completion it does not score."
            )
    return rewards if isinstance(rewards, list) else list(rewards)


def reward_function_name(function: Callable) -> str:
    """Return the name TRL gives a reward function: its `__name__`, else its class name."""
    return getattr(function, "__name__", None) or type(function).__name__


def message_text(value: object) -> object:
    """Return the joined `content` of a list of message dicts; any other value is returned unchanged."""
    if isinstance(value, list) and all(isinstance(message, dict) for message in value):
        return "\n".join(str(message.get("content") or "") for message in value)
    return value


def _is_conversational(values: object) -> bool:
    return (
        isinstance(values, list)
        and bool(values)
        and all(isinstance(item, list) and all(isinstance(message, dict) for message in item) for item in values)
    )


def _accepted_keywords(function: Callable) -> set[str] | None:
    """Return the keyword names the function accepts, or `None` when it takes `**kwargs` or has no signature."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return {
        parameter.name
        for parameter in parameters
        if parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
