"""Compare the training job (tools/train.py) with TRL's default settings on the same model, data and examples.

    python bench/train_throughput.py                          # SmolLM2-135M-Instruct, 24 examples, 2 repeats
    python bench/train_throughput.py --examples 16 --repeats 1 --variants plain job job-padding-free

Every variant trains one epoch of LoRA (r 16, all linear layers) over the same code examples, in its own process,
with the same learning rate, schedule, seed, effective batch size and maximum length. `plain` is
`bench/_plain_trl_sft.py`: TRL's SFTTrainer with every speed setting at its default (gradient checkpointing on,
random order, padded batches, torch's default threads). The other variants run tools/train.py with the config the
agent submits, changed as their description lists. Variants alternate order between repeats, so machine load
hits both sides.

Measured per variant: real tokens per second (non-padding tokens of the examples over the wall and the CPU seconds
of `Trainer.train`, timed by `bench/_timed_train.py`, so model loading is excluded), the trained adapter's loss per completion token over the same
examples (measured by `bench/_token_loss.py` after the first repeat; the goal needs it within 2 % of `plain`'s), and
the training process's peak resident memory. The examples are drawn at random from the builtin code dataset among
rows no longer than `--max-length` tokens, so no variant truncates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe_machine, library_versions  # noqa: E402
from _page import publish_record  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
SPEED_GOAL = 2.0
LOSS_TOLERANCE = 0.02
# The two options that jemalloc 5.3.0's TUNING.md suggests for allocation-heavy programs.
JEMALLOC_CONF = "background_thread:true,metadata_thp:auto"
JOB_CONFIG = {
    # The values tools/submit.py sends for the default plan, apart from the data, length and output.
    "method": "sft",
    "max_steps": None,
    "num_train_epochs": 1.0,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 2,
    "learning_rate": 2e-4,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.05,
    "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"},
    "logging_steps": 1,
    "save_steps": 10_000,
    "seed": 0,
    "completion_only_loss": True,
    "gradient_checkpointing": False,
    "train_sampling_strategy": "group_by_length",
    "num_threads": os.cpu_count() or 1,
}


@dataclass(frozen=True)
class Variant:
    """One way of training the same examples."""

    name: str
    """Short name used on the command line and in the record."""
    description: str
    """The difference from the job's shipped settings, or from TRL's defaults for `plain`."""
    overrides: dict = field(default_factory=dict)
    """Job config values that differ from `JOB_CONFIG`; unused by `plain`."""
    environment: dict = field(default_factory=dict)
    """Environment variables added to the training process."""


VARIANTS = {
    variant.name: variant
    for variant in (
        Variant("plain", "TRL SFTTrainer defaults (checkpointing on, random order, padded, default threads)"),
        Variant("job", "tools/train.py with the settings the agent submits"),
        Variant(
            "job-as-trl",
            "tools/train.py with TRL's speed settings: checkpointing on, random order",
            {"gradient_checkpointing": True, "train_sampling_strategy": "random"},
        ),
        Variant(
            "job-no-checkpointing",
            "job-as-trl, checkpointing off",
            {"train_sampling_strategy": "random"},
        ),
        Variant(
            "job-grouped",
            "job-as-trl, length-grouped batches",
            {"gradient_checkpointing": True},
        ),
        Variant("job-1-thread", "job, one torch thread", {"num_threads": 1}),
        Variant("job-batch-4", "job, batch 4 without accumulation", {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 1}),
        Variant(
            "job-jemalloc",
            "job, with jemalloc preloaded (background threads, metadata on huge pages)",
            environment={"LD_PRELOAD": "libjemalloc.so.2", "MALLOC_CONF": JEMALLOC_CONF},
        ),
    )
}


@dataclass
class Measurement:
    """The repeats of one variant."""

    train_s: list[float] = field(default_factory=list)
    """Wall seconds of `Trainer.train` in each repeat."""
    cpu_s: list[float] = field(default_factory=list)
    """CPU seconds of the training process during `Trainer.train` in each repeat, all threads together."""
    peak_rss_mb: list[float] = field(default_factory=list)
    """Peak resident memory of each repeat's training process."""
    loss_per_token: float | None = None
    """Loss per completion token of the first repeat's adapter over the examples."""
    real_tokens: int = 0
    """Non-padding tokens of the examples."""

    def tokens_per_s(self) -> float:
        """Median real tokens per wall second over the repeats."""
        return self.real_tokens / statistics.median(self.train_s)

    def tokens_per_cpu_s(self) -> float:
        """Median real tokens per CPU second over the repeats."""
        return self.real_tokens / statistics.median(self.cpu_s)


