"""autotrain-agent: plan, run, monitor, evaluate and report fine-tuning experiments."""

import importlib
import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

# Public names and the modules that define them. They load on first access, so `autotrain-agent --help` does not
# import smolagents, torch and transformers.
_EXPORTS = {
    "ExperimentResult": "loop",
    "TerminalState": "loop",
    "create_experiment": "api",
    "experiment_tools": "api",
    "inspect_experiment": "api",
    "list_experiments": "api",
    "resume_experiment": "api",
    "run_experiment": "api",
    "Settings": "config",
    "PlanOverrides": "recipes",
    "Plan": "state",
    "Experiment": "state",
    "build_llm": "llm",
    "parse_llm_spec": "llm",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
