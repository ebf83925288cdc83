"""Time each stage of the embedded run and record the numbers in BENCHMARKS.md.

    python bench/stage_times.py                     # runs `autotrain-agent "improve code solving with SFT"` in a
                                                    # fresh folder, then records its stage times
    python bench/stage_times.py --from-dir DIR      # records the stage times of an experiment already run in DIR

Stage times come from the experiment's journal: each stage lasts from the previous stage's completion (or the first
journal event) to its own. Caches under $AUTOTRAIN_AGENT_CACHE (converted model, dataset, converter) make a second
run's validate stage shorter; the record says whether they were warm.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = "improve code solving with SFT"
REPO = Path(__file__).resolve().parents[1]


def stage_durations(journal_path: Path) -> list[tuple[str, float]]:
    """Return (stage, seconds) pairs in completion order from an experiment journal."""
    events = [json.loads(line) for line in journal_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not events:
        return []
    previous = dt.datetime.fromisoformat(events[0]["at"])
    durations = []
    for event in events:
        if event["event"] != "stage_completed":
            continue
        at = dt.datetime.fromisoformat(event["at"])
        durations.append((event["stage"], (at - previous).total_seconds()))
        previous = at
    return durations


def run_embedded(workdir: Path) -> float:
    """Run the README's main command in `workdir` and return its wall time in seconds."""
    started = time.monotonic()
    subprocess.run(["autotrain-agent", GOAL, "--no-progress"], cwd=workdir, check=True)
    return time.monotonic() - started


def record(workdir: Path, wall_s: float | None, *, cache_state: str) -> str:
    """Return a Markdown record of the experiment found in `workdir`."""
    runs = sorted((workdir / "training_runs").glob("*/journal.jsonl"))
    if not runs:
        raise SystemExit(f"No experiment journal under {workdir / 'training_runs'}; run the experiment first.")
    journal = runs[0]
    state = json.loads((journal.parent / "state.json").read_text(encoding="utf-8"))
    lines = [
        f"### Embedded run: stage times ({dt.date.today().isoformat()})",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"caches: {cache_state}; experiment `{state['id']}`, status {state['status']}.",
        "",
        "| Stage | Seconds |",
        "|---|---|",
    ]
    total = 0.0
    for stage, seconds in stage_durations(journal):
        lines.append(f"| {stage} | {seconds:.0f} |")
        total += seconds
    lines.append(f"| total (journal) | {total:.0f} |")
    if wall_s is not None:
        lines.append(f"| wall time (command) | {wall_s:.0f} |")
    scores = [("base", s) for s in state.get("baseline_scores", [])]
    for run in state.get("runs", []):
        if run.get("checkpoints"):
            scores += [(run["run_id"], s) for s in run["checkpoints"][-1]["scores"]]
    lines.append("")
    for label, score in scores:
        lines.append(f"- {label}: {score['benchmark']} {score['metric']} {score['value']:.3f} ({score['num_passed']}/{score['num_samples']})")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from-dir", type=Path, help="folder of an experiment already run (skips running it)")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md", help="page to append the record to")
    args = parser.parse_args()

    cache = Path(os.environ.get("AUTOTRAIN_AGENT_CACHE") or Path.home() / ".cache" / "autotrain-agent")
    cache_state = "warm" if (cache / "models").is_dir() else "cold"
    if args.from_dir:
        text = record(args.from_dir, None, cache_state="unknown")
    else:
        workdir = Path(tempfile.mkdtemp(prefix="autotrain-bench-"))
        wall_s = run_embedded(workdir)
        text = record(workdir, wall_s, cache_state=cache_state)
    print(text)
    with open(args.output, "a", encoding="utf-8") as page:
        page.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