def write_examples(path: Path, *, model_dir: Path, count: int, max_length: int, seed: int) -> None:
    """Write `count` builtin code rows of at most `max_length` tokens, drawn at random with `seed`, as JSONL."""
    from transformers import AutoTokenizer

    from autotrain_agent.config import default_cache_dir
    from autotrain_agent.data.code_functions import build_code_sft_dataset

    built = build_code_sft_dataset(cache_dir=default_cache_dir(), progress=False)
    rows = [json.loads(line) for line in (built.path / "train.jsonl").read_text().splitlines() if line.strip()]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    fitting = [
        row for row in rows
        if len(tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"]) <= max_length
    ]
    if len(fitting) < count:
        raise SystemExit(f"Only {len(fitting)} rows fit in {max_length} tokens; lower `--examples` to at most that.")
    chosen = random.Random(seed).sample(fitting, count)
    path.write_text("".join(json.dumps({"messages": row["messages"]}) + "\n" for row in chosen))


def run_child(command: list[str], *, env: dict, log_path: Path) -> float:
    """Run `command` to completion and return its peak resident memory in MB.

    Raises:
        SystemExit: If the command fails; the message names its log file.
    """
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command[1]} exited with {process.returncode}; see {log_path}")
    return usage.ru_maxrss / 1024


def train_variant(variant: Variant, *, workdir: Path, base: dict, env: dict) -> tuple[float, float, float, Path]:
    """Train one variant once and return its training wall and CPU seconds, peak memory in MB and adapter folder."""
    output_dir = Path(tempfile.mkdtemp(prefix=f"{variant.name}-", dir=workdir))
    config = {**base, **variant.overrides, "run_id": variant.name, "output_dir": str(output_dir)}
    config_path = output_dir / "config.json"
    config_path.write_text(json.dumps(config))
    script = REPO / "bench" / "_plain_trl_sft.py" if variant.name == "plain" else REPO / "tools" / "train.py"
    timing_path = output_dir / "timing.json"
    command = [sys.executable, str(REPO / "bench" / "_timed_train.py"), str(timing_path), str(script), "--config", str(config_path)]
    peak_mb = run_child(command, env={**env, **variant.environment}, log_path=output_dir / "log.txt")
    timing = json.loads(timing_path.read_text())
    return timing["train_wall_s"], timing["train_cpu_s"], peak_mb, output_dir / "final"


def measure_loss(adapter: Path, *, model_dir: Path, dataset: Path, env: dict) -> dict:
    """Return `bench/_token_loss.py`'s result for an adapter."""
    command = [sys.executable, str(REPO / "bench" / "_token_loss.py"), "--model", str(model_dir), "--adapter", str(adapter), "--dataset", str(dataset)]
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True, cwd=REPO).stdout
    return json.loads(output.strip().splitlines()[-1])


