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
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe_machine  # noqa: E402
from _page import publish_record  # noqa: E402

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


def time_command(arguments: list[str], *, cwd: Path) -> tuple[float, float]:
    """Run the interpreter with `arguments` and return its wall and CPU (user plus system) seconds."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, *arguments], cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} exited with {process.returncode}; run it in {cwd} to see why.")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def heavy_imports(arguments: list[str], *, cwd: Path) -> list[str]:
    """Return the heavy libraries that the command line imports for `arguments`."""
    probe = _IMPORT_PROBE.format(heavy=HEAVY_MODULES)
    output = subprocess.run([sys.executable, "-c", probe, *arguments], cwd=cwd, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure(repeats: int) -> tuple[dict[str, list[tuple[float, float]]], dict[str, list[str]]]:
    """Return every command's (wall, CPU) seconds per run and, for the command line, its heavy imports."""
    folder = Path(tempfile.mkdtemp(prefix="autotrain-bench-startup-"))
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    for repeat in range(repeats):
        names = list(COMMANDS) if repeat % 2 == 0 else list(reversed(COMMANDS))
        for name in names:
            times[name].append(time_command(COMMANDS[name], cwd=folder))
    imports = {name: heavy_imports(arguments[2:], cwd=folder) for name, arguments in COMMANDS.items() if arguments[0] == "-m"}
    return times, imports


def render_record(times: dict[str, list[tuple[float, float]]], imports: dict[str, list[str]], *, machine: str, repeats: int) -> str:
    """Return the Markdown record."""
    reference = statistics.median(wall for wall, _ in times["python -c pass"])
    lines = [
        f"### Command line start-up ({dt.date.today().isoformat()})",
        "",
        f"Script: `bench/startup.py --repeats {repeats}`. Machine: {machine}. Each command in a fresh process from an "
        f"empty folder, alternating with the reference; median of {repeats}.",
        "",
        "| Command | Median wall s | Ratio to `python -c pass` | Median CPU s | Heavy libraries imported |",
        "|---|---|---|---|---|",
    ]
    for name, samples in times.items():
        wall = statistics.median(wall for wall, _ in samples)
        cpu = statistics.median(cpu for _, cpu in samples)
        imported = ", ".join(imports[name]) or "none" if name in imports else "-"
        lines.append(f"| `{name}` | {wall:.3f} | {wall / reference:.1f} | {cpu:.3f} | {imported} |")
    slowest = max(statistics.median(wall for wall, _ in samples) for name, samples in times.items() if name in imports)
    slowest_cpu = max(statistics.median(cpu for _, cpu in samples) for name, samples in times.items() if name in imports)
    lines += [
        "",
        f"Slowest command {slowest:.2f} s wall (goal under {GOAL_S:.0f} s: {'met' if slowest < GOAL_S else 'missed'}), "
        f"{slowest_cpu:.2f} s CPU. On a busy machine the wall time is mostly waiting for a core; the CPU time is the "
        "command's own work.",
    ]
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
    parser.add_argument("--output", type=Path, help="page to append the record to (default: print only)")
    args = parser.parse_args()
    machine = describe_machine()
    times, imports = measure(args.repeats)
    record = render_record(times, imports, machine=machine, repeats=args.repeats)
    publish_record(record, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
