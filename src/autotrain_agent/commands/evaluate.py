"""`autotrain-agent evaluate MODEL_OR_FOLDER`: score a model, checkpoint or LoRA adapter on HumanEval."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from . import EXIT_OK

NAME = "evaluate"


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """Register the `evaluate` subcommand."""
    # The recipe's limit, not the harness's equal constant: importing the harness here slows every command's start.
    from ..recipes import DEFAULT_CPU_EVAL_LIMIT

    evaluate = subparsers.add_parser(
        NAME, parents=parents, help="score a model, checkpoint or LoRA adapter on a benchmark",
        description="Score a Hub id, a local model folder, a full checkpoint or a LoRA adapter folder on HumanEval "
                    "in the sandboxed harness.",
    )
    evaluate.add_argument("model", help="Hub id, local model folder, checkpoint folder or LoRA adapter folder")
    evaluate.add_argument("--benchmark", default="humaneval", help="benchmark name (default humaneval)")
    evaluate.add_argument("--limit", type=int, default=DEFAULT_CPU_EVAL_LIMIT,
                          help=f"score the first N problems by task number (default {DEFAULT_CPU_EVAL_LIMIT}; 0 = all 164)")
    evaluate.add_argument("--samples", type=int, default=1,
                          help="samples per problem; above 1 reports pass@k and needs --temperature (default 1, greedy)")
    evaluate.add_argument("--temperature", type=float, help="sampling temperature; unset decodes greedily")
    evaluate.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling probability mass (default 1.0)")
    evaluate.add_argument("--seed", type=int, default=0, help="sampling seed; sample i uses seed + i (default 0)")
    evaluate.add_argument("--engine", choices=("llama.cpp", "transformers"), default="llama.cpp",
                          help="generation engine (default llama.cpp, on an F16 GGUF copy)")
    evaluate.add_argument("--base-model", help="base model of a LoRA adapter folder (default: the adapter's own "
                                               "base_model_name_or_path)")
    evaluate.add_argument("--max-new-tokens", type=int, default=384, help="maximum new tokens per sample (default 384)")
    evaluate.add_argument("--output-dir", type=Path, default=Path.cwd(),
                          help="folder for evaluations/ with per-problem results (default: current folder)")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    evaluate.add_argument("--no-progress", action="store_true", help="hide progress bars")
    evaluate.set_defaults(handler=evaluate_command)


def evaluate_command(args: argparse.Namespace) -> int:
    """Resolve the model, score it, save per-problem results and a summary, and print the score."""
    from ..config import Settings
    from ..evaluation.benchmarks import resolve_benchmark
    from ..evaluation.generation import Sampling
    from ..evaluation.scoring import score_humaneval

    resolve_benchmark(args.benchmark)
    if args.limit < 0:
        raise ConfigError(f"`--limit` must be 0 (all problems) or a positive count, got {args.limit!r}.")
    if args.samples < 1:
        raise ConfigError(f"`--samples` must be a positive integer, got {args.samples!r}.")
    if args.samples > 1 and args.temperature is None:
        raise ConfigError(f"`--samples {args.samples}` needs `--temperature`: greedy decoding would repeat one sample.")
    sampling = None if args.temperature is None else Sampling(temperature=args.temperature, top_p=args.top_p, seed=args.seed)
    settings = Settings(output_dir=args.output_dir.resolve(), progress=not args.no_progress)
    output_dir = settings.output_dir / "evaluations"
    echo = (lambda line: None) if args.json else print

    model = _model_under_test(args.model, base_model=args.base_model, engine=args.engine, output_dir=output_dir,
                              cache_dir=settings.cache_dir, echo=echo)
    result = score_humaneval(model, engine=args.engine, limit=args.limit or None, output_dir=output_dir,
                             cache_dir=settings.cache_dir, max_new_tokens=args.max_new_tokens, samples=args.samples,
                             sampling=sampling, progress=settings.progress, echo=echo)

    summary = {
        "model": args.model,
        "label": model.label,
        "benchmark": result.benchmark,
        "harness": result.harness,
        "engine": result.generator,
        "metric": result.metric,
        "value": result.value,
        "stderr": result.stderr,
        "pass_at_k": result.pass_at_k,
        "stderr_at_k": result.stderr_at_k,
        "num_problems": result.num_problems,
        "num_passed": result.num_passed,
        "num_timed_out": result.num_timed_out,
        "samples_per_problem": result.samples_per_problem,
        "sampling": result.sampling.model_dump() if result.sampling else None,
        "duration_s": round(result.duration_s, 1),
        "details_path": str(output_dir / f"{model.label}-humaneval.jsonl"),
    }
    summary_path = output_dir / f"{model.label}-humaneval.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        scores = ", ".join(f"{name} {value:.3f} ± {result.stderr_at_k[name]:.3f}" for name, value in result.pass_at_k.items())
        print(f"{model.label}: HumanEval {scores} ({result.num_passed}/{result.num_problems} problems solved, "
              f"{result.num_timed_out} timed out, {result.generator}, {result.duration_s:.0f} s)")
        print(f"Per-problem results: {summary['details_path']}")
    return EXIT_OK


def _model_under_test(reference: str, *, base_model: str | None, engine, output_dir: Path, cache_dir: Path, echo):
    """Return the model to score: a resolved model or checkpoint, or a LoRA adapter on its resolved base model."""
    from ..evaluation.scoring import ModelUnderTest, prepare_adapter, read_adapter_base_model
    from ..loop import slugify
    from ..merge import is_adapter_folder
    from ..model_source import resolve_model

    folder = Path(reference).expanduser()
    label = slugify("-".join(folder.resolve().parts[-2:]) if folder.is_dir() else reference)
    if not (folder.is_dir() and is_adapter_folder(folder)):
        if base_model:
            raise ConfigError(f"`--base-model` applies only to a LoRA adapter folder, and {reference!r} is not one.")
        return ModelUnderTest(label=label, model_dir=resolve_model(reference, cache_dir=cache_dir).path)

    base_reference = base_model or read_adapter_base_model(folder)
    if not base_reference:
        raise ConfigError(
            f"The adapter {reference!r} names no base model in `adapter_config.json`; pass `--base-model`."
        )
    base_dir = resolve_model(base_reference, cache_dir=cache_dir).path
    echo(f"Applying the LoRA adapter {reference} to {base_reference} ({engine})...")
    return prepare_adapter(folder, base_dir, engine=engine, merged_dir=output_dir / "merged" / label, label=label)
