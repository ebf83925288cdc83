"""Compare batched greedy generation with one prompt at a time, with the same model and HumanEval prompts.

    python bench/generation_batching.py [--prompts 8] [--batch-size 8] [--max-new-tokens 64] [--repeats 2]

Both sides use `TransformersGenerator` from autotrain_agent.evaluation.generation on SmolLM2-135M-Instruct (float32,
CPU), loaded once; only `batch_size` differs. The prompts are HumanEval's first problems as chat prompts, as the
evaluation builds them, with the model's end-of-turn stop strings. The sides alternate order between repeats.
The record gives the median times, their ratio, generated tokens per second, and whether every output is identical.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe_machine, library_versions  # noqa: E402
from _page import publish_record  # noqa: E402

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def measure(*, prompts: int, batch_size: int, max_new_tokens: int, repeats: int) -> dict:
    """Generate with both batch sizes `repeats` times and return times, token counts and the outputs."""
    from autotrain_agent.config import default_cache_dir
    from autotrain_agent.evaluation.generation import TransformersGenerator, stop_sequences_for
    from autotrain_agent.evaluation.humaneval import build_prompt, load_humaneval_problems
    from autotrain_agent.model_source import resolve_model

    model_dir = resolve_model(MODEL, cache_dir=default_cache_dir()).path
    generator = TransformersGenerator(model_dir, batch_size=batch_size)
    chat_prompts = [build_prompt(problem, chat=True) for problem in load_humaneval_problems(limit=prompts)]
    stop = stop_sequences_for(generator.tokenizer)

    sides = {"batched": batch_size, "one at a time": 1}
    times: dict[str, list[float]] = {name: [] for name in sides}
    tokens: dict[str, int] = {}
    outputs: dict[str, list[str]] = {}
    for repeat in range(repeats):
        for name in (list(sides) if repeat % 2 == 0 else list(reversed(sides))):
            generator.batch_size = sides[name]
            before = generator.tokens_generated
            started = time.perf_counter()
            outputs[name] = generator.complete(chat_prompts, max_new_tokens=max_new_tokens, stop=stop)
            times[name].append(time.perf_counter() - started)
            tokens[name] = generator.tokens_generated - before
    return {"times": times, "tokens": tokens, "outputs": outputs}


def render_record(results: dict, *, machine: str, prompts: int, batch_size: int, max_new_tokens: int, repeats: int) -> str:
    """Return the Markdown record."""
    times, tokens, outputs = results["times"], results["tokens"], results["outputs"]
    batched, single = statistics.median(times["batched"]), statistics.median(times["one at a time"])
    differing = sum(a != b for a, b in zip(outputs["batched"], outputs["one at a time"], strict=True))
    lines = [
        f"### Evaluation generation: batched vs one prompt at a time ({dt.date.today().isoformat()})",
        "",
        f"Script: `bench/generation_batching.py --prompts {prompts} --batch-size {batch_size} --max-new-tokens "
        f"{max_new_tokens} --repeats {repeats}`. Machine: {machine}. Versions: {library_versions(('torch', 'transformers'))}.",
        f"Model: {MODEL} (float32, greedy); the first {prompts} HumanEval problems as chat prompts; median of {repeats}, "
        "alternating order.",
        "",
        "| Side | Median s | Generated tokens | Tokens/s | All s |",
        "|---|---|---|---|---|",
    ]
    for name, median in (("batched", batched), ("one at a time", single)):
        label = f"batch {batch_size}" if name == "batched" else "batch 1"
        lines.append(
            f"| {label} | {median:.1f} | {tokens[name]} | {tokens[name] / median:.1f} | {', '.join(f'{s:.1f}' for s in times[name])} |"
        )
    lines += [
        "",
        f"Speed-up of batching: {single / batched:.2f}x. Outputs identical: "
        f"{'yes, all ' + str(prompts) if differing == 0 else f'no, {differing} of {prompts} differ'}.",
    ]
    return "\n".join(lines) + "\n"


def run_benchmark(*, quick: bool) -> str:
    """Run the suite's size of this benchmark and return its record."""
    if quick:
        settings = {"prompts": 4, "batch_size": 4, "max_new_tokens": 32, "repeats": 1}
    else:
        settings = {"prompts": 8, "batch_size": 8, "max_new_tokens": 64, "repeats": 2}
    machine = describe_machine()
    return render_record(measure(**settings), machine=machine, **settings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=8, help="HumanEval prompts (default 8)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size of the batched side (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="generation budget per prompt (default 64)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side (default 2)")
    parser.add_argument("--output", type=Path, help="page to append the record to (default: print only)")
    args = parser.parse_args()
    settings = {"prompts": args.prompts, "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens, "repeats": args.repeats}
    machine = describe_machine()
    record = render_record(measure(**settings), machine=machine, **settings)
    publish_record(record, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
