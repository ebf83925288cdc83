"""Measure one monitoring poll on a Trackio run with 100 and with 100,000 logged steps; append to BENCHMARKS.md.

    python bench/monitor_poll.py [--steps 100 100000] [--repeats 30]

Each run logs ten training metrics per step, with `train/global_step`, the way transformers' Trackio callback
does, into a temporary `TRACKIO_DIR`. After a first read catches up, each timed poll logs one more step and then
measures, separately:

- the incremental read (`MetricsCursor.read_new`): the rows since the last poll, found by SQLite row id;
- the full read (`read_trackio_metrics`) that a reader without a cursor would repeat on every poll, for contrast;
- the shipped policy's evaluation on the accumulated series.

Times are medians over `--repeats` polls; the slow full read is timed on the first three polls only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METRICS = ("loss", "grad_norm", "learning_rate", "entropy", "mean_token_accuracy", "num_tokens", "epoch", "a", "b", "c")


def training_row(step: int) -> dict:
    """One logged row of a smoothly falling run."""
    row = {f"train/{name}": 1.0 + 1.0 / (1 + step) + index * 0.01 for index, name in enumerate(METRICS)}
    row["train/loss"] = 2.0 * math.exp(-step / 50_000) + 0.5
    row["train/global_step"] = step
    return row


def log_steps(project: str, run: str, first: int, last: int) -> None:
    """Log steps `first..last` in bulk, in batches, as one writer process would."""
    from trackio.sqlite_storage import SQLiteStorage

    batch = 5_000
    for start in range(first, last + 1, batch):
        steps = list(range(start, min(start + batch, last + 1)))
        SQLiteStorage.bulk_log(project, run, [training_row(step) for step in steps], steps=steps)


def measure(total_steps: int, repeats: int) -> dict[str, float]:
    """Return median seconds of one incremental read, one full read and one policy evaluation."""
    from autotrain_agent.monitor_metrics import MetricsCursor, read_trackio_metrics
    from autotrain_agent.policy import Observation, load_policy

    project, run = f"bench-{total_steps}", "run-1"
    log_steps(project, run, 1, total_steps)
    cursor = MetricsCursor(project, run)
    # Series grow by appending, as in the monitor's watcher, and the running extremes carry over between polls.
    series: dict[str, list[tuple[int, float]]] = {}
    finite_series: dict = {}
    while True:
        new = cursor.read_new()
        if not new:
            break
        for name, points in new.items():
            series.setdefault(name, []).extend(points)
    policy = load_policy()

    incremental, full, rules = [], [], []
    for offset in range(1, repeats + 1):
        step = total_steps + offset
        log_steps(project, run, step, step)
        started = time.perf_counter()
        new = cursor.read_new()
        incremental.append(time.perf_counter() - started)
        for name, points in new.items():
            series[name].extend(points)

        if offset <= 3:
            started = time.perf_counter()
            read_trackio_metrics(project, run)
            full.append(time.perf_counter() - started)

        observation = Observation(
            metrics=series, phase="running", step=step, max_steps=2 * total_steps, runs_left=2, finite_series=finite_series
        )
        started = time.perf_counter()
        policy.evaluate(observation)
        rules.append(time.perf_counter() - started)
    return {"incremental_s": statistics.median(incremental), "full_s": statistics.median(full), "rules_s": statistics.median(rules)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 100_000], help="logged steps of each run")
    parser.add_argument("--repeats", type=int, default=30, help="timed polls per run")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md", help="page to append the record to")
    args = parser.parse_args()

    os.environ["TRACKIO_DIR"] = tempfile.mkdtemp(prefix="autotrain-bench-trackio-")
    import trackio.sqlite_storage

    trackio.sqlite_storage.TRACKIO_DIR = Path(os.environ["TRACKIO_DIR"])
    lines = [
        f"### Monitoring poll cost ({dt.date.today().isoformat()})",
        "",
        (
            f"`python bench/monitor_poll.py`; machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}. Ten metrics per step; medians of {args.repeats} polls "
            "(full read: 3), each after one new step."
        ),
        "",
        "| Logged steps | Incremental read (ms) | Full read, for contrast (ms) | Policy evaluation (ms) |",
        "|---|---|---|---|",
    ]
    for steps in args.steps:
        result = measure(steps, args.repeats)
        lines.append(
            f"| {steps:,} | {result['incremental_s'] * 1000:.2f} | {result['full_s'] * 1000:.1f} | {result['rules_s'] * 1000:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.output.exists():
        args.output.write_text("# Benchmarks\n", encoding="utf-8")
    with open(args.output, "a", encoding="utf-8") as page:
        page.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
