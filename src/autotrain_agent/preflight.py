"""Checks on the plan's inputs that take milliseconds, run before the plan is saved or anything is built."""

from __future__ import annotations

from pathlib import Path

from .errors import DatasetError, ModelNotFoundError
from .plan_lint import check_training_config, read_model_type
from .recipes import BUILTIN_CODE_DATASET
from .state import Plan

DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".arrow")


def check_plan_inputs(plan: Plan, *, hub_reachable: bool) -> None:
    """Raise if the plan's model or dataset cannot be found, or the plan linter flags its training settings.

    Only existence is checked here; formats are checked by `validate_dataset`. The training settings go through
    the plan linter when the model's config.json is on this machine.

    Raises:
        ModelNotFoundError: If the model is a missing local path, or a Hub id that is neither cached, shipped by an
            installed package, nor reachable.
        DatasetError: If the dataset is a missing local path, or a Hub id while the Hub is unreachable.
        ConfigError: If the plan linter finds settings known to break training.
        RewardFunctionError: If a reward function cannot be imported. Functions are called only later, in the
            dry run before submission, once the training rows exist.
    """
    _check_model(plan.base_model, hub_reachable=hub_reachable)
    _check_dataset(plan.dataset.reference, hub_reachable=hub_reachable)
    _check_reward_functions(plan.reward_functions)
    check_training_config(plan_training_settings(plan))


def plan_training_settings(plan: Plan) -> dict:
    """Return the settings that `tools/train.py` will use for `plan`, as the plan linter reads them.

    The job script trains in fp32 on a CPU and in bf16 on a GPU, with the attention that transformers picks.
    """
    return {
        "model_type": _model_type(plan.base_model),
        "fp16": False,
        "bf16": plan.backend != "local",
        "per_device_train_batch_size": plan.hyperparameters.per_device_train_batch_size,
    }


def _model_type(reference: str) -> str | None:
    if Path(reference).expanduser().is_dir():
        return read_model_type(reference)
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = try_to_load_from_cache(reference, "config.json")
    except HFValidationError:
        return None
    return read_model_type(Path(cached).parent) if isinstance(cached, str) else None


def _looks_like_path(reference: str) -> bool:
    return reference.startswith((".", "/", "~")) or reference.lower().endswith(DATA_SUFFIXES) or reference.count("/") > 1


def _check_model(reference: str, *, hub_reachable: bool) -> None:
    from .model_source import SHIPPED_MODELS

    path = Path(reference).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"The model folder {reference!r} has no config.json; pass a Hugging Face model folder to `--model`.")
        return
    if _looks_like_path(reference):
        raise ModelNotFoundError(f"The model folder {reference!r} does not exist; check the path given to `--model`.")
    if hub_reachable or reference in SHIPPED_MODELS or _is_cached_on_hub(reference):
        return
    raise ModelNotFoundError(
        f"Model {reference!r} was not found: the Hub is unreachable, it is not in the Hugging Face cache, and no "
        f"installed package ships it. Pass `--model` with a local Hugging Face model folder, or run where the Hub "
        f"is reachable."
    )


def _is_cached_on_hub(reference: str) -> bool:
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        return isinstance(try_to_load_from_cache(reference, "config.json"), str)
    except HFValidationError:
        return False


def _check_dataset(reference: str, *, hub_reachable: bool) -> None:
    if reference == BUILTIN_CODE_DATASET:
        return
    path = Path(reference).expanduser()
    if path.exists():
        return
    if _looks_like_path(reference):
        raise DatasetError(f"The dataset file or folder {reference!r} does not exist; check the path given to `--dataset`.")
    if not hub_reachable:
        raise DatasetError(
            f"Dataset {reference!r} looks like a Hub id, but the Hub is unreachable; pass `--dataset` with a local "
            f"JSONL, JSON, CSV or Parquet file."
        )


def _check_reward_functions(specs: list[str]) -> None:
    from .rewards.registry import load_reward_function

    for spec in specs:
        load_reward_function(spec)
