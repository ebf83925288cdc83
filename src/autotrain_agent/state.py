"""The experiment as data: plan, runs, checkpoints, scores and decisions.

Everything the agent records lives in these models and is persisted by `ExperimentStore`; the report and the
planner read this state, never log text.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Method = Literal["sft", "dpo", "grpo"]
EvalEngine = Literal["llama.cpp", "transformers"]


def utc_now() -> dt.datetime:
    """Return the current time in UTC, with second precision."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class Stage(str, Enum):
    """A step of the experiment's life, in the order the rule-based planner runs them."""

    PLAN = "plan"
    VALIDATE = "validate"
    EVALUATE_BASE = "evaluate_base"
    TRAIN = "train"
    EVALUATE_RUN = "evaluate_run"
    EXPORT = "export"
    REPORT = "report"


# Stages that only plans asking for them contain; `Plan.stages` leaves them out by default.
OPTIONAL_STAGES = frozenset({Stage.EXPORT})


def with_export_stage(stages: list[Stage]) -> list[Stage]:
    """Return `stages` with `Stage.EXPORT` placed before `Stage.REPORT` (or last), once."""
    if Stage.EXPORT in stages:
        return list(stages)
    if Stage.REPORT in stages:
        index = stages.index(Stage.REPORT)
        return [*stages[:index], Stage.EXPORT, *stages[index:]]
    return [*stages, Stage.EXPORT]


class ExperimentStatus(str, Enum):
    """Overall status of an experiment."""

    ACTIVE = "active"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    NEEDS_APPROVAL = "needs_approval"
    """A paid submission was rejected or timed out without a decision; rerunning requests approval again."""


