"""Score one model folder on HumanEval: prepare the weights, prove an adapter is applied, generate, execute.

The `evaluate` command, the `evaluate_model` tool and the `tools/evaluate.py` job script all score through
`score_humaneval`, so a score means the same thing wherever it was computed.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autotrain_agent.errors import ConfigError
from autotrain_agent.evaluation.generation import Sampling
from autotrain_agent.evaluation.humaneval import HumanEvalResult
from autotrain_agent.state import EvalEngine, Score

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelUnderTest:
    """The weights a generator loads, and the base model they must differ from."""

    label: str
    """Name in file names and reports, such as `base` or `run-1-step-20`."""
    model_dir: Path
    """Hugging Face folder with full weights; for an applied adapter, the base model."""
    adapter_dir: Path | None = None
    """PEFT adapter applied on top of `model_dir` at generation time (transformers engine only)."""
    base_dir: Path | None = None
    """Base model whose logits the evaluated model must differ from; `None` skips the check (the base itself)."""


def read_adapter_base_model(adapter_dir: Path) -> str | None:
    """Return `base_model_name_or_path` from a PEFT adapter's `adapter_config.json`, if it names one."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    return config.get("base_model_name_or_path") or None


def prepare_adapter(
    adapter_dir: Path, base_dir: Path, *, engine: EvalEngine, merged_dir: Path, label: str
) -> ModelUnderTest:
    """Return the model under test for a LoRA adapter: merged into a copy for llama.cpp, applied for transformers.

    llama.cpp loads only full weights, so the adapter is merged into a float32 copy of `base_dir` in `merged_dir`
    (reused when it already exists). transformers applies the adapter with PEFT, so nothing is written.
    """
    if engine == "transformers":
        return ModelUnderTest(label=label, model_dir=base_dir, adapter_dir=adapter_dir, base_dir=base_dir)

    from autotrain_agent.merge import merge_adapter

    if merged_dir.is_dir() and not _is_newer_than_files(merged_dir / "config.json", adapter_dir):
        shutil.rmtree(merged_dir)
    merged = merge_adapter(base_dir, adapter_dir, merged_dir)
    return ModelUnderTest(label=label, model_dir=merged, base_dir=base_dir)


def score_humaneval(
    model: ModelUnderTest,
    *,
    engine: EvalEngine,
    limit: int | None,
    output_dir: Path,
    cache_dir: Path,
    max_new_tokens: int = 384,
    samples: int = 1,
    sampling: Sampling | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = logger.info,
) -> HumanEvalResult:
    """Score `model` on the first `limit` HumanEval problems and write the per-problem results.

    The harness is calibrated on this host first, and a model with a `base_dir` must change the base model's
    logits on probe prompts; either failure raises before any answer is generated. Per-problem results go to
    `output_dir/<label>-humaneval.jsonl`, and the llama.cpp engine keeps its F16 GGUF in `output_dir/gguf/`.

    Args:
        model: The weights to score.
        engine: `llama.cpp` (an F16 GGUF converted on first use) or `transformers`.
        limit: The first `limit` problems by task number; `None` scores all 164.
        output_dir: Folder for the details file and GGUF copies.
        cache_dir: The autotrain-agent cache, which holds llama.cpp's converter.
        max_new_tokens: Generation budget per answer.
        samples: Answers per problem.
        sampling: Temperature, top-p and seed; `None` decodes greedily.
        progress: Show progress bars.
        echo: Writes one line for the user.

    Raises:
        ConfigError: If an adapter is given with the llama.cpp engine, or an argument is out of range.
        HarnessCalibrationError: If a canonical solution fails on this host.
        AdapterNotAppliedError: If the model gives its base model's logits.
    """
    from autotrain_agent.evaluation.adapter_check import check_model_differs_from_base
    from autotrain_agent.evaluation.generation import stop_sequences_for
    from autotrain_agent.evaluation.humaneval import calibrate_harness, evaluate_humaneval, load_humaneval_problems

    if model.adapter_dir is not None and engine != "transformers":
        raise ConfigError(f"llama.cpp cannot apply the adapter {str(model.adapter_dir)!r}; merge it first.")
    problems = load_humaneval_problems(limit=limit)
    calibration = calibrate_harness(problems)
    if model.base_dir is not None:
        if model.adapter_dir is not None:
            distance = check_model_differs_from_base(model.base_dir, adapter_dir=model.adapter_dir)
        else:
            distance = check_model_differs_from_base(model.base_dir, model_dir=model.model_dir)
        logger.info("%s: logits differ from the base model by up to %.3g", model.label, distance)

    generator, tokenizer = _load_generator(model, engine=engine, gguf_dir=output_dir / "gguf", cache_dir=cache_dir,
                                           echo=echo)
    details_path = output_dir / f"{model.label}-humaneval.jsonl"
    echo(f"Evaluating {model.label} on {len(problems)} HumanEval problems with {generator.name}...")
    try:
        return evaluate_humaneval(
            generator,
            problems,
            chat=bool(getattr(tokenizer, "chat_template", None)),
            max_new_tokens=max_new_tokens,
            stop=stop_sequences_for(tokenizer),
            samples=samples,
            sampling=sampling,
            calibration=calibration,
            details_path=details_path,
            progress=progress,
        )
    finally:
        if hasattr(generator, "close"):
            generator.close()


def score_from_result(result: HumanEvalResult, *, details_path: Path) -> Score:
    """Return the state's `Score` for a HumanEval result whose per-problem lines are in `details_path`."""
    return Score(
        benchmark=result.benchmark,
        metric=result.metric,
        value=result.value,
        num_samples=result.num_problems,
        num_passed=result.num_passed,
        stderr=result.stderr,
        engine=result.generator,
        details_path=str(details_path),
        task_ids=result.task_ids,
        duration_s=round(result.duration_s, 1),
        harness=result.harness,
        samples_per_problem=result.samples_per_problem,
        pass_at_k=result.pass_at_k if result.samples_per_problem > 1 else {},
    )


def _load_generator(model: ModelUnderTest, *, engine: EvalEngine, gguf_dir: Path, cache_dir: Path, echo):
    from transformers import AutoTokenizer

    from autotrain_agent.evaluation.generation import LlamaCppGenerator, TransformersGenerator

    tokenizer = AutoTokenizer.from_pretrained(model.model_dir)
    if engine == "transformers":
        return TransformersGenerator(model.model_dir, adapter_dir=model.adapter_dir), tokenizer

    from autotrain_agent.gguf_convert import convert_hf_to_gguf

    gguf_path = gguf_dir / f"{model.label}-f16.gguf"
    if not _is_newer_than_files(gguf_path, model.model_dir):
        echo(f"Converting {model.label} to an F16 GGUF file for llama.cpp...")
        gguf_dir.mkdir(parents=True, exist_ok=True)
        convert_hf_to_gguf(model.model_dir, gguf_path, outtype="f16", cache_dir=cache_dir)
    return LlamaCppGenerator(gguf_path, chat_template_dir=model.model_dir), tokenizer


def _is_newer_than_files(path: Path, folder: Path) -> bool:
    """Return whether `path` exists and was written after every file in `folder`, so a copy made from it is current.

    Derived copies (merged weights, GGUF files) are named after a label, not the content, so a folder retrained in
    place would otherwise be scored from its stale copy.
    """
    if not path.exists():
        return False
    newest_source = max((item.stat().st_mtime for item in folder.rglob("*") if item.is_file()), default=0.0)
    return path.stat().st_mtime >= newest_source
