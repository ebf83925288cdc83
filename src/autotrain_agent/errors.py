"""Every exception that autotrain-agent raises on purpose."""


class AutotrainError(Exception):
    """Base class of every error raised by autotrain-agent."""


class ConfigError(AutotrainError, ValueError):
    """A setting, flag or plan value is invalid."""


class ModelNotFoundError(AutotrainError, LookupError):
    """A model reference resolves to no Hub repository, local folder or shipped package."""


class DatasetError(AutotrainError, ValueError):
    """A dataset is missing, unreadable or does not fit the training method."""


class StateError(AutotrainError, RuntimeError):
    """The persisted experiment state is unreadable, locked or in the wrong stage."""


class ExperimentNotFoundError(StateError, LookupError):
    """No experiment with the requested id is saved under the output folder."""


class ExperimentLockedError(StateError):
    """Another process holds the lock of this experiment."""


class BackendError(AutotrainError, RuntimeError):
    """A training backend failed to start, inspect or stop a job."""


class EvaluationError(AutotrainError, RuntimeError):
    """A benchmark could not produce a trustworthy score."""


class ConversionError(AutotrainError, RuntimeError):
    """A model could not be converted between formats (Hugging Face, GGUF)."""


class IncompleteMetricsError(AutotrainError, RuntimeError):
    """A metrics store returned fewer points than it holds, so no rule may decide on the series."""


class UnsupportedTokenizerError(ConversionError):
    """llama.cpp's converter does not recognise a model's BPE pre-tokenizer, so it cannot write a GGUF vocabulary."""


class HarnessCalibrationError(EvaluationError):
    """Canonical solutions failed or timed out in the evaluation harness, so its scores cannot be trusted."""

    def __init__(self, message: str, *, outcomes: dict[str, str]):
        super().__init__(message)
        self.outcomes = outcomes
        """Outcome of each canonical solution by task id: `passed`, `failed`, `timed_out` or `error`."""


class ApprovalRejectedError(AutotrainError, PermissionError):
    """The approval gate rejected a submission, or nobody answered; nothing was submitted."""


class HardwareError(ConfigError):
    """No hardware flavor fits the model, or a requested flavor is unknown."""


class JobsRequestError(AutotrainError, RuntimeError):
    """Hugging Face Jobs rejected a request for a reason that retrying cannot fix (authentication, permission,
    quota or an invalid job spec)."""


class JobMismatchError(BackendError):
    """A backend created a job whose flavor, timeout or secrets differ from the request, and cancelled it."""


class PolicyError(ConfigError):
    """A policy rule file is invalid; the message names the file, the rule and the field."""


class PublishError(AutotrainError, RuntimeError):
    """A model card is invalid, or the Hub rejected an upload."""


class AdapterNotAppliedError(EvaluationError):
    """The model under evaluation gives the same logits as its base model, so a LoRA adapter changed nothing."""


class CheckpointSaveError(AutotrainError, RuntimeError):
    """A model could not be saved and reloaded as a checkpoint, so a run would fail at its first save."""


class QuickTestFailedError(AutotrainError, RuntimeError):
    """The quick test run before a paid full run failed, so the full run was not submitted."""


class RewardFunctionError(AutotrainError, ValueError):
    """A GRPO reward function failed, or returned something other than one finite value or `None` per completion."""