def child_environment(workdir: Path) -> dict:
    """Return the environment for training processes: no thread override, so each side keeps its own default."""
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(TRACKIO_DIR=str(workdir / "trackio"), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def measure(names: list[str], *, examples: int, repeats: int, max_length: int, seed: int) -> dict[str, Measurement]:
    """Train every named variant `repeats` times, alternating order, and return their measurements."""
    from autotrain_agent.config import default_cache_dir
    from autotrain_agent.model_source import resolve_model

    model_dir = resolve_model(MODEL, cache_dir=default_cache_dir()).path
    workdir = Path(tempfile.mkdtemp(prefix="autotrain-bench-train-"))
    dataset = workdir / "examples.jsonl"
    write_examples(dataset, model_dir=model_dir, count=examples, max_length=max_length, seed=seed)
    base = {**JOB_CONFIG, "model_path": str(model_dir), "dataset_path": str(dataset), "max_length": max_length}
    env = child_environment(workdir)

    results = {name: Measurement() for name in names}
    for repeat in range(repeats):
        order = names if repeat % 2 == 0 else list(reversed(names))
        for name in order:
            train_s, cpu_s, peak_mb, adapter = train_variant(VARIANTS[name], workdir=workdir, base=base, env=env)
            result = results[name]
            result.train_s.append(train_s)
            result.cpu_s.append(cpu_s)
            result.peak_rss_mb.append(peak_mb)
            if result.loss_per_token is None:
                loss = measure_loss(adapter, model_dir=model_dir, dataset=dataset, env=env)
                result.loss_per_token = loss["loss_per_token"]
                result.real_tokens = loss["real_tokens"]
            print(f"{name}: {result.real_tokens / train_s:.1f} real tokens/s, {train_s:.1f} s, {cpu_s:.1f} CPU s, {peak_mb:.0f} MB", flush=True)
    return results


def render_record(results: dict[str, Measurement], *, machine: str, examples: int, repeats: int, max_length: int) -> str:
    """Return the Markdown record of a measurement; ratios and loss differences are against `plain`."""
    reference = results.get("plain")
    lines = [
        f"### Training throughput: the job vs TRL defaults ({dt.date.today().isoformat()})",
        "",
        f"Script: `bench/train_throughput.py --examples {examples} --repeats {repeats} --max-length {max_length} "
        f"--variants {' '.join(results)}`. Machine: {machine}. "
        f"Versions: {library_versions()}.",
        f"Model: {MODEL} (float32, LoRA r 16 on all linear layers); {examples} builtin code examples of at most "
        f"{max_length} tokens, one epoch, effective batch 4, completion-only loss; median of {repeats} alternating "
        "repeats. Times cover `Trainer.train` only. CPU seconds sum all threads of the training process, so on a "
        "busy machine they show the work saved, while wall seconds also show the waiting.",
        "",
        "| Variant | Real tokens/s | Ratio to plain | Real tokens/CPU s | Ratio to plain | Loss per token | Loss vs plain "
        "| Peak RSS (MB) | Train s (all) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        ratio = result.tokens_per_s() / reference.tokens_per_s() if reference else float("nan")
        cpu_ratio = result.tokens_per_cpu_s() / reference.tokens_per_cpu_s() if reference else float("nan")
        loss_delta = (result.loss_per_token / reference.loss_per_token - 1) * 100 if reference else float("nan")
        lines.append(
            f"| {name}: {VARIANTS[name].description} | {result.tokens_per_s():.1f} | {ratio:.2f} | "
            f"{result.tokens_per_cpu_s():.1f} | {cpu_ratio:.2f} | {result.loss_per_token:.4f} | {loss_delta:+.2f} % | "
            f"{max(result.peak_rss_mb):.0f} | {', '.join(f'{s:.1f}' for s in result.train_s)} |"
        )
    if reference and "job" in results:
        job = results["job"]
        ratio = job.tokens_per_s() / reference.tokens_per_s()
        loss_delta = abs(job.loss_per_token / reference.loss_per_token - 1)
        met = ratio >= SPEED_GOAL and loss_delta <= LOSS_TOLERANCE
        lines += [
            "",
            f"Job / plain: {ratio:.2f}x real tokens per second, loss per token within {loss_delta * 100:.2f} % "
            f"(goal at least {SPEED_GOAL:.0f}x within {LOSS_TOLERANCE * 100:.0f} %: {'met' if met else 'missed'}).",
        ]
    return "\n".join(lines) + "\n"


def run_benchmark(*, quick: bool) -> str:
    """Run the suite's size of this benchmark (`plain` and `job`) and return its record."""
    examples, repeats = (6, 1) if quick else (12, 2)
    machine = describe_machine()
    results = measure(["plain", "job"], examples=examples, repeats=repeats, max_length=1024, seed=0)
    return render_record(results, machine=machine, examples=examples, repeats=repeats, max_length=1024)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=24, help="training examples (default 24)")
    parser.add_argument("--repeats", type=int, default=2, help="trainings of each variant (default 2)")
    parser.add_argument("--max-length", type=int, default=1024, help="maximum example length in tokens (default 1024, TRL's default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the example draw (default 0)")
    parser.add_argument("--variants", nargs="+", default=["plain", "job"], choices=sorted(VARIANTS), help="variants to train")
    parser.add_argument("--output", type=Path, help="page to append the record to (default: print only)")
    args = parser.parse_args()

    machine = describe_machine()
    started = time.monotonic()
    results = measure(args.variants, examples=args.examples, repeats=args.repeats, max_length=args.max_length, seed=args.seed)
    record = render_record(results, machine=machine, examples=args.examples, repeats=args.repeats, max_length=args.max_length)
    publish_record(record, args.output)
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
