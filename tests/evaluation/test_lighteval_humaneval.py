"""HumanEval as a lighteval custom task: offline registry, prompts, and pass@k from the built-in sandbox."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lighteval")

from lighteval.logging.evaluation_tracker import EvaluationTracker  # noqa: E402
from lighteval.models.abstract_model import ModelConfig  # noqa: E402
from lighteval.models.model_input import GenerationParameters  # noqa: E402
from lighteval.models.model_output import ModelResponse  # noqa: E402
from lighteval.models.transformers.transformers_model import TransformersModelConfig  # noqa: E402
from lighteval.pipeline import ParallelismManager, Pipeline, PipelineParameters  # noqa: E402
from lighteval.tasks.registry import Registry  # noqa: E402

from autotrain_agent.errors import ConfigError, HarnessCalibrationError  # noqa: E402
from autotrain_agent.evaluation.benchmarks import resolve_benchmark  # noqa: E402
from autotrain_agent.evaluation.humaneval import build_prompt, load_humaneval_problems  # noqa: E402
from autotrain_agent.testing import build_tiny_chat_model  # noqa: E402

CANNED_MODEL_FILE = Path(__file__).with_name("lighteval_canned_model.py")
SRC_DIR = Path(__file__).resolve().parents[2] / "src"
PASS_AT_1 = "pass@k:k=1&n=1"
WRONG_BODY = "    return None\n"


@pytest.fixture(scope="module")
def task_module(tmp_path_factory):
    """The custom-task module, imported offline with its problems file under a temporary cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTOTRAIN_AGENT_CACHE", str(tmp_path_factory.mktemp("cache")))
        from autotrain_agent.evaluation import lighteval_humaneval

        yield lighteval_humaneval


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def canned_model():
    sys.path.insert(0, str(CANNED_MODEL_FILE.parent))
    try:
        from lighteval_canned_model import CannedModel
    finally:
        sys.path.remove(str(CANNED_MODEL_FILE.parent))
    return CannedModel


def problem_line(index: int) -> dict:
    return load_humaneval_problems()[index].model_dump()


def score(metric, doc, completions: list[str]) -> dict:
    return metric.compute_sample(doc=doc, model_response=ModelResponse(text=completions))


def run_pipeline(tmp_path, task_module, tasks: str, *, max_samples: int, model=None, model_config=None) -> dict:
    tracker = EvaluationTracker(output_dir=str(tmp_path / "lighteval"), save_details=True)
    launcher = ParallelismManager.CUSTOM if model is not None else ParallelismManager.ACCELERATE
    parameters = PipelineParameters(launcher_type=launcher, custom_tasks_directory=task_module, max_samples=max_samples)
    pipeline = Pipeline(tasks=tasks, pipeline_parameters=parameters, evaluation_tracker=tracker, model=model,
                        model_config=model_config)
    pipeline.evaluate()
    pipeline.save_and_push_results()
    return pipeline.get_results()["results"]


def test_docs_use_builtin_prompts(task_module):
    problem = load_humaneval_problems(limit=1)[0]

    completion_doc = task_module.humaneval_doc(problem.model_dump(), task_module.COMPLETION_TASK)
    chat_doc = task_module.humaneval_chat_doc(problem.model_dump(), task_module.CHAT_TASK)

    assert completion_doc.query == build_prompt(problem, chat=False)
    assert chat_doc.query == build_prompt(problem, chat=True)[0]["content"]
    assert completion_doc.specific["chat"] is False
    assert chat_doc.specific["chat"] is True


def test_metric_scores_canonical_one_and_wrong_zero(task_module):
    line = problem_line(0)
    doc = task_module.humaneval_doc(line, task_module.COMPLETION_TASK)
    metric = task_module.sandbox_pass_at_k()

    assert score(metric, doc, [line["canonical_solution"]]) == {PASS_AT_1: 1.0}
    assert score(metric, doc, [WRONG_BODY]) == {PASS_AT_1: 0.0}


def test_metric_runs_reworded_answer(task_module):
    """A correct answer that differs from the reference text passes, so the score is not a text match."""
    line = problem_line(2)
    doc = task_module.humaneval_doc(line, task_module.COMPLETION_TASK)
    reworded = "    whole = int(number)\n    return number - whole\n"

    assert reworded != line["canonical_solution"]
    assert score(task_module.sandbox_pass_at_k(), doc, [reworded]) == {PASS_AT_1: 1.0}


def test_chat_metric_extracts_fenced_function(task_module):
    line = problem_line(0)
    doc = task_module.humaneval_chat_doc(line, task_module.CHAT_TASK)
    signature = line["prompt"][line["prompt"].index("def has_close_elements"):].split("\n")[0]
    answer = (f"Here is the function.\n\n```python\nfrom typing import List\n\n\n{signature}\n"
              f"{line['canonical_solution']}```\nIt compares every pair.")

    assert score(task_module.sandbox_pass_at_k(), doc, [answer]) == {PASS_AT_1: 1.0}
    assert score(task_module.sandbox_pass_at_k(), doc, ["I cannot solve this."]) == {PASS_AT_1: 0.0}