TERMINAL_STATUSES = frozenset(
    {ExperimentStatus.SUCCEEDED, ExperimentStatus.FAILED, ExperimentStatus.STOPPED, ExperimentStatus.NEEDS_APPROVAL}
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraSettings(_Model):
    """LoRA adapter settings passed to PEFT."""

    r: int = Field(16, gt=0)
    """Adapter rank."""
    alpha: int = Field(32, gt=0)
    """Scaling numerator; the update is scaled by `alpha / r`."""
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    """Dropout on the adapter input."""
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    """Module names that get adapters, or every linear layer."""


class Hyperparameters(_Model):
    """Training hyperparameters, named as in TRL's configs."""

    max_steps: int | None = Field(30, gt=0)
    """Optimizer steps; `None` trains for `num_train_epochs` instead."""
    num_train_epochs: float = Field(1.0, gt=0)
    """Epochs over the dataset, used only when `max_steps` is `None`."""
    per_device_train_batch_size: int = Field(2, gt=0)
    """Sequences per forward pass on one device."""
    gradient_accumulation_steps: int = Field(2, gt=0)
    """Forward passes per optimizer step."""
    learning_rate: float = Field(2e-4, gt=0)
    """Peak learning rate."""
    lr_scheduler_type: str = "cosine"
    """A transformers scheduler name."""
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    """Fraction of the steps spent warming up."""
    max_length: int = Field(512, gt=0)
    """Tokens per sequence; longer sequences are truncated by TRL."""
    logging_steps: int = Field(1, gt=0)
    """Steps between metric logs."""
    save_steps: int = Field(10, gt=0)
    """Steps between checkpoints."""
    seed: int = 0
    """Seed for data order and initialisation."""
    completion_only_loss: bool = True
    """Compute the loss on the final assistant reply only, not on the prompt."""
    group_by_length: bool = True
    """Batch sequences of similar length together, so less compute goes to padding."""
    beta: float | None = Field(None, ge=0)
    """DPO: strength of the preference against the reference model. GRPO: weight of the KL penalty, where 0 loads
    no reference model. `None` for SFT."""
    num_generations: int | None = Field(None, ge=2)
    """GRPO: completions sampled per prompt and compared as one group."""
    max_completion_length: int | None = Field(None, gt=0)
    """GRPO: most tokens generated per completion."""
    temperature: float | None = Field(None, gt=0)
    """GRPO: sampling temperature of the completions."""

    @property
    def effective_batch_size(self) -> int:
        """Sequences per optimizer step on one device."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps


class DatasetSpec(_Model):
    """Source of the training data and the mapping of its columns onto the method's."""

    reference: str
    """A Hub id, a local file or folder, or `builtin:code-functions` for the offline code dataset."""
    config: str | None = None
    """The Hub dataset configuration, if any."""
    split: str = "train"
    """The split to train on."""
    column_mapping: dict[str, str] = Field(default_factory=dict)
    """Source column name to the column name that the method expects."""
    max_rows: int | None = None
    """Use at most this many rows; `None` uses all."""


class BenchmarkSpec(_Model):
    """One benchmark that scores the base model and each fine-tuned model."""

    name: Literal["humaneval"] = "humaneval"
    """The benchmark."""
    limit: int | None = None
    """Evaluate the first `limit` problems by task number; `None` evaluates all."""
    max_new_tokens: int = Field(384, gt=0)
    """Generation budget per problem."""
    primary: bool = False
    """This benchmark's score picks each run's best checkpoint; when no benchmark is marked, the first one does."""


class Plan(_Model):
    """Choices of an experiment, made before anything runs."""

    goal: str
    """The goal as the user wrote it."""
    base_model: str
    """Model reference: a Hub id or a local folder."""
    dataset: DatasetSpec
    """Training data."""
    method: Method = "sft"
    """Training method."""
    lora: LoraSettings | None = Field(default_factory=LoraSettings)
    """LoRA settings; `None` means a full fine-tune."""
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    """Training hyperparameters."""
    benchmarks: list[BenchmarkSpec] = Field(default_factory=lambda: [BenchmarkSpec()], min_length=1)
    """Benchmarks run on the base model and on each run; at most one is `primary`."""
    eval_engine: EvalEngine = "llama.cpp"
    """Generation engine for evaluation; base and fine-tuned models always use the same one."""
    checkpoints_to_evaluate: Literal["final", "all"] = "final"
    """Score only each run's final checkpoint, or every saved checkpoint so the best one can be picked."""
    backend: Literal["local", "hf-jobs"] = "local"
    """Backend of training jobs: this machine (free) or Hugging Face Jobs (paid, always approved)."""
    hardware: str = "cpu"
    """Hardware flavor of the backend, e.g. `cpu` locally or `a10g-large` on Hugging Face Jobs."""
    stages: list[Stage] = Field(default_factory=lambda: [stage for stage in Stage if stage not in OPTIONAL_STAGES])
    """Stages in the order they run."""
    reasons: list[str] = Field(default_factory=list)
    """Reason for each choice, for the user and the report."""
    estimated_minutes: float | None = None
    """Estimated wall time of the whole experiment."""
    num_parameters: int | None = None
    """Parameter count of the base model, once resolved; sizes the hardware and the estimate."""
    parameter_source: str | None = None
    """Source of `num_parameters`: `--params`, Hub metadata, local weights or the model name."""
    hub_repo: str | None = None
    """Hub repository that receives checkpoints of paid jobs, e.g. `me/qwen3-code-sft`."""
    quick_test_samples: int | None = None
    """Samples of the quick test run before a paid full run; `None` skips the quick test."""
    max_runs: int = Field(4, gt=0)
    """Most training runs the experiment may submit, policy retries and extensions included."""
    budget_minutes: float | None = Field(None, gt=0)
    """Training wall time the experiment may spend over all runs; `None` sets no limit."""
    reward_functions: list[str] = Field(default_factory=list)
    """GRPO reward functions: builtin names such as `code_pass_fraction`, `module:function` or `file.py:function`."""
    adapt_reward_functions: bool = False
    """Pass message text instead of message lists to reward functions and drop keywords they do not accept."""

    @field_validator("benchmarks")
    @classmethod
    def _at_most_one_primary(cls, benchmarks: list[BenchmarkSpec]) -> list[BenchmarkSpec]:
        primaries = [benchmark.name for benchmark in benchmarks if benchmark.primary]
        if len(primaries) > 1:
            raise ValueError(f"mark at most one benchmark as primary; {len(primaries)} are: {primaries}")
        return benchmarks

    def primary_benchmark_index(self) -> int:
        """Return the position in `benchmarks` of the one whose score picks the best checkpoint."""
        return next((index for index, benchmark in enumerate(self.benchmarks) if benchmark.primary), 0)


class Score(_Model):
    """One benchmark result of one model."""

    benchmark: str
    """Benchmark name, e.g. `humaneval`."""
    metric: str
    """Metric name, e.g. `pass@1`."""
    value: float
    """The metric's value."""
    num_samples: int
    """Number of problems scored."""
    stderr: float | None = None
    """Standard error of `value`."""
    num_passed: int | None = None
    """Problems solved, for pass@1."""
    engine: str | None = None
    """Generation engine that produced the completions."""
    details_path: str | None = None
    """JSONL file with one line per problem."""
    task_ids: list[str] = Field(default_factory=list)
    """The problems scored, in order."""
    duration_s: float | None = None
    """Wall time of generation plus execution."""
    harness: str | None = None
    """Module that executed and scored the answers."""
    samples_per_problem: int = 1
    """Answers generated per problem; 1 for greedy decoding."""
    pass_at_k: dict[str, float] = Field(default_factory=dict)
    """Unbiased pass@k estimates by name, such as `pass@10`, when several samples were drawn."""


class Checkpoint(_Model):
    """A saved state of a run's weights."""

    step: int
    """Optimizer step at which it was saved."""
    path: str
    """Local folder (adapter or full weights)."""
    scores: list[Score] = Field(default_factory=list)
    """Benchmark results of this checkpoint."""
    eval_loss: float | None = None
    """Evaluation loss logged at or before this step, when the run had an evaluation set; breaks score ties."""


RunStatus = Literal["pending", "submitted", "running", "succeeded", "failed", "cancelled"]
FailureKind = Literal["oom", "nan", "timeout", "crash", "killed", "cancelled"]


class Failure(_Model):
    """Cause of a failed run."""

    kind: FailureKind
    """Failure class, used by policy rules."""
    message: str
    """The last error line or a summary."""


class PolicyVerdict(_Model):
    """A policy rule's verdict on a run, kept on the run so that a restarted agent acts on it exactly once."""

    rule: str
    """Name of the rule that decided."""
    action: Literal["continue", "stop", "extend", "resubmit", "evaluate_checkpoint", "pick_best_checkpoint", "export"]
    """Action the rule decided."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    """The action's parameters, e.g. `learning_rate_factor`."""
    step: int
    """Global step the rule saw last."""
    phase: Literal["running", "end"]
    """Whether the job was still running or had ended."""
    evidence: dict[str, Any] = Field(default_factory=dict)
    """Each comparison of the rule and the signal value it saw."""
    description: str = ""
    """The rule's description: why it acts and what to do next."""
    applied: bool = False
    """Whether the follow-up run was created; set in the same save as that run."""


class Run(_Model):
    """One training attempt of the experiment."""

    run_id: str
    """Stable id; jobs carry it so a restarted agent re-attaches instead of resubmitting."""
    title: str
    """Human-readable title for the report."""
    parent_run_id: str | None = None
    """The run this one continues or retries."""
    config: dict[str, Any] = Field(default_factory=dict)
    """The job script's configuration as submitted."""
    backend: str = "local"
    """Backend name."""
    job_id: str | None = None
    """Backend job id, set once submitted."""
    hardware: str = "cpu"
    """Hardware flavor."""
    status: RunStatus = "pending"
    """Lifecycle status."""
    output_dir: str
    """Folder that receives checkpoints, logs and status files."""
    log_path: str | None = None
    """The job's log file."""
    trackio_project: str
    """Trackio project that contains the run's metrics."""
    trackio_run: str
    """Trackio run name."""
    submitted_at: dt.datetime | None = None
    """When the job was submitted."""
    finished_at: dt.datetime | None = None
    """When the job reached a terminal status."""
    estimated_minutes: float | None = None
    """Estimate made before submission."""
    actual_minutes: float | None = None
    """Measured wall time."""
    cost_usd: float = 0.0
    """Money spent; zero on the local backend."""
    estimated_cost_usd: float = 0.0
    """Cost approved before submission; counts as committed until the run ends."""
    job_url: str | None = None
    """Web page of the job, for backends that have one."""
    metrics_summary: dict[str, float] = Field(default_factory=dict)
    """Last and best values of the main metrics, e.g. `final_loss`, `min_loss`."""
    checkpoints: list[Checkpoint] = Field(default_factory=list)
    """Saved checkpoints, the final one last."""
    failure: Failure | None = None
    """Set when `status` is `failed`."""
    verdict: PolicyVerdict | None = None
    """The policy verdict that ended or followed this run, if any."""
    changes: dict[str, Any] = Field(default_factory=dict)
    """Changes a policy made to the parent run's config: key to `{from, to}`."""
    best_checkpoint_path: str | None = None
    """The scored checkpoint with the best benchmark score, once checkpoints are compared."""


class GgufFile(_Model):
    """One exported GGUF file and what its verification found."""

    path: str
    """Path of the file."""
    quant_type: str
    """llama.cpp file type, such as F16 or Q4_K_M."""
    size_bytes: int
    """File size."""
    bits_per_weight: float
    """Tensor bytes times 8 over the number of weights."""
    tensor_types: dict[str, int] = Field(default_factory=dict)
    """Number of tensors of each GGUF tensor type."""
    fallback_tensors: int | None = None
    """Matrices stored in a type other than the file type's own, as when rows are not a multiple of 256."""
    probes_match: bool = False
    """The token probes gave the same ids in llama.cpp and transformers."""
    greedy_match: bool | None = None
    """Greedy tokens equal those of transformers; `None` where not compared."""
    sample: str = ""
    """Text llama.cpp generated from the fixed verification prompt."""


class ExportRecord(_Model):
    """The exported model: merged folder, GGUF files and where they were published."""

    run_id: str | None = None
    """The run whose checkpoint was exported."""
    checkpoint_path: str | None = None
    """The exported checkpoint: the run's best one, else its last; `None` in records saved before it was kept."""
    merged_dir: str
    """Hugging Face folder with the merged full weights."""
    files: list[GgufFile] = Field(default_factory=list)
    """GGUF files, F16 first."""
    duration_s: float | None = None
    """Seconds from conversion to the last verification."""
    merge_base: str | None = None
    """The base the adapter was merged onto, when it was merged."""
    merge_parity: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Token agreement and KL divergence of each merge candidate against the adapter on its training base."""
    published: dict[str, str] = Field(default_factory=dict)
    """Repository id (or folder) by kind: `model`, `gguf`."""


class Decision(_Model):
    """Something decided by a policy rule, the planner or a human, with its evidence."""

    at: dt.datetime = Field(default_factory=utc_now)
    """When it was decided."""
    by: Literal["planner", "policy", "human", "system"]
    """Who decided."""
    action: str
    """Action decided, e.g. `call validate_dataset()`."""
    reason: str
    """Why, in one sentence."""
    evidence: dict[str, Any] = Field(default_factory=dict)
    """The numbers the decision saw."""


class ApprovalRecord(_Model):
    """One answer of the approval gate, with the numbers the approver saw."""

    at: dt.datetime = Field(default_factory=utc_now)
    """When the answer was given."""
    run_id: str
    """The run that asked to be submitted."""
    approved: bool
    """Whether the submission went ahead."""
    approver: str
    """Who or what answered: `console`, `budget`, `callback` or `none`."""
    reason: str
    """Why, in one sentence; a rejection always has one."""
    request: dict[str, Any] = Field(default_factory=dict)
    """The request as shown: model, flavor, price, estimated time and cost, timeout, budget left."""


class Experiment(_Model):
    """One planned fine-tune with its goal, plan, runs and results."""

    id: str
    """Slug `<model>-<dataset>-<method>`; names the state folder and the report."""
    goal: str
    """The user's goal."""
    created_at: dt.datetime = Field(default_factory=utc_now)
    """Creation time."""
    updated_at: dt.datetime = Field(default_factory=utc_now)
    """Last save time."""
    plan: Plan
    """The plan."""
    status: ExperimentStatus = ExperimentStatus.ACTIVE
    """Overall status."""
    completed_stages: list[Stage] = Field(default_factory=list)
    """Stages finished so far; a resumed experiment skips them."""
    model_notes: list[str] = Field(default_factory=list)
    """Provenance of the base model."""
    model_path: str | None = None
    """Local Hugging Face folder of the base model, once resolved."""
    dataset_path: str | None = None
    """Local prepared training file, once validated."""
    dataset_provenance: dict[str, Any] = Field(default_factory=dict)
    """Provenance of the training data: how it was built or loaded."""
    validation: dict[str, Any] | None = None
    """The dataset validation result."""
    baseline_scores: list[Score] = Field(default_factory=list)
    """Benchmark results of the base model."""
    runs: list[Run] = Field(default_factory=list)
    """Training runs, oldest first."""
    decisions: list[Decision] = Field(default_factory=list)
    """Every decision, oldest first."""
    warnings: list[str] = Field(default_factory=list)
    """Degraded paths the report must mention, e.g. metrics unavailable."""
    failure: str | None = None
    """Reason the experiment failed or a policy stopped it, if either happened."""
    budget_usd: float | None = None
    """Most money the experiment may spend; `None` sets no limit beyond each approval."""
    approve_under_usd: float | None = None
    """Paid submissions estimated under this cost are approved without a person; `None` always requests a person's approval."""
    require_approval: bool = False
    """Ask for approval on free backends too."""
    spent_usd: float = 0.0
    """Money spent by finished paid runs."""
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    """Every answer of the approval gate, oldest first."""

    policy_files: list[str] = Field(default_factory=list)
    """User rule files applied after the shipped default, in order; a resumed experiment keeps them."""
    metrics_degraded: bool = False
    """Whether the tracker failed or stored fewer points than the job logged; the report then states it."""
    export: ExportRecord | None = None
    """The exported GGUF files, once exported."""

    @property
    def committed_usd(self) -> float:
        """Approved cost of the paid runs that are submitted or running."""
        return sum(run.estimated_cost_usd for run in self.runs if run.status in ("submitted", "running"))

    def run(self, run_id: str) -> Run:
        """Return the run with id `run_id`.

        Raises:
            KeyError: If no run has that id.
        """
        for run in self.runs:
            if run.run_id == run_id:
                return run
        raise KeyError(f"experiment {self.id!r} has no run {run_id!r}; known runs: {[r.run_id for r in self.runs]}")

    @property
    def latest_run(self) -> Run | None:
        """The most recent run, if any."""
        return self.runs[-1] if self.runs else None

    def next_stage(self) -> Stage | None:
        """Return the first planned stage not yet completed, or `None` when all are done."""
        for stage in self.plan.stages:
            if stage not in self.completed_stages:
                return stage
        return None
