"""Compare validating a 1,000,000-row Parquet file with loading it whole through `datasets`, in the same run.

    python bench/validate_parquet.py                 # builds the file in a temporary folder, 5 repeats
    python bench/validate_parquet.py --rows 200000 --repeats 3

Each measurement runs in its own Python process, so peak memory (`ru_maxrss` of that process) covers one
operation only. The two operations alternate, and the record gives the median of the repeats. Times cover the work
after imports (reading metadata and a sample and validating it, or `datasets.load_dataset` into a fresh cache), so
interpreter start and library imports, which both sides pay, do not hide the difference; the whole-process times
are recorded too. The goal for validation:
at most 5 % of the load time, under 2 seconds and under 500 MB peak memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIME_GOAL_RATIO = 0.05
TIME_GOAL_S = 2.0
MEMORY_GOAL_MB = 500


def build_parquet(path: Path, num_rows: int) -> None:
    """Write `num_rows` prompt/completion rows of random words (about 80 and 120 characters), seeded, in row
    groups of 100,000, so the file does not compress to almost nothing as repeated text would."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    generator = random.Random(0)
    words = ["".join(generator.choices("abcdefghijklmnopqrstuvwxyz", k=generator.randint(2, 9))) for _ in range(5000)]
    schema = pa.schema([("prompt", pa.string()), ("completion", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, num_rows, 100_000):
            count = min(100_000, num_rows - start)
            writer.write_table(pa.table({
                "prompt": [" ".join(generator.choices(words, k=14)) for _ in range(count)],
                "completion": [" ".join(generator.choices(words, k=20)) for _ in range(count)],
            }, schema=schema))


def measure_validation(path: str, sample_size: int) -> dict:
    """Read the count and a sample of `path` and validate it for SFT; return seconds and the verdict."""
    import pyarrow.parquet  # noqa: F401 - imported before the clock starts, as `datasets` is on the other side

    from autotrain_agent.data.sampling import read_validation_sample
    from autotrain_agent.data.validation import validate_dataset

    started = time.perf_counter()
    sample = read_validation_sample(path, sample_size=sample_size)
    result = validate_dataset(sample, "sft", sample_size=sample_size)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "verdict": result.verdict, "num_rows": result.num_rows}


def measure_load(path: str) -> dict:
    """Load `path` whole through `datasets` into a fresh cache folder; return seconds and the row count."""
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(prefix="bench-load-cache-") as cache_dir:
        started = time.perf_counter()
        dataset = datasets.load_dataset("parquet", data_files=path, split="train", cache_dir=cache_dir)
        num_rows = len(dataset)
        seconds = time.perf_counter() - started
        del dataset
    return {"seconds": seconds, "num_rows": num_rows}


def run_child(operation: str, path: Path, sample_size: int) -> dict:
    """Run one measurement in a fresh process and return its result with its peak memory in MB."""
    command = [sys.executable, __file__, "--child", operation, "--path", str(path), "--sample-size", str(sample_size)]
    started = time.perf_counter()
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    process_s = time.perf_counter() - started
    return {**json.loads(output.strip().splitlines()[-1]), "process_s": process_s}


def child_main(operation: str, path: str, sample_size: int) -> int:
    result = measure_validation(path, sample_size) if operation == "validate" else measure_load(path)
    # ru_maxrss is in kilobytes on Linux.
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
    return 0


def record(num_rows: int, file_mb: float, sample_size: int, validations: list[dict], loads: list[dict]) -> str:
    """Return a Markdown record of the medians and whether each goal is met."""
    validate_s = statistics.median(r["seconds"] for r in validations)
    load_s = statistics.median(r["seconds"] for r in loads)
    validate_mb = statistics.median(r["peak_mb"] for r in validations)
    load_mb = statistics.median(r["peak_mb"] for r in loads)
    validate_process_s = statistics.median(r["process_s"] for r in validations)
    load_process_s = statistics.median(r["process_s"] for r in loads)
    ratio = validate_s / load_s

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return "\n".join([
        f"### Validating a {num_rows:,}-row Parquet file vs loading it with `datasets` ({dt.date.today().isoformat()})",
        "",
        (
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"file {file_mb:.0f} MB; sample {sample_size} rows; median of {len(validations)} alternating "
            "repeats, one process per measurement; `python bench/validate_parquet.py`."
        ),
        "",
        "| Operation | Seconds (after imports) | Seconds (whole process) | Peak memory (MB, whole process) |",
        "|---|---|---|---|",
        (
            f"| validate (metadata count + sample, SFT checks) | {validate_s:.3f} | {validate_process_s:.2f} "
            f"| {validate_mb:.0f} |"
        ),
        f"| `datasets.load_dataset` whole file, fresh cache | {load_s:.3f} | {load_process_s:.2f} | {load_mb:.0f} |",
        "",
        (
            f"- time ratio after imports {ratio:.2%} (goal at most {TIME_GOAL_RATIO:.0%}): "
            f"{met(ratio <= TIME_GOAL_RATIO)}; whole processes {validate_process_s / load_process_s:.0%}"
        ),
        f"- validation under {TIME_GOAL_S:g} s: {met(validate_s < TIME_GOAL_S)}",
        f"- validation under {MEMORY_GOAL_MB} MB: {met(validate_mb < MEMORY_GOAL_MB)}",
        f"- rows counted by validation: {validations[0]['num_rows']:,}, by `datasets`: {loads[0]['num_rows']:,}",
        "",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the Parquet file (default 1,000,000)")
    parser.add_argument("--repeats", type=int, default=5, help="measurements of each operation (default 5)")
    parser.add_argument("--sample-size", type=int, default=1000, help="rows validation checks (default 1000)")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md", help="page to append the record to")
    parser.add_argument("--child", choices=("validate", "load"), help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args.child, args.path, args.sample_size)

    with tempfile.TemporaryDirectory(prefix="bench-parquet-") as folder:
        path = Path(folder) / "rows.parquet"
        build_parquet(path, args.rows)
        validations, loads = [], []
        for _ in range(args.repeats):
            validations.append(run_child("validate", path, args.sample_size))
            loads.append(run_child("load", path, args.sample_size))
        text = record(args.rows, path.stat().st_size / 2**20, args.sample_size, validations, loads)
    print(text)
    if not args.output.exists():
        args.output.write_text("# Benchmarks\n", encoding="utf-8")
    with open(args.output, "a", encoding="utf-8") as page:
        page.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
