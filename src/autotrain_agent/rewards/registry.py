"""Resolve reward function specs (builtin names, `module:function`, `file.py:function`) to adapted callables."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path

from autotrain_agent.errors import RewardFunctionError
from autotrain_agent.rewards.adapter import RewardAdapter

BUILTIN_REWARDS = {
    "code_pass_fraction": "autotrain_agent.rewards.code:code_pass_fraction",
    "code_format": "autotrain_agent.rewards.code:code_format",
}
"""Reward functions shipped with autotrain-agent, by the name a plan uses."""


def load_reward_functions(specs: list[str], *, adapt: bool = False) -> list[RewardAdapter]:
    """Import every reward function named in `specs` and wrap each in a `RewardAdapter`.

    Args:
        specs: Builtin names (`code_pass_fraction`, `code_format`), `package.module:function`, or
            `path/to/file.py:function`.
        adapt: Turn on argument adaptation in every adapter.

    Raises:
        RewardFunctionError: If a spec is malformed, or its module, file or function cannot be found.
    """
    return [RewardAdapter(load_reward_function(spec), adapt=adapt) for spec in specs]


def load_reward_function(spec: str) -> Callable:
    """Import the reward function that `spec` names; see `load_reward_functions` for the spec forms.

    Raises:
        RewardFunctionError: If the spec is malformed, or its module, file or function cannot be found.
    """
    target = BUILTIN_REWARDS.get(spec, spec)
    module_name, separator, attribute = target.rpartition(":")
    if not separator or not module_name or not attribute:
        raise RewardFunctionError(
            f"Invalid reward function {spec!r}: use a builtin name ({', '.join(BUILTIN_REWARDS)}), "
            f"`module:function` or `file.py:function`."
        )

    if module_name.endswith(".py"):
        module = _import_file(Path(module_name).expanduser(), spec)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise RewardFunctionError(f"Cannot import module {module_name!r} of reward function {spec!r}: {err}") from err
    function = getattr(module, attribute, None)
    if not callable(function):
        raise RewardFunctionError(f"Reward function {spec!r} not found: {module_name!r} defines no callable {attribute!r}.")
    return function


def _import_file(path: Path, spec: str):
    if not path.is_file():
        raise RewardFunctionError(f"The file {str(path)!r} of reward function {spec!r} does not exist; check the path.")
    module_spec = importlib.util.spec_from_file_location(f"autotrain_user_rewards_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module
