"""Time `autotrain-agent --help` and `autotrain-agent status` against a bare interpreter start, in one run.

    python bench/startup.py [--repeats 10]

Each command runs in a fresh process from an empty folder, in turn with `python -c pass` (the reference: the
interpreter start that every command pays), `repeats` times. The record gives the median wall times, the ratio to
the reference, the goal (under one second) and which heavy libraries each command imported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe_machine  # noqa: E402

GOAL_S = 1.0
HEAVY_MODULES = ("torch", "transformers", "trl", "datasets", "peft", "accelerate", "smolagents", "trackio")
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "autotrain-agent --help": ["-m", "autotrain_agent.cli", "--help"],
    "autotrain-agent status": ["-m", "autotrain_agent.cli", "status"],
}
_IMPORT_PROBE = """
import json, sys
from autotrain_agent.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps([name for name in {heavy!r} if name in sys.modules]))
"""


def time_command(arguments: list[str], *, cwd: Path) -> float:
    """Run the interpreter with `arguments` and return its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, *arguments], cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def heavy_imports(arguments: list[str], *, cwd: Path) -> list[str]:
    """Return the heavy libraries that the command line imports for `arguments`."""
    probe = _IMPORT_PROBE.format(heavy=HEAVY_MODULES)
    output = subprocess.run([sys.executable, "-c", probe, *arguments], cwd=cwd, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure(repeats: int) -> tuple[dict[str, list[float]], dict[str, list[str]]]:
    """Return every command's wall times and, for the command line, its heavy imports."""
    folder = Path(tempfile.mkdtemp(prefix="autotrain-bench-startup-"))
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for repeat in range(repeats):
        names = list(COMMANDS) if repeat % 2 == 0 else list(reversed(COMMANDS))
        for name in names:
            times[name].append(time_command(COMMANDS[name], cwd=folder))
    imports = {name: heavy_imports(arguments[2:], cwd=folder) for name, arguments in COMMANDS.items() if arguments[0] == "-m"}
    return times, imports


def render_record(times: dict[str, list[float]], imports: dict[str, list[str]], *, machine: str, repeats: int) -> str:
    """Return the Markdown record."""
    reference = statistics.median(times["python -c pass"])
    lines = [
        f"### Command line start-up ({dt.date.today().isoformat()})",
        "",
        f"Script: `bench/startup.py --repeats {repeats}`. Machine: {machine}. Each command in a fresh process from an "
        f"empty folder, alternating with the reference; median of {repeats}.",
        "",
        "| Command | Median s | Ratio to `python -c pass` | Heavy libraries imported |",
        "|---|---|---|---|",
    ]
    for name, samples in times.items():
        median = statistics.median(samples)
        imported = ", ".join(imports[name]) or "none" if name in imports else "-"
        lines.append(f"| `{name}` | {median:.3f} | {median / reference:.1f} | {imported} |")
    slowest = max(statistics.median(samples) for name, samples in times.items() if name in imports)
    lines += ["", f"Slowest command {slowest:.2f} s (goal under {GOAL_S:.0f} s: {'met' if slowest < GOAL_S else 'missed'})."]
    return "\n".join(lines) + "\n"


def run_benchmark(*, quick: bool) -> str:
    """Run the suite's size of this benchmark and return its record."""
    repeats = 5 if quick else 10
    machine = describe_machine()
    times, imports = measure(repeats)
    return render_record(times, imports, machine=machine, repeats=repeats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10, help="runs of each command (default 10)")
    args = parser.parse_args()
    machine = describe_machine()
    times, imports = measure(args.repeats)
    print(render_record(times, imports, machine=machine, repeats=args.repeats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