def test_metric_pass_at_k_over_samples(task_module):
    line = problem_line(0)
    doc = task_module.humaneval_doc(line, task_module.COMPLETION_TASK)
    samples = [line["canonical_solution"], WRONG_BODY, line["canonical_solution"]]

    assert score(task_module.sandbox_pass_at_k(k=1, n=3), doc, samples) == {"pass@k:k=1&n=3": pytest.approx(2 / 3)}
    assert score(task_module.sandbox_pass_at_k(k=2, n=3), doc, samples) == {"pass@k:k=2&n=3": 1.0}


def test_broken_canonical_solution_raises_calibration_error(task_module):
    line = {**problem_line(0), "task_id": "HumanEval/broken", "canonical_solution": WRONG_BODY}
    doc = task_module.humaneval_doc(line, task_module.COMPLETION_TASK)

    with pytest.raises(HarnessCalibrationError, match="HumanEval/broken"):
        score(task_module.sandbox_pass_at_k(), doc, [line["prompt"]])


def test_registry_loads_offline(task_module):
    registry = Registry(tasks=f"{task_module.COMPLETION_TASK}|0", custom_tasks=task_module)

    assert list(registry.load_tasks()) == [f"{task_module.COMPLETION_TASK}|0"]
    assert "gsm8k" in registry._task_registry
    assert "tiny:gsm8k" not in registry._task_registry
    assert "mt_bench" not in registry._task_registry


def test_task_name_sets_k_and_n(task_module):
    registry = Registry(tasks=f"{task_module.COMPLETION_TASK}@k=2@n=3|0", custom_tasks=task_module)

    tasks = registry.load_tasks()
    metric = registry.task_to_configs[task_module.COMPLETION_TASK][0].metrics[0]

    assert metric.metric_name == "pass@k:k=2&n=3"
    assert tasks[f"{task_module.COMPLETION_TASK}|0"].num_samples == [1, 3]
    assert task_module.TASKS_TABLE[0].metrics[0].metric_name == "pass@k:k=1&n=1"


def test_metric_rejects_fewer_samples_than_k(task_module):
    line = problem_line(0)
    doc = task_module.humaneval_doc(line, task_module.COMPLETION_TASK)

    with pytest.raises(ConfigError, match="needs at least 2 generations, got 1"):
        score(task_module.sandbox_pass_at_k(k=2, n=1), doc, [line["canonical_solution"]])


def test_backend_resolves_to_this_task(task_module):
    implementation = resolve_benchmark("humaneval", backend="lighteval")

    assert implementation.harness == "autotrain_agent.evaluation.sandbox"
    assert implementation.lighteval_task == task_module.COMPLETION_TASK
    assert implementation.lighteval_task + "_chat" == task_module.CHAT_TASK


def test_pipeline_scores_canned_answers_in_sandbox(tmp_path, task_module, canned_model):
    model = canned_model(ModelConfig(model_name="canned", cache_dir=str(tmp_path / "lighteval-cache")))

    results = run_pipeline(tmp_path, task_module, f"{task_module.COMPLETION_TASK}|0", max_samples=3, model=model)

    assert results[f"{task_module.COMPLETION_TASK}:0"][PASS_AT_1] == pytest.approx(2 / 3)


@pytest.mark.slow
def test_tiny_model_runs_end_to_end(tmp_path, task_module):
    folder = build_tiny_chat_model(tmp_path / "model")
    config = TransformersModelConfig(
        model_name=str(folder), device="cpu", batch_size=1, cache_dir=str(tmp_path / "lighteval-cache"),
        generation_parameters=GenerationParameters(max_new_tokens=16),
    )

    results = run_pipeline(tmp_path, task_module, f"{task_module.CHAT_TASK}|0", max_samples=2, model_config=config)

    assert results[f"{task_module.CHAT_TASK}:0"][PASS_AT_1] == 0.0
    assert list((tmp_path / "lighteval" / "details").rglob(f"details_{task_module.CHAT_TASK}|0_*.parquet"))


@pytest.mark.slow
def test_command_line_runs_offline(tmp_path, task_module):
    env = {**os.environ, "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(SRC_DIR), os.environ.get("PYTHONPATH", "")])}
    command = [
        sys.executable, "-m", task_module.__name__, "custom", "canned", str(CANNED_MODEL_FILE),
        f"{task_module.COMPLETION_TASK}|0", "--custom-tasks", task_module.__name__,
        "--max-samples", "3", "--output-dir", str(tmp_path / "out"),
    ]

    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Skipping lighteval task module lighteval.tasks.tasks.mt_bench.main" in completed.stderr
    assert "Skipping lighteval's tiny benchmarks" in completed.stderr
    [results_file] = (tmp_path / "out" / "results" / "canned").glob("results_*.json")
    # The saved file keys tasks as `name|fewshot`; `Pipeline.get_results` uses `name:fewshot`.
    results = json.loads(results_file.read_text())["results"]
    assert results[f"{task_module.COMPLETION_TASK}|0"][PASS_AT_1] == pytest.approx(2 / 3)
